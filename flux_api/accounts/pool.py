"""The pool of Cloudflare accounts: which one the next try goes to, and what each answer means
for it.

- Spread: the usable account used least recently, across every worker (the state is shared).
  Least-recently-used rather than round-robin because accounts leave and rejoin the pool
  (parked, busy, back): LRU hands the next calls to the one that rested longest, with no
  counter to repair.
- Daily quota used up (4006/3036): parked until the next 00:00 UTC, when Cloudflare resets it.
- Token or account refused (10000, 7000, 401, 403): set aside. It is tried again every
  RECHECK_SECONDS (such an answer is immediate and not billed), at once if its token changes,
  and as the last resort when no other account is usable, so fixing the token in Cloudflare's
  dashboard brings it back without a restart.
- Out of capacity (3040) or rate limited: busy for a few seconds; busy accounts come after idle
  ones, but are still used rather than none.

The clock is injectable (wall-clock seconds), so tests can move past midnight without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flux_api.accounts.states import AccountRecord, AccountStates, States
from flux_api.config.accounts import Account
from flux_api.events import AccountChanged, Events

RECHECK_SECONDS = 600.0
BUSY_SECONDS = 10.0
RESET_GRACE = 300.0  # seconds after 00:00 UTC in which a quota answer parks for a minute only
DAY = 86400


def next_reset(now: float) -> float:
    """The next 00:00 UTC after `now` (epoch seconds count no leap seconds, so days are even)."""
    return (now // DAY + 1) * DAY


@dataclass(frozen=True)
class Choice:
    account: Account
    others: bool  # whether another usable account was left to fail over to
    flagged: bool = False  # marked busy or refused when chosen: a success clears that


class AccountPool:
    def __init__(
        self,
        accounts: tuple[Account, ...],
        states: AccountStates,
        clock: Callable[[], float] = time.time,
        events: Events | None = None,
    ):
        self.accounts = accounts
        self._states = states
        self._clock = clock
        self._events = events or Events()  # parked, refused, works again

    def close(self) -> None:
        self._states.close()

    def __len__(self) -> int:
        return len(self.accounts)

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(account.token for account in self.accounts)

    def choose(self, avoid: frozenset[str] = frozenset(), spent: frozenset[str] = frozenset()):
        """The account for the next try, or None when none is left for this request.

        `avoid`: accounts that failed this request in a way another account may not (capacity,
        connection): used again only when nothing else is usable. `spent`: accounts this request
        must not call again (parked or refused during it)."""
        if len(self.accounts) == 1:  # nothing to spread: read, never write, on the hot path
            account = self.accounts[0]
            record = self._states.read().get(account.id) or {}
            if account.id in spent or self._parked(record, None):
                return None
            return Choice(account, others=False, flagged=_flagged(record))
        return self._states.change(lambda states: self._pick(states, avoid, spent))

    def _pick(self, states: States, avoid: frozenset[str], spent: frozenset[str]):
        now = self._clock()
        candidates = [a for a in self.accounts if a.id not in spent]
        usable = [a for a in candidates if self._usable(a, states.get(a.id), now)]
        # Idle first, then busy, then those this request already tried; each by least recent use.
        ranked = sorted(
            usable,
            key=lambda a: (
                a.id in avoid,
                _busy(states.get(a.id), now),
                (states.get(a.id) or {}).get("last_used", 0.0),
            ),
        )
        if ranked:
            chosen = ranked[0]
        else:  # last resort: a refused token, if no account is parked (a 401 bills nothing)
            refused = [a for a in candidates if not self._parked(states.get(a.id), now)]
            if not refused or spent:
                return None
            chosen = min(refused, key=lambda a: states[a.id]["refused"]["checked"])
        record = states.setdefault(chosen.id, {})
        flagged = _flagged(record)
        record["last_used"] = now
        if "refused" in record:
            record["refused"]["checked"] = now
        fresh = [a for a in ranked[1:] if a.id not in avoid]
        return Choice(chosen, others=bool(fresh), flagged=flagged)

    def _usable(self, account: Account, record: AccountRecord | None, now: float) -> bool:
        if self._parked(record, now):
            return False
        refused = (record or {}).get("refused")
        if refused and refused["token"] == account.token_fingerprint:
            return now - refused["checked"] >= RECHECK_SECONDS
        return True

    def _parked(self, record: AccountRecord | None, now: float | None) -> bool:
        if not record or "parked_until" not in record:
            return False
        return (self._clock() if now is None else now) < record["parked_until"]

    # What an answer means for the account it came from.

    def exhausted(self, account: Account) -> None:
        """The daily free allocation is used up: park it until the next reset. Just after 00:00
        UTC the answer may predate Cloudflare's reset (or this clock be ahead of Cloudflare's):
        then it is parked for a minute, not for a whole day."""
        now = self._clock()
        until = now + 60 if now % DAY < RESET_GRACE else next_reset(now)

        def park(states: States) -> bool:
            record = states.setdefault(account.id, {})
            already = record.get("parked_until") == until
            record["parked_until"] = until
            return already

        if not self._states.change(park):
            self._events.announce(AccountChanged(account.label, "parked", until=until))

    def refused(self, account: Account, setting: str) -> None:
        """Cloudflare refused its token or id: set it aside (see the module's docstring)."""
        now = self._clock()

        def set_aside(states: States) -> bool:
            record = states.setdefault(account.id, {})
            refusal = record.get("refused")
            known = refusal is not None and refusal.get("token") == account.token_fingerprint
            record["refused"] = {"token": account.token_fingerprint, "checked": now}
            return known

        if not self._states.change(set_aside):
            self._events.announce(AccountChanged(account.label, "refused", setting=setting))

    def unpark(self, account: Account) -> dict:
        """The operator's `accounts unpark`: make `account` usable from the next choice, on
        every worker and node (each choice reads the shared record; nothing caches it).

        Lifts all that keeps it out of the choice, in one atomic change: parked (Cloudflare said
        its daily allocation was used up: the operator knows better, say the plan was raised),
        busy, and a refused token (a refusal is immediate and not billed, so trying it at once
        costs nothing; still refused, the next request sets it aside again and moves on).
        Returns what `report()` said of it just before (its state, and until when if parked)."""
        now = self._clock()

        def lift(states: States) -> dict:
            record = states.get(account.id) or {}
            before = self._describe(account, record, now)
            record.pop("parked_until", None)
            record.pop("busy", None)
            record.pop("refused", None)
            return before

        return self._states.change(lift)

    def busy(self, account: Account, seconds: float | None) -> None:
        until = self._clock() + max(seconds or 0.0, BUSY_SECONDS)
        self._states.change(
            lambda states: states.setdefault(account.id, {}).update({"busy": until})
        )

    def succeeded(self, choice: Choice, neurons: float | None) -> None:
        """A good answer: it is not busy, its token works, and it spent `neurons`."""
        if neurons is None and not choice.flagged:
            return  # nothing to change (as read when it was chosen): no I/O on the hot path
        account = choice.account
        today = _day(self._clock())

        def update(states: States) -> bool:
            record = states.setdefault(account.id, {})
            record.pop("busy", None)
            was_refused = record.pop("refused", None) is not None
            if neurons is not None:
                day, spent = record.get("neurons", (today, 0.0))
                record["neurons"] = (today, (spent if day == today else 0.0) + neurons)
            return was_refused

        if self._states.change(update):
            self._events.announce(AccountChanged(account.label, "works"))

    # What /healthz and the page show.

    def report(self, read: bool = True) -> list[dict]:
        """Each account's state; "unknown" for all when `read` is False (the shared state is
        known to be unreachable: /healthz says so under "store" and need not wait on it)."""
        if not read:
            return [{"id": a.label, "state": "unknown"} for a in self.accounts]
        states = self._states.read()
        now = self._clock()
        return [self._describe(a, states.get(a.id) or {}, now) for a in self.accounts]

    def all_parked(self) -> bool:
        """Whether every account waits for the daily reset (then no call can be made)."""
        if not self.accounts:
            return False
        now = self._clock()
        states = self._states.read()
        return all(self._parked(states.get(a.id), now) for a in self.accounts)

    def exhausted_error_detail(self) -> tuple[str, int]:
        """The message and Retry-After for a request that found no account usable, some of them
        parked until the reset (and the others, if any, refused): when the first comes back."""
        now = self._clock()
        states = self._states.read()
        entries = [self._describe(a, states.get(a.id) or {}, now) for a in self.accounts]
        parked_until = [
            states[a.id]["parked_until"]
            for a, entry in zip(self.accounts, entries)
            if entry["state"] == "quota_exhausted"
        ]
        parked, count = len(parked_until), len(entries)
        if count == 1:
            used = "the account's daily free allocation is used up"
        elif parked == count:
            used = f"all {count} accounts have used their daily free allocation"
        else:
            settings = sorted(
                {
                    a.token_setting
                    for a, entry in zip(self.accounts, entries)
                    if entry["state"] != "quota_exhausted"
                }
            )
            used = (
                f"{parked} of {count} accounts have used their daily free allocation and "
                f"Cloudflare refused the token of the other {count - parked} "
                f"(check {' and '.join(settings)})"
            )
        reset = next_reset(now)
        back = min(parked_until, default=reset)
        wait = max(1, int(back - now + 0.999))
        if back >= reset:
            return f"{used}; it resets at 00:00 UTC, in {duration(reset - now)}", wait
        # Parked for a minute just after 00:00 UTC (see `exhausted`): the reset has happened.
        first = "it is" if parked == 1 else "the first is"
        return (
            f"{used}, said Cloudflare just after 00:00 UTC, when it resets: {first} tried "
            f"again in {wait} s",
            wait,
        )

    def _describe(self, account: Account, record: AccountRecord, now: float) -> dict:
        entry: dict = {"id": account.label, "state": "ok"}
        refused = record.get("refused")
        if self._parked(record, now):
            entry.update(state="quota_exhausted", until=utc(record["parked_until"]))
        elif refused and refused["token"] == account.token_fingerprint:
            entry["state"] = "rejected_token"
        elif _busy(record, now):
            entry["state"] = "busy"
        day, spent = record.get("neurons", (None, 0.0))
        if day == _day(now):
            entry["neurons_today"] = round(spent, 2)
        return entry


def usable_count(report: list[dict]) -> int:
    """How many accounts of a `report()` can take a call now."""
    return sum(1 for entry in report if entry["state"] in ("ok", "busy"))


def _flagged(record: AccountRecord) -> bool:
    return bool({"busy", "refused"} & record.keys())


def _busy(record: AccountRecord | None, now: float) -> bool:
    if not record:
        return False
    return record.get("busy", 0.0) > now


def _day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def utc(moment: float) -> str:
    """`moment` (epoch seconds) as an ISO 8601 UTC time, to the second."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
