"""The playground at `/`, in a real Chromium (Debian's), against the real gunicorn.

Playwright drives /usr/bin/chromium (never a downloaded browser). The fake Workers AI is slow, so
the progress lines can be seen before the image. Each state is saved as a screenshot in
test-artifacts/playground/ (ignored by git).
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from flux_api.errors import APIError
from flux_api.generation.sizes import Ratio, parse_ratio, size_for_ratio
from tests.support import ROOT
from tests.support.fakes.workers_ai import Scripted
from tests.support.nginx import Nginx
from tests.support.pictures import picture as picture_file
from tests.support.playground import save_key, wait_until
from tests.support.programs import Gunicorn
from tests.support.ratio_cases import RATIO_CASES, TEXT_CASES
from tests.support.service import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
SHOTS = ROOT / "test-artifacts" / "playground"


# What this machine's closed network needs (no background connections to Google's services).
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


def test_generate_16_9_with_live_progress(open_page, fake_ai, site):
    page = open_page()
    assert "The service is up" in page.content()
    shot(page, "1-welcome")
    save_key(page)
    # The model list comes from /v1/models once a key is saved. (A function, not an expression:
    # Playwright evaluates a bare expression with eval, which the page's CSP refuses.)
    offered = requests.get(site.url + "/v1/models", headers=AUTH, timeout=10).json()["data"]
    wait_until(page, f"() => document.querySelectorAll('#model option').length === {len(offered)}")
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
    wait_until(page, "document.getElementById('image').complete")
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
    assert "6 days left" in items.nth(0).inner_text()  # kept a week by default
    assert items.nth(2).locator("img").count() == 0  # expired: no broken image
    assert "Expired" in items.nth(2).inner_text()
    wait_until(
        page,
        "[...document.querySelectorAll('#gallery img')].every(i => i.complete && i.naturalWidth)",
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
    expected = [
        "api-key",
        "Save",
        "forget-key",
        "prompt",
        "edit-images",
        "ratio",
        "model",
        "generate",
    ]
    positions = [order.index(name) for name in expected]
    assert positions == sorted(positions), order


def test_a_ratio_typed_in_the_prompt_is_kept_by_the_default_choice(open_page, fake_ai):
    page = open_page()
    save_key(page)
    fake_ai.latency = 0
    page.get_by_label("Prompt").fill("a wide valley 16:9")
    assert page.locator("#ratio-used").inner_text() == "Ratio used: 16:9, from the prompt."
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
        wait_until(page, "document.getElementById('image').naturalWidth === 1024")
        image_url = page.evaluate("document.getElementById('image').src")
        assert image_url.startswith(nginx.url + "/image/")  # same origin, over https
        shot(page, "8-behind-nginx")
    finally:
        context.close()
        nginx.stop()
        gunicorn.stop()


def test_a_ratio_chosen_in_the_menu_replaces_the_one_typed(open_page, fake_ai):
    page = open_page()
    save_key(page)
    fake_ai.latency = 0
    page.get_by_label("Prompt").fill("a wide valley (16:9).")
    page.get_by_label("Aspect ratio").select_option("3:2")
    assert page.locator("#ratio-used").inner_text() == (
        "Ratio used: 3:2, from the menu (the 16:9 in the prompt is left out)."
    )
    page.get_by_role("button", name="Generate").click()
    page.locator("#figure").wait_for()
    assert page.locator("#image-size").inner_text() == "768x512"
    assert page.locator("#image-prompt").inner_text() == "a wide valley"
    assert "Original Prompt: a wide valley 3:2" in page.locator("#progress").inner_text()


def test_the_page_reads_ratios_as_the_service_does(open_page):
    """static/ratio.js mirrors flux_api/generation/sizes.py: the same table, the same answers; and a menu
    ratio added by the page is the one the service uses, whatever the prompt says."""
    page = open_page()
    prompts = [case[0] for case in RATIO_CASES] + TEXT_CASES
    in_page = page.evaluate("prompts => prompts.map(parseRatio)", prompts)
    for prompt, seen in zip(prompts, in_page):
        text, ratio = parse_ratio(prompt)
        assert seen == {"text": text, "ratio": ratio and str(ratio)}, prompt
    sent = page.evaluate(
        "prompts => prompts.map(p => withRatio(p, '4:3'))", prompts + ["a fox --ar 1:2 3:2"]
    )
    for message in sent:
        assert str(parse_ratio(message)[1]) == "4:3", message


def test_a_key_typed_but_not_saved_is_used_and_kept(open_page, fake_ai):
    page = open_page()
    fake_ai.latency = 0
    page.get_by_label("API key").fill(API_KEY)  # pasted, Save not pressed
    page.get_by_label("Prompt").fill("a quiet bay")
    page.get_by_role("button", name="Generate").click()
    page.get_by_role("img", name="a quiet bay").first.wait_for()
    assert page.evaluate("localStorage.getItem('flux-api.key')") == API_KEY
    assert "Key saved in this browser" in page.locator("#key-state").inner_text()
    assert page.get_by_role("alert").is_hidden()


def test_the_image_facts_come_as_data_not_from_the_wording(open_page, fake_ai, site):
    """A prompt that looks like an image URL and a markdown image changes nothing shown or
    copied: the page reads the stream's flux_api facts."""
    prompt = "a poster saying /image/sale ![x](http://evil.example/image/x)"
    page = open_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    save_key(page)
    fake_ai.latency = 0
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Generate").click()
    page.locator("#figure").wait_for()
    wait_until(page, "document.getElementById('image').naturalWidth === 1024")
    shown = page.evaluate("document.getElementById('image').src")
    assert shown.startswith(site.url + "/image/")
    assert page.locator("#image-prompt").inner_text() == prompt
    assert page.locator("#image-size").inner_text() == "1024x1024"
    page.get_by_role("button", name="Copy URL").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == shown  # the stored image, served on this page's origin
    assert requests.get(copied, timeout=10).headers["Content-Type"].startswith("image/")
    page.get_by_role("button", name="Copy markdown").click()
    markdown = page.evaluate("navigator.clipboard.readText()")
    assert markdown == (
        r"![a poster saying /image/sale !\[x\](http://evil.example/image/x)]" f"({copied})"
    )


# How much wider the chosen option's text is than the room the closed menu has for it (padding
# and Chromium's arrow, about 20 px, taken off): above 0, it is cut off.
TEXT_OVERFLOW = """select => {
  const style = getComputedStyle(select);
  const context = document.createElement("canvas").getContext("2d");
  context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  const room = select.clientWidth - parseFloat(style.paddingLeft)
    - parseFloat(style.paddingRight) - 24;
  return context.measureText(select.selectedOptions[0].text).width - room;
}"""


@pytest.mark.parametrize("width, height", [(1280, 800), (1024, 768), (375, 740)])
def test_the_ratio_menu_shows_the_chosen_option_whole(open_page, width, height):
    page = open_page(width, height)
    menu = page.locator("#ratio")
    for value in menu.evaluate("select => [...select.options].map(o => o.value)"):
        menu.select_option(value)  # "custom" shows the custom field beside or below it
        assert menu.evaluate(TEXT_OVERFLOW) <= 0, value
        shot(page, f"9-ratio-menu-{width}-{value.replace(':', 'x') or 'default'}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_loading_the_page_fails_no_request_and_has_an_icon(browser, site):
    context = browser.new_context()
    try:
        page = context.new_page()
        failed, errors = [], []
        page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.goto(site.url + "/")
        page.wait_for_load_state("networkidle")
        assert failed == [] and errors == []
        icon = page.locator("link[rel=icon]").evaluate("link => link.href")
    finally:
        context.close()
    answer = requests.get(icon, timeout=10)  # no key: the icon is public
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("image/svg+xml")
    # The same icon for what asks for /favicon.ico (an image or JSON opened on its own).
    old_way = requests.get(site.url + "/static/favicon.ico", timeout=10)
    assert old_way.headers["Content-Type"] == "image/vnd.microsoft.icon"
    assert old_way.content.startswith(b"\0\0\1\0")  # an ICO file


def test_a_created_key_is_named_by_its_file_never_shown(start_service, tmp_path):
    service = start_service(API_KEY=None)
    page = requests.get(service.url + "/", timeout=10).text
    key_file = tmp_path / "data" / "api_key"
    assert "<code>api_key</code> under DATA_DIR" in page
    assert str(tmp_path) not in page  # the server's paths are nobody else's business
    assert key_file.read_text().strip() not in page
    assert "created a key" not in requests.get(start_service().url + "/", timeout=10).text


# ---- editing images ------------------------------------------------------------------------

EDIT_MODEL = "@cf/black-forest-labs/flux-2-klein-4b"  # the service's default EDIT_MODEL


def picture(name: str, width: int = 640, height: int = 480, fmt: str = "PNG") -> dict:
    """A file for Playwright's set_input_files."""
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[fmt]
    data = picture_file(width, height, fmt, colour=(40, 120, 200))
    return {"name": name, "mimeType": mime, "buffer": data}


def pick(page, *files: dict) -> None:
    page.get_by_label("Images to edit").set_input_files(list(files))


def previews(page) -> list[str]:
    return [p.inner_text() for p in page.locator("#attachments li p").all()]


def drawn(page, count: int) -> None:
    """Wait until `count` previews are drawn (canvas, from the file's bytes)."""
    page.locator("#attachments canvas.drawn").nth(count - 1).wait_for()


def test_edit_an_uploaded_image(open_page, fake_ai, site):
    page = open_page()
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))  # CSP included
    save_key(page)
    fake_ai.latency = 1.0
    pick(page, picture("fox.png", 640, 480))
    drawn(page, 1)
    assert previews(page) == ["image 0: fox.png"]
    assert page.get_by_role("img", name="image 0: fox.png").is_visible()
    assert page.locator("#ratio-used").inner_text() == "Ratio used: the first image's shape."
    assert page.locator("#model-used").inner_text() == (
        f"The chosen model does not edit 1 image: {EDIT_MODEL} edits them."
    )
    shot(page, "10-attached")
    page.get_by_label("Prompt").fill("give the fox a red hat")
    page.get_by_role("button", name="Generate").click()
    assert page.locator("#progress li").first.inner_text() == "Editing 1 image…"
    assert page.get_by_role("button", name="Editing…").is_disabled()

    page.locator("#figure").wait_for(timeout=15000)
    wait_until(page, "() => document.getElementById('image').naturalWidth > 0")
    assert page.locator("#image-size").inner_text() == "1024x768"  # the picture's 4:3 shape
    assert page.locator("#image-model").inner_text() == EDIT_MODEL
    assert page.locator("#image-prompt").inner_text() == "give the fox a red hat"
    shown = page.evaluate("document.getElementById('image').src")
    assert shown.startswith(site.url + "/image/")
    assert requests.get(shown, timeout=10).headers["Content-Type"].startswith("image/")
    (call,) = fake_ai.calls
    assert call["model"] == EDIT_MODEL
    assert [reference[0] for reference in call["references"]] == ["input_image_0"]
    assert page.locator("#gallery li .prompt").first.inner_text() == "give the fox a red hat"
    assert page.get_by_role("alert").is_hidden()
    assert errors == []
    shot(page, "11-edited")


def test_remove_a_preview_and_drop_a_file(open_page, fake_ai):
    page = open_page()
    save_key(page)
    pick(page, picture("first.png"), picture("second.jpg", fmt="JPEG"))
    drawn(page, 2)
    # A file dropped on the zone is added after them.
    data = picture("third.webp", 300, 600, fmt="WEBP")
    transfer = page.evaluate_handle(
        """([name, type, bytes]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, { type }));
            return transfer;
        }""",
        [data["name"], data["mimeType"], list(data["buffer"])],
    )
    page.locator("#drop-zone").dispatch_event("drop", {"dataTransfer": transfer})
    drawn(page, 3)
    assert previews(page) == ["image 0: first.png", "image 1: second.jpg", "image 2: third.webp"]
    page.get_by_role("button", name="Remove image 0: first.png").click()
    assert previews(page) == ["image 0: second.jpg", "image 1: third.webp"]
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == "Remove image 0: second.jpg"  # the focus stays in the list
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert previews(page) == [] and page.locator("#attachments").is_hidden()
    assert page.evaluate("document.activeElement.id") == "edit-images"
    assert page.locator("#model-used").is_hidden()
    assert page.locator("#ratio-used").inner_text() == "Ratio used: 1:1."
    assert fake_ai.calls == []


def test_the_edit_button_of_a_gallery_image_attaches_it(open_page, fake_ai):
    page = open_page()
    save_key(page)
    fake_ai.latency = 0
    page.get_by_label("Prompt").fill("a small boat")
    page.get_by_role("button", name="Generate").click()
    page.locator("#figure").wait_for()
    page.get_by_role("button", name="Edit this image: a small boat").click()
    drawn(page, 1)
    (name,) = previews(page)
    assert name.startswith("image 0: flux-") and name.endswith(".jpg")
    assert page.evaluate("document.activeElement.id") == "prompt"  # next: say what to change
    page.get_by_label("Prompt").fill("make the boat yellow")
    page.get_by_label("Aspect ratio").select_option("16:9")
    page.get_by_role("button", name="Generate").click()
    page.get_by_role("img", name="make the boat yellow").first.wait_for()
    assert page.locator("#image-size").inner_text() == "1024x576"  # the menu's ratio wins
    _generated, edited = fake_ai.calls
    assert [reference[0] for reference in edited["references"]] == ["input_image_0"]
    assert (edited["fields"]["width"], edited["fields"]["height"]) == (1024, 576)


def test_a_fifth_image_is_refused_before_sending(open_page, fake_ai):
    page = open_page(width=375, height=740)
    save_key(page)
    pick(page, *(picture(f"p{i}.png") for i in range(3)))
    drawn(page, 3)
    assert page.get_by_role("alert").is_hidden()
    pick(page, picture("p3.png"), picture("p4.png"))
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "At most 4 images" in alert.inner_text() and "1 file was not added" in alert.inner_text()
    drawn(page, 4)
    assert previews(page) == [f"image {i}: p{i}.png" for i in range(4)]
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll
    assert fake_ai.calls == []
    shot(page, "12-four-images-phone")


def test_a_file_that_is_not_an_image_shows_the_apis_400(open_page, fake_ai):
    page = open_page()
    save_key(page)
    pick(page, {"name": "notes.png", "mimeType": "image/png", "buffer": b"just some text"})
    page.get_by_role("img", name="image 0: notes.png (no preview)").wait_for()
    page.get_by_label("Prompt").fill("make it pretty")
    page.get_by_role("button", name="Generate").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "The image 0 is not a JPEG, PNG or WebP image" in alert.inner_text()
    assert page.locator("#figure").is_hidden()
    assert page.get_by_role("button", name="Generate").is_enabled()
    assert fake_ai.calls == []
    shot(page, "13-not-an-image")


def test_the_page_sizes_ratios_as_the_service_does(open_page):
    """static/ratio.js sizeForRatio mirrors sizes.py size_for_ratio: the size an edit sends."""
    page = open_page()
    ratios = [f"{w}:{h}" for w in range(1, 41) for h in range(1, 41)] + ["0:1", "1:0", "32:9"]
    in_page = page.evaluate("ratios => ratios.map(sizeForRatio)", ratios)
    for ratio, seen in zip(ratios, in_page):
        width, height = (int(side) for side in ratio.split(":"))
        try:
            expected = "{}x{}".format(*size_for_ratio(Ratio(width, height)))
        except APIError:  # the service refuses it: zero side, or beyond 4:1
            expected = None
        assert seen == expected, ratio
