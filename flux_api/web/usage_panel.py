"""/v1/usage drawn for people: an HTML fragment with inline SVG bars, made here from the report
so that it is plain Python to test and needs no build step nor any script to draw. The page's
script (static/usage.js) only fetches it with the saved key, inserts it and shows the times in
the browser's own zone. Every text is escaped: key names are chosen by the operator.

Colours come from the stylesheet's classes (static/usage.css), so dark mode follows the system;
the SVGs carry only geometry, which the page's CSP allows (no style attributes)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from markupsafe import Markup

from flux_api.observe.usage_report import NOT_TODAY, USED_UP

STATES = {  # the pool's state: what a person reads, and the badge's class
    "ok": ("ok", "ok"),
    "busy": ("busy", "ok"),
    "quota_exhausted": ("parked", "warn"),
    "rejected_token": ("token refused", "bad"),
    "unknown": ("unknown (store unreachable)", "warn"),
}
NO_ACCOUNTS = (
    "No Cloudflare account is configured: set CF_ACCOUNT_ID and CF_API_TOKEN (or CF_ACCOUNTS). "
    "Until then nothing is generated."
)
TOKEN_REFUSED = (
    "Cloudflare refused its token or account id: check them in CF_ACCOUNTS (or CF_API_TOKEN)"
)
OWN_ONLY = "Accounts and other keys are shown to METRICS_KEY only; this key sees its own images."


def render_panel(report: dict, now: float) -> str:
    """The whole fragment for one reader: what `report` holds is what it may see."""
    today = report["today"]
    parts = []
    if "accounts" in today:
        parts.append(_accounts_card(today, report.get("daily_neurons"), now))
    else:
        parts.append(_card("Accounts", _note(OWN_ONLY)))
    parts.append(_hours_card(today))
    parts.append(_days_card(report["days"]))
    parts.append(_keys_card(today))
    return str(
        Markup('<div class="panel" data-now="{}">{}</div>').format(report["now"], _join(parts))
    )


# ---- accounts ------------------------------------------------------------------------------


def _accounts_card(today: dict, daily: int | None, now: float) -> Markup:
    accounts = today["accounts"]
    if not accounts:
        return _card("Accounts", _note(NO_ACCOUNTS))
    pool = today["pool"]
    if daily:
        allocation = daily * len(accounts)
        summary = Markup("{} of {} neurons used today ({}) · {}").format(
            _number(pool["neurons"]),
            _number(allocation),
            _percent(pool["share"]),
            _runs_out(pool["runs_out"], now, "the pool"),
        )
    else:
        summary = Markup(
            "{} neurons today. No daily cap (CF_DAILY_NEURONS=0): the bars show neurons only, "
            "each account against the busiest."
        ).format(_number(pool["neurons"]))
    scale = daily or max([a["neurons"] for a in accounts] + [1])
    rows = [_account_row(account, daily, scale, now) for account in accounts]
    body = Markup('<p class="summary">{}</p><ul class="accounts">{}</ul>').format(
        summary, _join(rows)
    )
    return _card("Accounts today", body)


def _account_row(account: dict, daily: int | None, scale: float, now: float) -> Markup:
    label, tone = STATES.get(account["state"], (account["state"], "warn"))
    neurons = account["neurons"]
    if daily:
        figures = Markup("{} of {} neurons ({})").format(
            _number(neurons), _number(daily), _percent(account["share"])
        )
    else:
        figures = Markup("{} neurons").format(_number(neurons))
    if account["neurons_estimated"]:
        figures += Markup(", {} of them estimated").format(_number(account["neurons_estimated"]))
    lines = [figures]
    if account["state"] == "quota_exhausted" and "until" in account:
        lines.append(Markup("parked: returns {}").format(_moment(account["until"], now)))
    elif account["state"] == "rejected_token":
        lines.append(Markup('<strong class="bad-text">{}</strong>').format(TOKEN_REFUSED))
    elif daily and account.get("runs_out"):
        lines.append(_runs_out(account["runs_out"], now, "it"))
    bar = _hbar(neurons / scale, f"{account['id']}: {_plain(figures)}", over=neurons > scale)
    return Markup(
        '<li><div class="row-head"><code>{}</code> <span class="badge {}">{}</span></div>'
        '{}<p class="figures">{}</p></li>'
    ).format(account["id"], tone, label, bar, Markup(" · ").join(lines))


def _runs_out(runs_out: str | None, now: float, who: str) -> Markup:
    if runs_out == USED_UP:
        return Markup(
            '<strong class="bad-text">{} has used up today\'s allocation</strong>'
        ).format(who.capitalize())
    if runs_out in (None, NOT_TODAY):
        return Markup("at today's rate {} lasts the day").format(who)
    return Markup("at today's rate {} runs out {}").format(who, _moment(runs_out, now))


# ---- charts ---------------------------------------------------------------------------------


def _hours_card(today: dict) -> Markup:
    hours = today.get("hours") or {}
    counts = [hours.get(f"{hour:02d}", 0) for hour in range(24)]
    title = "Images per hour today (UTC)"
    if not any(counts):
        return _card(title, _note("No images yet today: the bars appear with the first."))
    busiest = max(range(24), key=lambda hour: counts[hour])
    summary = Markup("{} today; the busiest hour {}:00–{}:00 UTC with {}.").format(
        _images(sum(counts)), f"{busiest:02d}", f"{(busiest + 1) % 24:02d}", counts[busiest]
    )
    labels = [f"{hour:02d}:00–{(hour + 1) % 24:02d}:00 UTC" for hour in range(24)]
    chart = _columns(counts, labels, f"Images per UTC hour today: {sum(counts)} in all")
    axis = _axis(["00", "06", "12", "18", "23"])
    table = _table(("hour (UTC)", "images"), zip(labels, counts))
    return _card(
        title, Markup('<p class="summary">{}</p>{}{}{}').format(summary, chart, axis, table)
    )


def _days_card(days: list[dict]) -> Markup:
    oldest_first = list(reversed(days[:30]))
    counts = [day["images"] for day in oldest_first]
    dates = [day["date"] for day in oldest_first]
    title = "Images per day, last 30 days (UTC)"
    if not any(counts):
        return _card(title, _note("No images in the last 30 days."))
    summary = Markup("{} in 30 days; {} today.").format(_images(sum(counts)), counts[-1])
    chart = _columns(counts, dates, f"Images per day for 30 days: {sum(counts)} in all")
    axis = _axis([dates[0][5:], dates[15][5:], "today"])
    table = _table(("day", "images"), reversed(list(zip(dates, counts))))
    return _card(
        title, Markup('<p class="summary">{}</p>{}{}{}').format(summary, chart, axis, table)
    )


def _keys_card(today: dict) -> Markup:
    keys = [key for key in today["keys"] if key["images"]]
    title = "Images per key today"
    if not keys:
        return _card(title, _note("No images yet today."))
    scale = max(key["images"] for key in keys)
    rows = [
        Markup('<li><div class="row-head"><code>{}</code> <span>{}</span></div>{}</li>').format(
            key["name"],
            _images(key["images"]),
            _hbar(key["images"] / scale, f"{key['name']}: {_images(key['images'])}"),
        )
        for key in sorted(keys, key=lambda key: (-key["images"], key["name"]))
    ]
    return _card(title, Markup('<ul class="accounts">{}</ul>').format(_join(rows)))


def _hbar(fraction: float, label: str, over: bool = False) -> Markup:
    """A horizontal bar, 0 to 1 of the track (a longer one is drawn full, marked as over)."""
    width = round(min(max(fraction, 0.0), 1.0) * 100, 2)
    return Markup(
        '<svg class="hbar" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" '
        'aria-label="{0}"><title>{0}</title><rect class="track" width="100" height="10"/>'
        '<rect class="{1}" width="{2}" height="10"/></svg>'
    ).format(label, "fill over" if over else "fill", width)


def _columns(counts: list[int], labels: list[str], label: str) -> Markup:
    """Vertical bars side by side, the tallest the chart's height; each has its own <title>."""
    top = max(counts) or 1
    slot = 10
    bars = []
    for index, (count, name) in enumerate(zip(counts, labels)):
        height = round(count / top * 100, 2)
        bars.append(
            Markup(
                '<rect class="fill" x="{}" y="{}" width="8" height="{}"><title>{}</title></rect>'
            ).format(index * slot + 1, round(100 - height, 2), height, f"{name}: {count}")
        )
    return Markup(
        '<svg class="columns" viewBox="0 0 {} 100" preserveAspectRatio="none" role="img" '
        'aria-label="{}"><title>{}</title><rect class="track" width="{}" height="100"/>{}</svg>'
    ).format(len(counts) * slot, label, label, len(counts) * slot, _join(bars))


def _axis(marks: list[str]) -> Markup:
    return Markup('<div class="axis" aria-hidden="true">{}</div>').format(
        _join(Markup("<span>{}</span>").format(mark) for mark in marks)
    )


def _table(head: tuple[str, str], rows: Iterable[tuple[str, int]]) -> Markup:
    """The numbers behind a chart, folded: for reading them exactly and for screen readers."""
    cells = _join(Markup("<tr><td>{}</td><td>{}</td></tr>").format(a, b) for a, b in rows)
    return Markup(
        '<details class="numbers"><summary>The numbers</summary><table><thead><tr><th>{}</th>'
        "<th>{}</th></tr></thead><tbody>{}</tbody></table></details>"
    ).format(head[0], head[1], cells)


# ---- words ----------------------------------------------------------------------------------


def _card(title: str, body: Markup) -> Markup:
    return Markup('<section class="card"><h2>{}</h2>{}</section>').format(title, body)


def _note(text: str) -> Markup:
    return Markup('<p class="empty">{}</p>').format(text)


def _moment(iso: str, now: float) -> Markup:
    """A UTC time as the page first shows it (the script rewrites it in local time), and how
    far away it is."""
    moment = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return Markup('at <time datetime="{}">{} UTC</time> ({})').format(
        iso, moment.strftime("%H:%M"), in_words(moment.timestamp() - now)
    )


def in_words(seconds: float) -> str:
    """How far away a moment is, roughly: "in 3 h", "in 25 min", "now"."""
    minutes = round(seconds / 60)
    if minutes <= 0:
        return "now"
    if minutes < 60:
        return f"in {minutes}\u00a0min"
    hours, rest = divmod(minutes, 60)
    if rest < 5 or hours >= 10:
        return f"in {hours}\u00a0h"
    return f"in {hours}\u00a0h {rest:02d}\u00a0min"


def _number(value: float) -> str:
    return f"{value:,.0f}"


def _percent(share: float | None) -> str:
    return "no cap" if share is None else f"{share * 100:.0f}\u00a0%"  # kept on one line


def _images(count: int) -> str:
    return f"{count} image" + ("" if count == 1 else "s")


def _plain(markup: Markup) -> str:
    return markup.striptags()


def _join(parts: Iterable[Markup]) -> Markup:
    return Markup("").join(parts)
