"""GET /v1/usage's answer, made from the ledger's days: per account and per key name, today and
the 30 days before, with each account's share of its daily allocation and, at today's rate
(linear since 00:00 UTC), when it runs out; today's images per UTC hour, per key and in all."""

from __future__ import annotations

from collections import defaultdict

from flux_api.accounts.pool import utc
from flux_api.observe.ledger import utc_day
from flux_api.store.usage import KEEP_DAYS, UsageBook

DAY = 86400
HOURS = [f"{hour:02d}" for hour in range(24)]
NOT_TODAY = "not today"
USED_UP = "used up"


def usage_report(
    book: UsageBook,
    accounts: list[dict],
    daily_neurons: int,
    now: float,
    only_key: str | None = None,
) -> dict:
    """`accounts`: the pool's report (label, state, until); `daily_neurons`: CF_DAILY_NEURONS
    (0: no cap); `only_key`: a key name when the reader may see only its own usage (then no
    account is shown)."""
    dates = [utc_day(now - back * DAY) for back in range(KEEP_DAYS)]
    found = book.days(dates)
    days = [_day(date, found.get(date, {}), only_key, hours=date == dates[0]) for date in dates]
    today = days[0]
    answer: dict = {"object": "usage", "now": utc(now), "today": today, "days": days}
    if only_key is None:
        _add_shares(today, accounts, daily_neurons, now)
        answer["daily_neurons"] = daily_neurons or None
    return answer


def _day(date: str, counters: dict[str, float], only_key: str | None, hours: bool) -> dict:
    """`hours`: with images per UTC hour (today's; kept short for the days before)."""
    accounts: dict[str, dict] = defaultdict(_account_entry)
    keys: dict[str, dict] = defaultdict(_key_entry)
    for name, value in counters.items():
        kind, _, rest = name.partition("|")
        if kind == "account" and only_key is None:
            _count_account(accounts, rest, value)
        elif kind == "key":
            owner = rest.partition("|")[0]
            if only_key is None or owner == only_key:
                _count_key(keys, rest, value)
    day: dict = {"date": date}
    if only_key is None:
        day["accounts"] = [{"id": label, **entry} for label, entry in sorted(accounts.items())]
        day["neurons"] = _round(sum(e["neurons"] for e in accounts.values()))
        day["neurons_estimated"] = _round(sum(e["neurons_estimated"] for e in accounts.values()))
    day["keys"] = [{"name": name, **entry} for name, entry in sorted(keys.items())]
    day["images"] = sum(entry["images"] for entry in keys.values())
    for entry in day["keys"]:
        counted = entry.pop("hours")
        if hours:
            entry["hours"] = {hour: counted.get(hour, 0) for hour in HOURS}
    if hours:
        day["hours"] = {hour: sum(e["hours"][hour] for e in day["keys"]) for hour in HOURS}
    return day


def _account_entry() -> dict:
    return {"calls": {}, "neurons": 0.0, "neurons_estimated": 0.0}


def _key_entry() -> dict:
    return {
        "images": 0,
        "by_endpoint": {},
        "by_model": {},
        "failed": {},
        "refused": {},
        "client_left": 0,
        "hours": {},
    }


def _count_account(accounts: dict[str, dict], rest: str, value: float) -> None:
    label, _, what = rest.partition("|")
    entry = accounts[label]
    if what.startswith("calls|"):
        outcome = what.removeprefix("calls|")
        entry["calls"][outcome] = entry["calls"].get(outcome, 0) + int(value)
    elif what == "neurons":
        entry["neurons"] = _round(entry["neurons"] + value)  # neurons: reported + estimated
    elif what == "neurons_estimated":
        entry["neurons"] = _round(entry["neurons"] + value)
        entry["neurons_estimated"] = _round(entry["neurons_estimated"] + value)


def _count_key(keys: dict[str, dict], rest: str, value: float) -> None:
    name, _, what = rest.partition("|")
    entry = keys[name]
    kind, _, detail = what.partition("|")
    if kind == "images":
        endpoint, _, model = detail.rpartition("|")
        entry["images"] += int(value)
        entry["by_endpoint"][endpoint] = entry["by_endpoint"].get(endpoint, 0) + int(value)
        entry["by_model"][model] = entry["by_model"].get(model, 0) + int(value)
    elif kind in ("failed", "refused"):
        entry[kind][detail] = entry[kind].get(detail, 0) + int(value)
    elif kind == "client_left":
        entry["client_left"] += int(value)
    elif kind == "hour" and detail in HOURS:
        entry["hours"][detail] = entry["hours"].get(detail, 0) + int(value)


def _add_shares(today: dict, pool: list[dict], daily: int, now: float) -> None:
    """Each account of the pool (those with no use today too), its share and run-out time;
    the pool's total likewise."""
    used = {entry["id"]: entry for entry in today["accounts"]}
    accounts = []
    for member in pool:
        entry = used.get(member["id"]) or _account_entry()
        row = {"id": member["id"], "state": member["state"], **entry}
        if "until" in member:
            row["until"] = member["until"]
        row.update(_share(row["neurons"], daily, now))
        accounts.append(row)
    today["accounts"] = accounts
    total = sum(row["neurons"] for row in accounts)
    today["pool"] = {
        "neurons": _round(total),
        "neurons_estimated": _round(sum(row["neurons_estimated"] for row in accounts)),
        **_share(total, daily * len(accounts), now),
    }


def _share(used: float, allocation: int, now: float) -> dict:
    if allocation <= 0:
        return {"share": None, "runs_out": None}  # a paid account: no cap
    share = used / allocation
    return {"share": round(share, 4), "runs_out": runs_out(used, allocation, now)}


def runs_out(used: float, allocation: float, now: float) -> str:
    """When `allocation` is used up at today's rate so far (linear since 00:00 UTC): a UTC
    time, "not today", or "used up"."""
    if used >= allocation:
        return USED_UP
    since_midnight = now % DAY
    if used <= 0 or since_midnight <= 0:
        return NOT_TODAY
    at = now + (allocation - used) * since_midnight / used
    return utc(at) if at < now - since_midnight + DAY else NOT_TODAY


def _round(value: float) -> float:
    return round(value, 2)
