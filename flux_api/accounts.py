"""The Cloudflare accounts this service may call: CF_ACCOUNTS and/or CF_ACCOUNT_ID + CF_API_TOKEN,
read into one list. A token is never part of a message; an account is named by its short id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .environment import SettingsError


@dataclass(frozen=True)
class Account:
    id: str
    token: str = field(repr=False)

    @property
    def label(self) -> str:
        """The id as logs, /healthz and the page show it: first 6 and last 4 characters."""
        return short_id(self.id)

    @property
    def token_fingerprint(self) -> str:
        """Tells a changed token from the one that was refused, without keeping the token."""
        return hashlib.sha256(self.token.encode()).hexdigest()[:16]


def short_id(account_id: str) -> str:
    return account_id if len(account_id) <= 12 else f"{account_id[:6]}…{account_id[-4:]}"


def parse_accounts(pool: str, account_id: str, token: str, base_url: str) -> tuple[Account, ...]:
    """CF_ACCOUNT_ID + CF_API_TOKEN (a pool of one) then each `id:token` pair of CF_ACCOUNTS
    (`pool`). Every bad entry is one line of the SettingsError; no token is ever echoed.

    With a CF_API_BASE that has no `{account_id}` placeholder, CF_ACCOUNT_ID may stay empty, and
    only a single account makes sense (every call would go to the same URL)."""
    accounts: list[Account] = []
    problems: list[str] = []
    if token and (account_id or "{account_id}" not in base_url):
        accounts.append(Account(account_id, token))
    entries = [entry.strip() for entry in pool.split(",")] if pool.strip() else []
    for number, entry in enumerate(entries, start=1):
        found, problem = _entry(entry, number)
        if problem:
            problems.append(problem)
        elif any(known.id == found.id for known in accounts):
            problems.append(f"CF_ACCOUNTS entry {number}: account {found.label} is listed twice.")
        else:
            accounts.append(found)
    if len(accounts) > 1 and "{account_id}" not in base_url:
        problems.append(
            "CF_API_BASE has no {account_id} placeholder, so several accounts would all call the "
            "same URL; put {account_id} where the account id goes."
        )
    if problems:
        raise SettingsError("\n".join(problems))
    return tuple(accounts)


def _entry(entry: str, number: int) -> tuple[Account | None, str | None]:
    where = f"CF_ACCOUNTS entry {number}"
    if not entry:
        return None, f"{where} is empty (two commas in a row, or one at an end)."
    account_id, colon, token = entry.partition(":")
    account_id, token = account_id.strip(), token.strip()
    if not colon:
        return None, f"{where} has no ':'; each entry is account_id:api_token."
    if not account_id or any(c.isspace() or c in "/?#" for c in account_id):
        return None, f"{where} has no usable account id before its ':'."
    if not token or ":" in token or any(c.isspace() for c in token):
        return None, f"{where} (account {short_id(account_id)}) has no usable token after its ':'."
    return Account(account_id, token), None
