"""The playground at `/`, in a real Chromium (Debian's), against the real gunicorn.

Playwright drives /usr/bin/chromium (never a downloaded browser). The fake Workers AI is slow, so
the progress lines can be seen before the image. Each state is saved as a screenshot in
test-artifacts/playground/ (ignored by git).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import API_KEY, ROOT, Gunicorn
from tests.fakes.workers_ai import Scripted
from tests.nginx import Nginx, require_program

SHOTS = ROOT / "test-artifacts" / "playground"
# What this machine's closed network needs (no background connections to Google's services).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    chromium = require_program("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def site(gunicorn, service_env, fake_ai):
    """The real gunicorn serving the page; the fake takes 2 s a generation."""
    fake_ai.latency = 2.0
    return gunicorn(service_env)


@pytest.fixture
def open_page(browser, site):
    contexts = []

    def open_(width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.goto(site.url + "/")
        return page

    yield open_
    for context in contexts:
        context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def save_key(page, key: str = API_KEY) -> None:
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Key saved in this browser").wait_for()


def test_generate_16_9_with_live_progress(open_page, fake_ai):
    page = open_page()
    assert "The service is up" in page.content()
    shot(page, "1-welcome")
    save_key(page)
    # The model list comes from /v1/models once a key is saved.
    page.wait_for_function("document.querySelectorAll('#model option').length === 9")
    page.get_by_label("Prompt").fill("a lighthouse at dawn")
    page.get_by_label("Aspect ratio").select_option("16:9")
    started = time.monotonic()
    page.get_by_label("Prompt").press("Control+Enter")  # the keyboard shortcut submits

    first_line = page.locator("#progress li").first
    first_line.wait_for(timeout=5000)
    seen_after = time.monotonic() - started
    assert "Original Prompt: a lighthouse at dawn 16:9" in first_line.inner_text()
    assert page.locator("#figure").is_hidden()  # the image is still being made
    assert seen_after < 1.5  # the first line arrives well before the 2-second image
    shot(page, "2-progress")

    image = page.get_by_role("img", name="a lighthouse at dawn").first
    image.wait_for(timeout=15000)
    page.wait_for_function("document.getElementById('image').complete")
    size = page.evaluate(
        "(i => [i.naturalWidth, i.naturalHeight])(document.getElementById('image'))"
    )
    assert size == [1024, 576]
    assert page.locator("#image-size").inner_text() == "1024x576"
    assert page.locator("#image-model").inner_text() == "@cf/black-forest-labs/flux-1-schnell"
    assert page.locator("#image-prompt").inner_text() == "a lighthouse at dawn"
    assert page.locator("#download").get_attribute("href").startswith("image/")
    assert [line.inner_text() for line in page.locator("#progress li").all()][-1].startswith("🌟")
    shot(page, "3-image")


def test_copy_buttons_copy_the_url_and_the_markdown(open_page, fake_ai):
    page = open_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    save_key(page)
    fake_ai.latency = 0
    page.get_by_label("Prompt").fill("a red kite")
    page.get_by_role("button", name="Generate").click()
    page.locator("#figure").wait_for()
    page.get_by_role("button", name="Copy markdown").click()
    markdown = page.evaluate("navigator.clipboard.readText()")
    assert markdown.startswith("![a red kite](http") and "/image/" in markdown
    page.get_by_role("button", name="Copy URL").click()
    assert page.evaluate("navigator.clipboard.readText()") == markdown[len("![a red kite](") : -1]


def test_a_wrong_key_shows_the_401_message(open_page):
    page = open_page()
    save_key(page, "sk-wrong")
    page.get_by_label("Prompt").fill("a fox")
    page.get_by_role("button", name="Generate").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Incorrect API key" in alert.inner_text()
    shot(page, "4-wrong-key")


def test_an_error_inside_the_stream_shows_the_apis_message(open_page, fake_ai):
    page = open_page()
    save_key(page)
    fake_ai.latency = 0.5
    fake_ai.script(Scripted(400, 3030, "AiError: Your output has been flagged for potential NSFW"))
    page.get_by_label("Prompt").fill("a fox")
    page.get_by_role("button", name="Generate").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "blocked by Cloudflare's content filter" in alert.inner_text()
    assert page.locator("#progress li").count() >= 1  # the lines before the failure stay
    assert page.locator("#figure").is_hidden()
    shot(page, "5-stream-error")


def test_the_gallery_survives_a_reload_and_marks_expired_images(open_page, fake_ai):
    page = open_page()
    save_key(page)
    fake_ai.latency = 0
    for prompt in ("first picture", "second picture"):
        page.get_by_label("Prompt").fill(prompt)
        page.get_by_role("button", name="Generate").click()
        page.get_by_role("img", name=prompt).first.wait_for()
    expired = {
        "key": "A" * 32,
        "url": "http://gone/image/" + "A" * 32,
        "prompt": "an old picture",
        "size": "1024x1024",
        "model": "m",
        "expiresAt": 0,
    }
    page.evaluate(
        f"""localStorage.setItem('flux-api.gallery', JSON.stringify(
            [...JSON.parse(localStorage.getItem('flux-api.gallery')), {json.dumps(expired)}]))"""
    )
    page.reload()
    items = page.locator("#gallery li")
    assert items.count() == 3
    assert items.nth(0).locator(".prompt").inner_text() == "second picture"  # newest first
    assert "min left" in items.nth(0).inner_text()
    assert items.nth(2).locator("img").count() == 0  # expired: no broken image
    assert "Expired" in items.nth(2).inner_text()
    page.wait_for_function(
        "[...document.querySelectorAll('#gallery img')].every(i => i.complete && i.naturalWidth)"
    )
    # The key survived the reload too, and the page never embeds it.
    assert "Key saved in this browser" in page.locator("#key-state").inner_text()
    assert API_KEY not in page.content()
    shot(page, "6-gallery")


def test_the_layout_holds_on_a_phone(open_page, fake_ai):
    page = open_page(width=375, height=740)
    save_key(page)
    fake_ai.latency = 0
    page.get_by_label("Prompt").fill("a tall tower")
    page.get_by_label("Aspect ratio").select_option("custom")
    page.get_by_label("Custom ratio").fill("2:3")
    page.get_by_role("button", name="Generate").click()
    page.get_by_role("img", name="a tall tower").first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll
    for control in ("API key", "Prompt", "Aspect ratio", "Model"):
        box = page.get_by_label(control).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, control
    image_box = page.locator("#image").bounding_box()
    assert image_box["width"] <= 375
    assert (
        page.locator("#image-size").inner_text() == "704x1024"
    )  # 2:3 → long side 1024, short side a multiple of 64
    shot(page, "7-phone")


def test_the_keyboard_alone_reaches_every_control_in_order(open_page):
    page = open_page()
    order = []
    for _ in range(12):
        page.keyboard.press("Tab")
        order.append(
            page.evaluate("document.activeElement.id || document.activeElement.textContent")
        )
    expected = ["api-key", "Save", "forget-key", "prompt", "ratio", "model", "generate"]
    positions = [order.index(name) for name in expected]
    assert positions == sorted(positions), order


def test_a_ratio_typed_in_the_prompt_is_kept_by_the_default_choice(open_page, fake_ai):
    page = open_page()
    save_key(page)
    fake_ai.latency = 0
    page.get_by_label("Prompt").fill("a wide valley 16:9")
    page.get_by_role("button", name="Generate").click()
    page.get_by_role("img", name="a wide valley 16:9").first.wait_for()
    assert page.locator("#image-size").inner_text() == "1024x576"
    assert "Original Prompt: a wide valley 16:9" in page.locator("#progress").inner_text()


def test_forget_removes_the_key(open_page):
    page = open_page()
    save_key(page)
    page.get_by_role("button", name="Forget").click()
    assert page.evaluate("localStorage.getItem('flux-api.key')") is None
    page.get_by_label("Prompt").fill("a fox")
    page.get_by_role("button", name="Generate").click()
    assert "API key first" in page.get_by_role("alert").inner_text()


def test_works_behind_the_shipped_nginx_over_https_with_cors_restricted(
    browser, tmp_path, service_env, fake_ai
):
    gunicorn = Gunicorn({**service_env, "CORS_ORIGINS": "https://elsewhere.example"}, tmp_path)
    gunicorn.start()
    nginx = Nginx(gunicorn.port, tmp_path / "nginx").start()
    context = browser.new_context(ignore_https_errors=True)  # the test's self-signed certificate
    try:
        page = context.new_page()
        page.goto(nginx.url + "/")
        save_key(page)
        page.get_by_label("Prompt").fill("a harbour at night")
        page.get_by_role("button", name="Generate").click()
        page.get_by_role("img", name="a harbour at night").first.wait_for(timeout=15000)
        page.wait_for_function("document.getElementById('image').naturalWidth === 1024")
        image_url = page.evaluate("document.getElementById('image').src")
        assert image_url.startswith(nginx.url + "/image/")  # same origin, over https
        shot(page, "8-behind-nginx")
    finally:
        context.close()
        nginx.stop()
        gunicorn.stop()
