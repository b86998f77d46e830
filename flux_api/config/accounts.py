"""The Cloudflare accounts this service may call: CF_ACCOUNTS and/or CF_ACCOUNT_ID + CF_API_TOKEN,
read into one list. A token is never part of a message; an account is named by its short id."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from flux_api.config.environment import SettingsError


@dataclass(frozen=True)
class Account:
    id: str
    token: str = field(repr=False)
    # Where its token is set, for messages that say what to fix.
    token_setting: str = field(default="CF_ACCOUNTS", compare=False)

    @property
    def label(self) -> str:
        """The id as logs, /healthz and the page show it: first 6 and last 4 characters."""
        return short_id(self.id)

    @property
    def token_fingerprint(self) -> str:
        """Tells a changed token from the one that was refused, without keeping the token."""
        return hashlib.sha256(self.token.encode()).hexdigest()[:16]


# Cloudflare account ids are 32 hex digits and API tokens 40 URL-safe characters; what goes into
# a URL path and an HTTP header must at least be plain ASCII (a pasted curly quote would make
# every call fail inside the HTTP library).
_ID = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN = re.compile(r"[!-~]+")  # printable ASCII, no space
_BAD_ID = "is not an account id (letters, digits, - and _ only, as Cloudflare's 32 hex digits)"
_BAD_TOKEN = "is not an API token (printable ASCII with no spaces, ':' or ',')"


def short_id(account_id: str) -> str:
    return account_id if len(account_id) <= 12 else f"{account_id[:6]}…{account_id[-4:]}"


def parse_accounts(pool: str, account_id: str, token: str, base_url: str) -> tuple[Account, ...]:
    """CF_ACCOUNT_ID + CF_API_TOKEN (a pool of one) then each `id:token` pair of CF_ACCOUNTS
    (`pool`). Every bad entry is one line of the SettingsError; no token is ever echoed.

    With a CF_API_BASE that has no `{account_id}` placeholder, CF_ACCOUNT_ID may stay empty, and
    only a single account makes sense (every call would go to the same URL)."""
    accounts: list[Account] = []
    listed_in: dict[str, str] = {}  # account id -> where it was first given, for a second one
    problems: list[str] = _single_problems(account_id, token, base_url, pool)
    if token and (account_id or "{account_id}" not in base_url) and not problems:
        accounts.append(Account(account_id, token, "CF_API_TOKEN"))
        listed_in[account_id] = "CF_ACCOUNT_ID"
    entries = [entry.strip() for entry in pool.split(",")] if pool.strip() else []
    for number, entry in enumerate(entries, start=1):
        found = _entry(entry, number)
        if isinstance(found, str):
            problems.append(found)
        elif found.id in listed_in:
            problems.append(_twice(number, found, listed_in[found.id]))
        else:
            accounts.append(found)
            listed_in[found.id] = f"entry {number}"
    if len(accounts) > 1 and "{account_id}" not in base_url:
        problems.append(
            "CF_API_BASE has no {account_id} placeholder, so several accounts would all call the "
            "same URL; put {account_id} where the account id goes."
        )
    if problems:
        raise SettingsError("\n".join(problems))
    return tuple(accounts)


def _twice(number: int, account: Account, first: str) -> str:
    """A second CF_ACCOUNTS entry for an account, naming where it was given first."""
    where = f"CF_ACCOUNTS entry {number}: account {account.label} is also {first}"
    if first == "CF_ACCOUNT_ID":
        return (
            f"{where}; list each account once (drop this entry, or CF_ACCOUNT_ID and CF_API_TOKEN)."
        )
    return f"{where}; list each account once."


def _entry(entry: str, number: int) -> Account | str:
    """The entry's account, or what is wrong with it."""
    where = f"CF_ACCOUNTS entry {number}"
    if not entry:
        return f"{where} is empty (two commas in a row, or one at an end)."
    account_id, colon, token = entry.partition(":")
    account_id, token = account_id.strip(), token.strip()
    if not colon:
        return f"{where} has no ':'; each entry is account_id:api_token."
    if not account_id:
        return f"{where} has no account id before its ':'."
    if not _ID.fullmatch(account_id):
        return f"{where}: the part before its ':' {_BAD_ID}."
    if not token or ":" in token or not _TOKEN.fullmatch(token):
        return f"{where} (account {short_id(account_id)}) has no usable token after its ':'."
    return Account(account_id, token)


def _single_problems(account_id: str, token: str, base_url: str, pool: str) -> list[str]:
    """What is wrong with CF_ACCOUNT_ID + CF_API_TOKEN. Half of the pair is only an error
    beside CF_ACCOUNTS: alone, the page and the start-up warning name what is missing."""
    problems = []
    if account_id and not _ID.fullmatch(account_id):
        problems.append(f"CF_ACCOUNT_ID {_BAD_ID}.")
    if token and not _TOKEN.fullmatch(token):
        problems.append(f"CF_API_TOKEN {_BAD_TOKEN}.")
    needs_id = "{account_id}" in base_url
    if pool.strip() and bool(token) != bool(account_id or not needs_id):
        missing = "CF_API_TOKEN" if not token else "CF_ACCOUNT_ID"
        problems.append(
            f"{missing} is empty while its other half is set: set both (or list that account "
            "in CF_ACCOUNTS instead), or neither."
        )
    return problems
