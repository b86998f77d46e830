"""API_KEY entries: bare keys named by a keyed hash, named keys with a limit of their own, and
the entries that stop the start (never showing a key)."""

import pytest

from flux_api.config.api_keys import RateLimit, bare_key, parse_api_keys
from flux_api.config.settings import SettingsError, load_settings

ALICE = "alice-key-0123456789"
KIDS = "kids-key-0123456789ab"


def test_a_bare_key_is_named_by_a_short_hash_that_tells_nothing_of_it():
    [key] = parse_api_keys(("sk-short",))
    assert key.secret == "sk-short" and key.limit_under(None) is None
    assert key.name.startswith("key-") and len(key.name) == 12
    assert key.name == bare_key("sk-short").name != bare_key("sk-other").name
    assert "sk-short" not in repr(key)


def test_named_keys_with_and_without_a_limit_of_their_own():
    default = RateLimit(30, 60)
    alice, kids, free = parse_api_keys(
        (f"alice:{ALICE}", f"kids:{KIDS}:20/day", f"admin.1:{ALICE[::-1]}:off")
    )
    assert (alice.name, alice.secret, alice.limit_under(default)) == ("alice", ALICE, default)
    assert (kids.name, kids.limit_under(default)) == ("kids", RateLimit(20, 86400))
    assert (free.name, free.limit_under(default)) == ("admin.1", None)
    assert ALICE not in repr(alice)


def test_settings_hold_the_named_keys():
    settings = load_settings({"API_KEY": f"sk-bare, kids:{KIDS}:5/hour"})
    assert [key.name for key in settings.api_keys] == [bare_key("sk-bare").name, "kids"]


@pytest.mark.parametrize(
    "value, says",
    [
        (f"al ice:{ALICE}", "API_KEY entry 1 has a ':' but is not name:key"),
        (f"alice:{ALICE}:5/day:x", "API_KEY entry 1 has a ':'"),
        ("sk-ok, alice:short-key", "API_KEY entry 2: the key after the name is 9 characters"),
        (f"alice:{ALICE}:5/fortnight", "API_KEY entry 1's limit must look like 30/minute"),
        (f"{'n' * 33}:{ALICE}", "API_KEY entry 1 has a ':'"),
        (f":{ALICE}", "API_KEY entry 1 has a ':'"),
        ("sk-old:key", "API_KEY entry 1: the key after the name is 3"),  # no longer itself
        (
            "sk-old:a-long-key-with-colons:more",
            "entry 1's limit must look like 30/minute (a count per second, minute, hour or day).",
        ),
        (f"alice:{ALICE}, alice:{KIDS}", "API_KEY entries 1 and 2 have the same name"),
        (f"alice:{ALICE}, kids:{ALICE}", "the same key appears twice"),
        (f"{ALICE}, {ALICE}", "the same key appears twice"),
        (f"alice:{ALICE}:", "entry 1's limit must look like 30/minute, or be `off`"),
        (f"alice:{ALICE}:0", "entry 1's limit must look like 30/minute, or be `off`"),
        (f"alice:{ALICE}:²/minute", "entry 1's limit must look like 30/minute"),
    ],
)
def test_entries_that_stop_the_start_say_why_without_the_key(value, says):
    with pytest.raises(SettingsError) as raised:
        load_settings({"API_KEY": value})
    message = str(raised.value)
    assert says in message, message
    for secret in (ALICE, KIDS, "short-key", "sk-old", "more"):
        assert secret not in message
