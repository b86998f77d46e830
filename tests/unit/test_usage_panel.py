"""The usage page's panel, drawn from real reports of a real DATA_DIR ledger: bars in proportion
to their numbers, the numbers as text too, every text escaped, and empty states that say why."""

from __future__ import annotations

import calendar
import re
from html.parser import HTMLParser

import pytest

from flux_api.observe.usage_report import usage_report
from flux_api.store.usage import DiskUsageBook
from flux_api.web.usage_panel import NO_ACCOUNTS, OWN_ONLY, TOKEN_REFUSED, in_words, render_panel

NOON = calendar.timegm((2026, 12, 7, 12, 0, 0))
NBSP = "\u00a0"
HOSTILE = '<script>alert("x")</script>'


class Elements(HTMLParser):
    """Each element's tag and attributes, in order; the text, joined."""

    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def of_class(self, tag: str, cls: str) -> list[dict]:
        return [a for t, a in self.found if t == tag and cls in a.get("class", "").split()]


@pytest.fixture
def book(tmp_path):
    book = DiskUsageBook(tmp_path / "usage")
    yield book
    book.close()


def pool(*states: str) -> list[dict]:
    return [
        {"id": f"acc{i}…000{i}", "state": state}
        | ({"until": "2026-12-08T00:00:00Z"} if state == "quota_exhausted" else {})
        for i, state in enumerate(states)
    ]


def drawn(book, accounts, daily=10_000, now=NOON, only_key=None) -> tuple[str, Elements]:
    """The panel, its no-break spaces read as spaces (they keep "3 h" and "60 %" on one line)."""
    html = render_panel(usage_report(book, accounts, daily, now, only_key), now).replace(NBSP, " ")
    return html, Elements(html)


def test_bars_are_in_proportion_to_their_numbers(book):
    book.add(
        "2026-12-07",
        {
            "account|acc0…0000|neurons": 6000,
            "account|acc1…0001|neurons": 2500,
            "key|alice|images|x|m": 9,
            "key|alice|hour|09": 3,
            "key|alice|hour|11": 6,
            "key|kids|images|x|m": 3,
        },
    )
    book.add("2026-12-06", {"key|alice|images|x|m": 4})
    html, page = drawn(book, pool("ok", "busy"))
    accounts, hours, days, keys = html.split("<section")[1:]  # the four cards, in order
    assert [a["width"] for a in Elements(accounts).of_class("rect", "fill")] == ["60.0", "25.0"]
    columns = Elements(hours).of_class("rect", "fill")
    assert len(columns) == 24
    assert (columns[9]["height"], columns[11]["height"], columns[0]["height"]) == (
        "50.0",
        "100.0",
        "0.0",
    )
    assert float(columns[9]["y"]) + float(columns[9]["height"]) == 100  # standing on the axis
    day_bars = Elements(days).of_class("rect", "fill")
    assert len(day_bars) == 30 and day_bars[-1]["height"] == "100.0"  # today, 12 images
    assert day_bars[-2]["height"] == "33.33"  # yesterday, 4 of 12
    assert [a["width"] for a in Elements(keys).of_class("rect", "fill")] == ["100.0", "33.33"]
    # the numbers as text too, and each chart named for screen readers
    text = " ".join(page.text)
    assert "6,000 of 10,000 neurons (60 %)" in text and "8,500 of 20,000 neurons" in text
    assert "the busiest hour 11:00–12:00 UTC with 6" in text and "9 images" in text
    for chart in page.of_class("svg", "columns") + page.of_class("svg", "hbar"):
        assert chart["role"] == "img" and chart["aria-label"]


def test_a_hostile_key_name_is_text_not_markup(book):
    book.add("2026-12-07", {f"key|{HOSTILE}|images|x|m": 2, f"key|{HOSTILE}|hour|10": 2})
    html, page = drawn(book, [{"id": HOSTILE, "state": "ok"}])
    assert "<script" not in html and [t for t, _ in page.found if t == "script"] == []
    assert "&lt;script&gt;" in html
    assert HOSTILE in " ".join(page.text)  # shown as it is, to the letter
    labels = [a["aria-label"] for a in page.of_class("svg", "hbar")]
    assert labels[0].startswith(HOSTILE + ": ") and labels[1] == f"{HOSTILE}: 2 images"


def test_a_parked_account_says_when_it_returns_and_a_spent_one_is_over(book):
    book.add("2026-12-07", {"account|acc1…0001|neurons": 12_000})
    html, page = drawn(book, pool("ok", "quota_exhausted", "rejected_token"), now=NOON + 9 * 3600)
    assert re.search(
        r'parked: returns at <time datetime="2026-12-08T00:00:00Z">00:00 UTC</time> \(in 3 h\)',
        html,
    )
    badges = [a["class"] for a in page.of_class("span", "badge")]
    assert badges == ["badge ok", "badge warn", "badge bad"]
    assert "token refused" in page.text and "parked" in page.text and TOKEN_REFUSED in html
    [over] = page.of_class("rect", "over")
    assert over["width"] == "100.0"  # 120 %: drawn full, in the warning colour
    assert "12,000 of 10,000 neurons (120 %)" in " ".join(page.text)


def test_without_a_cap_bars_compare_accounts(book):
    book.add(
        "2026-12-07", {"account|acc0…0000|neurons": 50_000, "account|acc1…0001|neurons": 25_000}
    )
    html, page = drawn(book, pool("ok", "ok"), daily=0)
    assert "No daily cap (CF_DAILY_NEURONS=0)" in html and "75,000 neurons today" in html
    assert [a["width"] for a in page.of_class("rect", "fill")][:2] == ["100.0", "50.0"]
    assert "runs out" not in html and " of 0 " not in html


def test_empty_states_say_why(book):
    html, page = drawn(book, [])
    assert NO_ACCOUNTS in html
    assert "No images yet today: the bars appear with the first." in html
    assert "No images in the last 30 days." in html
    assert page.of_class("svg", "columns") == []  # no empty chart: a sentence instead
    assert len(page.of_class("p", "empty")) == 4


def test_a_key_that_sees_only_its_own_is_told_so(book):
    book.add("2026-12-07", {"key|alice|images|x|m": 1, "key|bob|images|x|m": 5})
    html, page = drawn(book, pool("ok"), only_key="alice")
    assert OWN_ONLY in html and "acc0" not in html and "bob" not in html
    assert "1 image" in page.text


@pytest.mark.parametrize(
    "seconds, words",
    [(-5, "now"), (20, "now"), (25 * 60, "in 25 min"), (3 * 3600 + 60, "in 3 h"),
     (3 * 3600 + 30 * 60, "in 3 h 30 min"), (11 * 3600 + 30 * 60, "in 11 h")],
)  # fmt: skip
def test_how_far_a_moment_is_in_words(seconds, words):
    assert in_words(seconds).replace(NBSP, " ") == words
