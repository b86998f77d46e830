"""The usage page: GET /usage is an open shell with no number in it, GET /v1/usage/view draws
/v1/usage for whoever asks with a key (and shows that key what /v1/usage would: its own only,
unless it is METRICS_KEY or none is set); in Debian's Chromium after real generations against
the fake, in light and dark mode, on a desktop and at 390 px, with no CSP violation.

Screenshots of each state go to test-artifacts/usage/ (ignored by git), as the playground's do.
"""

from __future__ import annotations

import re

import pytest
import requests

from flux_api.web.page_security import POLICY
from flux_api.web.usage_panel import OWN_ONLY
from tests.support import ROOT
from tests.support.accounts import B_ID, B_TOKEN, C_ID
from tests.support.playground import save_key
from tests.support.service import API_KEY

ALICE = "sk-alice-0123456789abcdef"
KIDS = "sk-kids-0123456789abcdef"
NOBODY = "sk-nobody-0123456789abcdef"  # a key that has made nothing
METRICS = "sk-metrics-reader-0123456789"
KEYS = f"alice:{ALICE}, kids:{KIDS}, nobody:{NOBODY}"
SHOTS = ROOT / "test-artifacts" / "usage"


def view(service, key: str | None) -> str:
    response = service.get("/v1/usage/view", key=key)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-store"
    return response.text


# ---- over HTTP -----------------------------------------------------------------------------


def test_the_page_is_an_open_shell_and_its_view_needs_a_key(start_service):
    service = start_service(API_KEY=KEYS)
    assert service.chat("a fox", key=ALICE).status_code == 200
    page = service.get("/usage", key=None)
    assert page.status_code == 200 and page.headers["Content-Security-Policy"] == POLICY
    assert "alice" not in page.text and "neurons" not in page.text  # no data in the shell
    assert 'src="static/usage.js"' in page.text
    for key in (None, "sk-wrong-0123456789abcdef"):
        refused = service.get("/v1/usage/view", key=key)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
    assert 'href="usage"' in service.get("/", key=None).text  # linked from the playground


def test_a_key_sees_its_own_and_metrics_key_sees_everything(start_service):
    service = start_service(API_KEY=KEYS, METRICS_KEY=METRICS)
    assert service.chat("a fox", key=ALICE).status_code == 200
    assert service.chat("a cat", key=KIDS).status_code == 200
    own = view(service, ALICE)
    assert "alice" in own and "kids" not in own and OWN_ONLY in own
    assert "Accounts today" not in own
    everyone = view(service, METRICS)
    assert "alice" in everyone and "kids" in everyone and "Accounts today" in everyone
    assert "2 images today" in everyone
    # the hours behind the chart, in /v1/usage: per key and in total, for what the key may see
    hours = service.get("/v1/usage", key=ALICE).json()["today"]["hours"]
    assert len(hours) == 24 and sum(hours.values()) == 1
    everyone_today = service.get("/v1/usage", key=METRICS).json()["today"]
    assert sum(everyone_today["hours"].values()) == 2
    assert [sum(k["hours"].values()) for k in everyone_today["keys"]] == [1, 1]
    for text in (own, everyone):
        for secret in (ALICE, KIDS, METRICS):
            assert secret not in text


def test_without_metrics_key_any_key_sees_everything(start_service):
    service = start_service(API_KEY=KEYS)
    assert service.chat("a cat", key=KIDS).status_code == 200
    seen = view(service, ALICE)
    assert "kids" in seen and "Accounts today" in seen and OWN_ONLY not in seen


# ---- in Chromium ---------------------------------------------------------------------------


@pytest.fixture
def site(gunicorn, service_env, fake_ai):
    """The real gunicorn with three accounts: A works, B has used its allocation (parked), C's
    token is refused; alice made 4 images, kids 2, nobody none."""
    fake_ai.latency = 0
    fake_ai.neurons = 700.0
    fake_ai.add_account(B_ID, B_TOKEN)
    fake_ai.exhausted.add(B_ID)
    env = {
        **service_env,
        "API_KEY": KEYS,
        "METRICS_KEY": METRICS,
        "CF_ACCOUNTS": f"{B_ID}:{B_TOKEN}, {C_ID}:cf-token-C-SECRET-wrong",
    }
    server = gunicorn(env, workers=2)

    def chat(key: str, prompt: str) -> None:
        answer = requests.post(
            server.url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": prompt}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    for i in range(4):
        chat(ALICE, f"a fox {i}")
    for i in range(2):
        chat(KIDS, f"a cat {i}")
    return server


def open_usage(browser, site, key: str, scheme: str = "light", width: int = 1280):
    """A fresh browser (its own localStorage) at the playground, the key saved there, then the
    playground's link to the usage page; violations of the CSP and console errors recorded."""
    context = browser.new_context(
        viewport={"width": width, "height": 900},
        color_scheme=scheme,
        device_scale_factor=1,
        timezone_id="UTC",  # a parked account then always returns on another day than today
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.add_init_script(
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page.goto(site.url + "/")
    save_key(page, key)
    page.get_by_role("link", name="Usage today").click()
    page.wait_for_url("**/usage")
    # What the playground logged stays there (METRICS_KEY opens no v1/models: a 401).
    errors.clear()
    return context, page, errors


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def bar_widths(page, css: str) -> list[float]:
    return page.eval_on_selector_all(css, "bars => bars.map(b => Number(b.getAttribute('width')))")


def test_the_page_draws_the_usage_after_real_generations_light_dark_and_phone(browser, site):
    for scheme in ("light", "dark"):
        for width in (1280, 390):
            check_the_drawn_page(browser, site, scheme, width)


def check_the_drawn_page(browser, site, scheme: str, width: int) -> None:
    context, page, errors = open_usage(browser, site, METRICS, scheme, width)
    try:
        page.locator("svg.columns").first.wait_for(timeout=10000)
        text = page.locator("#usage").inner_text()
        assert "6 images today" in text and "alice" in text and "kids" in text
        assert "parked" in text and "token refused" in text and "returns at" in text
        assert "neurons" in text and "of 10,000 neurons" in text
        # A's bar: 6 images at 700 neurons of 10,000; the parked and refused ones empty.
        assert bar_widths(page, ".accounts svg.hbar rect.fill")[:3] == [42.0, 0.0, 0.0]
        hours = page.locator("svg.columns").first
        assert hours.get_attribute("aria-label") == "Images per UTC hour today: 6 in all"
        assert page.locator("svg.columns").nth(0).locator("rect.fill").count() == 24
        assert page.locator("svg.columns").nth(1).locator("rect.fill").count() == 30
        # Times are rewritten in the browser's zone and format; the parked account's return,
        # tomorrow's 00:00, with its day (a run-out time, shown only when it falls today, not).
        returns = page.locator('time[datetime$="T00:00:00Z"]').first
        assert re.fullmatch(r"[A-Z][a-z]{2},? \d{1,2}:\d\d( [AP]M)?", returns.inner_text())
        assert returns.get_attribute("title").endswith(" UTC")
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == ("rgb(17, 19, 24)" if scheme == "dark" else "rgb(246, 247, 249)")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        assert page.evaluate("() => window.violations") == [] and errors == []
        assert METRICS not in page.content()
        shot(page, f"1-usage-{scheme}-{width}")
    finally:
        context.close()


def test_a_key_of_its_own_with_nothing_made_sees_intended_empty_states(browser, site):
    context, page, errors = open_usage(browser, site, NOBODY, "light", 390)
    try:
        page.get_by_text("No images yet today: the bars appear with the first.").wait_for()
        text = page.locator("#usage").inner_text()
        assert OWN_ONLY in text and "alice" not in text and "kids" not in text
        assert page.locator("svg.columns").count() == 0
        assert page.evaluate("() => window.violations") == [] and errors == []
        shot(page, "2-empty-own-key-390")
    finally:
        context.close()


def test_a_wrong_key_is_told_so_with_the_key_field(browser, site):
    context, page, errors = open_usage(browser, site, "sk-wrong-0123456789abcdef", "dark", 390)
    try:
        page.get_by_text("This key was refused (401).").wait_for()
        assert page.locator("#usage").inner_text() == ""
        assert page.evaluate("() => document.activeElement.id") == "api-key"
        shot(page, "3-wrong-key-dark-390")
        save_key_here(page, ALICE)  # the same field takes a good one
        page.locator("svg.columns").first.wait_for(timeout=10000)
        assert "alice" in page.locator("#usage").inner_text()
        assert [e for e in errors if "401" not in e] == []  # the refused fetch is logged
        assert page.evaluate("() => window.violations") == []
    finally:
        context.close()


def save_key_here(page, key: str) -> None:
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Save").click()


def test_the_page_without_a_saved_key_asks_for_one(browser, site):
    context = browser.new_context(viewport={"width": 390, "height": 800})
    try:
        page = context.new_page()
        page.goto(site.url + "/usage")
        page.get_by_text("Enter the service's API key above to see its usage.").wait_for()
        assert page.evaluate("() => document.activeElement.id") == "api-key"
        assert API_KEY not in page.content()
    finally:
        context.close()
