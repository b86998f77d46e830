"""Two more Cloudflare accounts for the tests of a pool (the fake's own is ACCOUNT_ID, TOKEN)."""

B_ID, B_TOKEN = "bbbbbb0123456789abcdef0123456789", "cf-token-B-SECRET-77aa"
C_ID, C_TOKEN = "cccccc0123456789abcdef0123456789", "cf-token-C-SECRET-88bb"
