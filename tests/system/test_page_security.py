"""The playground's Content-Security-Policy and frame protection, from the app itself (a bare
gunicorn), checked by header and in Debian's Chromium: the page works under the policy and
another site cannot frame it."""

from __future__ import annotations

import re
import threading
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flux_api.web.page_security import POLICY
from tests.support import ROOT
from tests.support.playground import save_key, wait_until
from tests.support.service import API_KEY

PAGE_FILES = (
    "/",
    "/static/common.js",
    "/static/playground.js",
    "/static/playground.css",
    "/usage",
    "/static/usage.js",
    "/static/usage.css",
)


def test_the_page_and_its_files_carry_the_policy(service):
    for path in PAGE_FILES:
        response = service.get(path, key=None)
        assert response.status_code == 200, path
        assert response.headers["Content-Security-Policy"] == POLICY, path
        assert response.headers["X-Frame-Options"] == "DENY", path
    directives = dict(d.split(" ", 1) for d in POLICY.split("; "))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'none'"
    assert "unsafe" not in POLICY  # no inline script or style, no eval


class _InlineCode(HTMLParser):
    """Collects what a policy without 'unsafe-inline' blocks: inline scripts and styles, style
    attributes, event-handler attributes, javascript: URLs."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.found.append(f"{tag} {name}=")
            if value and value.strip().lower().startswith("javascript:"):
                self.found.append(f"{tag} {name}=javascript:")


@pytest.mark.parametrize(
    ("name", "scripts"),
    [("base", ["common"]), ("index", ["ratio", "playground"]), ("usage", ["usage"])],
)
def test_the_pages_have_no_inline_code_the_policy_would_block(name, scripts):
    parser = _InlineCode()
    parser.feed((ROOT / "flux_api" / "templates" / f"{name}.html").read_text())
    assert parser.found == []
    for script in scripts:
        assert not re.search(
            r"\beval\(|new Function\(|setAttribute\(\s*[\"'](on|style)|innerHTML",
            (ROOT / "flux_api" / "static" / f"{script}.js").read_text(),
        )


def test_the_usage_view_has_no_inline_code_and_carries_the_policy(service):
    service.chat("a fox")
    response = service.get("/v1/usage/view")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == POLICY
    parser = _InlineCode()
    parser.feed(response.text)
    assert parser.found == [] and "<svg" in response.text


@pytest.fixture
def site(gunicorn, service_env, fake_ai):
    fake_ai.latency = 0
    return gunicorn(service_env, workers=1)


def test_the_page_works_under_its_policy_with_no_violation(browser, site):
    context = browser.new_context()
    try:
        page = context.new_page()
        # Every violation fires this event on the document; the page keeps a list.
        page.add_init_script(
            "window.violations = [];"
            "document.addEventListener('securitypolicyviolation',"
            " e => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));"
        )
        response = page.goto(site.url + "/")
        assert response.headers["content-security-policy"] == POLICY
        save_key(page)
        wait_until(page, "() => document.querySelectorAll('#model option').length > 1")
        page.get_by_label("Prompt").fill("a fox under a strict policy")
        page.get_by_role("button", name="Generate").click()
        page.get_by_role("img", name="a fox under a strict policy").first.wait_for(timeout=15000)
        wait_until(page, "() => document.getElementById('image').naturalWidth > 0")
        page.reload()  # the gallery, drawn from localStorage
        wait_until(
            page,
            "() => [...document.querySelectorAll('#gallery img')]"
            ".every(i => i.complete && i.naturalWidth)",
        )
        assert page.evaluate("window.violations") == []
        assert API_KEY not in page.content()
    finally:
        context.close()


@pytest.fixture
def framer():
    """Another origin on loopback (another port), serving a page set by the test."""
    pages = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages["/"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield pages, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def test_another_site_cannot_frame_the_page(browser, site, framer):
    pages, framer_url = framer
    # The same iframe shows a JSON answer of the app's (no frame protection), not the page.
    pages["/"] = f'<iframe src="{site.url}/"></iframe><iframe src="{site.url}/healthz"></iframe>'
    context = browser.new_context()
    try:
        page = context.new_page()
        refused = []
        page.on("console", lambda m: refused.append(m.text))
        page.goto(framer_url)
        page.wait_for_load_state("load")
        contents = [frame.content() for frame in page.frames[1:]]
        assert any('"status"' in c for c in contents), contents  # framing works at all
        assert not any("The service is up" in c for c in contents), contents
        assert any("frame-ancestors" in text for text in refused), refused
    finally:
        context.close()
