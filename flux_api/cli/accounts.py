"""`python -m flux_api accounts`: each Cloudflare account's state, neurons today and until when
a parked one waits; `accounts unpark ID` (or `--all`) makes one usable again at once.

It runs beside the service with its settings (the same environment or .env; on the VPS recipe
as its user, so that nothing it opens under DATA_DIR ends up owned by root) and opens the same
shared record the service does (DATA_DIR/accounts, or Redis), never the image store. Every
worker of every node reads that record at each choice of account, so an unpark takes effect
from their next request, without a restart. An account is named by its label (first 6 and last
4 characters of its id, as /healthz and the logs name it) or its whole id; a token is never
asked for nor shown.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

from flux_api.accounts.pool import AccountPool, duration
from flux_api.accounts.states import AccountStates
from flux_api.config.accounts import Account
from flux_api.config.settings import Settings, SettingsError, load_settings
from flux_api.observe.ledger import spent_today
from flux_api.services import open_records
from flux_api.store.usage import UsageBook, UsageUnavailable

NAME = "flux-api accounts"
SETTINGS_ERROR = 3  # as the service's start: a setting it cannot run with


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="the list as JSON")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    unpark = actions.add_parser(
        "unpark",
        help="make a parked (or busy, or refused) account usable again on every worker and node",
        description="Clear what keeps an account out of the pool (parked until 00:00 UTC, busy, "
        "its token refused): every worker and node calls it again from its next request.",
    )
    which = unpark.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "account", nargs="?", metavar="ID", help="its label as listed (0123ab…cdef) or its id"
    )
    which.add_argument("--all", action="store_true", help="every account")


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        _check_data_dir(settings)
        states, book = open_records(settings)
    except SettingsError as exc:
        print(f"{NAME}: {exc}", file=sys.stderr)
        return SETTINGS_ERROR
    try:
        now = time.time()
        pool = AccountPool(settings.accounts, states, clock=lambda: now)
        if args.action == "unpark":
            return _unpark(pool, states, args.account, args.all)
        rows = account_rows(
            pool.report(),
            _spent(book, now),
            settings.cf_daily_neurons,
            now,
            {account.label: account.token_setting for account in pool.accounts},
        )
        if states.in_memory:
            return _unreadable()
        if args.json:
            print(json.dumps(_json(rows, settings.cf_daily_neurons), indent=2))
        else:
            print(table(rows, settings.cf_daily_neurons), end="")
        return 0
    finally:
        states.close()
        book.close()


def _check_data_dir(settings: Settings) -> None:
    """The service opens DATA_DIR/accounts at every start: without it, DATA_DIR is not the
    service's (the systemd unit sets its own), and what this would show or change would be
    nobody's. Nothing is created then."""
    where = settings.data_dir / "accounts"
    if not settings.redis_url and not where.is_dir():
        raise SettingsError(
            f"DATA_DIR: {where.absolute()} does not exist, so the service has not run with this "
            "DATA_DIR; set DATA_DIR to the service's own (the systemd unit sets "
            "DATA_DIR=/var/lib/flux-api)."
        )


@dataclass(frozen=True)
class Row:
    account: str  # the label: first 6 and last 4 characters of the id
    state: str  # ok, busy, quota_exhausted (parked), rejected_token
    neurons_today: float | None  # None: the usage ledger could not be read
    neurons_estimated: float | None  # the part of it Cloudflare did not report
    share_of_daily: float | None  # of CF_DAILY_NEURONS (None: no cap, or not read)
    until: str | None  # when a parked one is called again (ISO 8601 UTC)
    seconds_left: int | None
    token_setting: str = "CF_ACCOUNTS"  # where its token is set (CF_API_TOKEN for the pair)


def _spent(book: UsageBook, now: float) -> dict[str, tuple[float, float]] | None:
    try:
        return spent_today(book, now)
    except UsageUnavailable:
        return None


def account_rows(
    report: list[dict],
    spent: dict[str, tuple[float, float]] | None,
    daily: int,
    now: float,
    token_settings: Mapping[str, str] | None = None,
) -> list[Row]:
    """The rows of the table from the pool's report and the ledger's neurons today;
    `token_settings`: each account label's token setting, when not CF_ACCOUNTS."""
    rows = []
    for entry in report:
        total, guessed = (spent or {}).get(entry["id"], (0.0, 0.0))
        until = entry.get("until")
        left = None if until is None else max(0, round(_epoch(until) - now))
        rows.append(
            Row(
                entry["id"],
                entry["state"],
                None if spent is None else total,
                None if spent is None else guessed,
                round(total / daily, 4) if daily and spent is not None else None,
                until,
                left,
                (token_settings or {}).get(entry["id"], "CF_ACCOUNTS"),
            )
        )
    return rows


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def table(rows: list[Row], daily: int) -> str:
    """The rows as aligned columns, then a line on each mark or fact the table needs."""
    if not rows:
        return (
            "No Cloudflare account is configured (CF_ACCOUNTS, or CF_ACCOUNT_ID + CF_API_TOKEN).\n"
        )
    header = ["account", "state", "neurons today"]
    if daily:
        header.append(f"of {daily:,}")
    header.append("")
    lines = [header]
    for row in rows:
        line = [row.account, row.state, _neurons(row)]
        if daily:
            line.append(_share(row.share_of_daily))
        line.append(_note(row))
        lines.append(line)
    text = "".join(_aligned(line, lines) + "\n" for line in lines)
    if any(row.neurons_estimated for row in rows):
        text += "est.: neurons Cloudflare did not report, estimated from its published prices.\n"
    if rows[0].neurons_today is None:
        text += "?: the usage ledger cannot be read now.\n"
    if any(row.state == "quota_exhausted" for row in rows):
        text += (
            "To call a parked account again before then: python -m flux_api accounts unpark ID\n"
        )
    return text


def _aligned(line: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(other[i]) for other in lines) for i in range(len(line))]
    cells = [
        cell.rjust(width) if 2 <= i < len(line) - 1 else cell.ljust(width)
        for i, (cell, width) in enumerate(zip(line, widths))
    ]
    return "  ".join(cells).rstrip()


def _neurons(row: Row) -> str:
    if row.neurons_today is None:
        return "?"
    text = _number(row.neurons_today)
    if row.neurons_estimated:
        text += f" ({_number(row.neurons_estimated)} est.)"
    return text


def _share(share: float | None) -> str:
    if share is None:
        return "?"
    return f"{share:.1%}" if 0 < share < 0.1 else f"{share:.0%}"  # 0.4% is not 0%


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _note(row: Row) -> str:
    if row.state == "quota_exhausted" and row.until and row.seconds_left is not None:
        return f"parked until {row.until} (in {duration(row.seconds_left)})"
    if row.state == "rejected_token":
        return f"token refused (check {row.token_setting}): tried again every 10 min"
    if row.state == "busy":
        return "out of capacity a few seconds ago: other accounts first"
    return ""


def _json(rows: list[Row], daily: int) -> dict:
    return {"daily_neurons": daily or None, "accounts": [asdict(row) for row in rows]}


# Unpark.


def _unpark(pool: AccountPool, states: AccountStates, given: str | None, every: bool) -> int:
    if every:
        targets = list(pool.accounts)
    else:
        targets = find_accounts(pool.accounts, given or "")
        if len(targets) != 1:
            return _unknown(pool.accounts, several=bool(targets))
    lifted = [(account, pool.unpark(account)) for account in targets]
    if states.in_memory:
        return _unreadable()
    parked = sum(before["state"] == "quota_exhausted" for _, before in lifted)
    lifted_any = any(before["state"] != "ok" for _, before in lifted)
    if every and not lifted_any:
        print("No account was parked, busy or refused: nothing to do.")
        return 0
    for account, before in lifted:
        print(unparked_line(account, before))
    if parked:
        its, it = ("its", "it") if parked == 1 else ("each one's", "each")
        print(
            f"Note: Cloudflare said {its} daily allocation was used up, and the service now calls "
            f"{it} again: if that is still so, Cloudflare answers 4006 (not billed) and {it} is "
            "parked again until 00:00 UTC; if the plan was raised, the calls are billed as it says."
        )
    return 0


def find_accounts(accounts: tuple[Account, ...], given: str) -> list[Account]:
    """The accounts `given` names: its whole id, or its label as printed ("..." for "…", as
    typed on a keyboard without the ellipsis)."""
    given = given.strip().replace("...", "…")
    by_id = [account for account in accounts if account.id == given]
    return by_id or [account for account in accounts if account.label == given]


def unparked_line(account: Account, before: dict) -> str:
    """What `unpark` did to one account, from what report() said of it just before."""
    label, state = account.label, before["state"]
    if state == "quota_exhausted":
        return (
            f"{label}: unparked (it was parked until {before['until']}); every worker and node "
            "calls it again from its next request."
        )
    if state == "rejected_token":
        return (
            f"{label}: was not parked; its refused token is cleared, so the next request tries "
            "it at once (a refusal is not billed; refused again, it is set aside again)."
        )
    if state == "busy":
        return f"{label}: was not parked; it was busy, cleared: it is called as any other."
    return f"{label}: was not parked; nothing to do."


def _unknown(accounts: tuple[Account, ...], several: bool) -> int:
    # The argument is not echoed: a token pasted by mistake would end up on the screen and in logs.
    known = ", ".join(account.label for account in accounts) or "none is configured"
    why = (
        "several accounts have that label (give the whole id)"
        if several
        else ("no account has that id or label")
    )
    print(f"{NAME}: {why}; the accounts are: {known}", file=sys.stderr)
    return 1


def _unreadable() -> int:
    print(
        f"{NAME}: the shared account record cannot be used now (the warning above says why); "
        "nothing was shown or changed.",
        file=sys.stderr,
    )
    return 1
