"""The shipped nginx site in front of the real gunicorn, over TLS on loopback."""

import base64
import difflib
import io
import re
import socket
import ssl
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.support import ROOT
from tests.support.nginx import SITE, Nginx
from tests.support.programs import Gunicorn, require_program
from tests.support.service import API_KEY, read_sse

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def stack(tmp_path, service_env):
    """Start gunicorn (2 workers) and nginx in front of it; returns (nginx, gunicorn)."""
    started = []

    def start(workers: int = 2, cors_origins=(), sed: str = "", **env):
        """`cors_origins`: the site's CORS map edited as its comment says; `sed`: an edit of the
        site as the README gives it, run on the file before nginx starts."""
        gunicorn = Gunicorn({**service_env, **env}, tmp_path, workers).start()
        started.append(gunicorn)
        nginx = Nginx(gunicorn.port, tmp_path / f"nginx-{gunicorn.port}", cors_origins=cors_origins)
        if sed:
            subprocess.run(["sed", "-i", sed, str(nginx.site)], check=True)
        started.append(nginx.start())
        return nginx, gunicorn

    yield start
    for process in reversed(started):
        process.stop()


def chat(nginx, content="a fox", **body):
    return requests.post(
        f"{nginx.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": content}], **body},
        headers=AUTH,
        verify=nginx.cert,
        timeout=30,
        stream=body.get("stream", False),
    )


def generate(url: str, prompt: str, verify=True, headers=None) -> requests.Response:
    """An Images API call: its path keeps nginx's 80k body limit (chat's allows images)."""
    return requests.post(
        f"{url}/v1/images/generations",
        json={"prompt": prompt},
        headers={**AUTH, **(headers or {})},
        verify=verify,
        timeout=30,
    )


def test_stream_first_chunk_arrives_through_nginx_before_the_generation_ends(stack, fake_ai):
    nginx, _ = stack()
    fake_ai.latency = 2.0
    started = time.monotonic()
    response = chat(nginx, stream=True)
    events = read_sse(response, started)
    first_data = next(e for e in events if e.data)
    assert first_data.at < 1.0
    assert events[-1].data == "[DONE]" and events[-1].at >= 2.0
    assert any(e.comment == "keep-alive" and e.at < 2.0 for e in events)


def test_image_urls_carry_the_forwarded_scheme_and_host(stack, fake_ai):
    nginx, _ = stack()
    content = chat(nginx).json()["choices"][0]["message"]["content"]
    url = re.search(r"\((https?://[^)]+)\)$", content).group(1)
    assert url.startswith(f"https://localhost:{nginx.https_port}/image/")
    image = requests.get(url, verify=nginx.cert, timeout=10)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"


def image_path(nginx) -> str:
    content = chat(nginx).json()["choices"][0]["message"]["content"]
    return re.search(r"(/image/[^)]+)\)$", content).group(1)


def test_repeated_image_fetch_is_served_from_nginx_cache(stack, fake_ai):
    nginx, gunicorn = stack()
    path = image_path(nginx)
    first = requests.get(nginx.url + path, verify=nginx.cert, timeout=10)
    second = requests.get(nginx.url + path, verify=nginx.cert, timeout=10)
    assert first.headers["X-Cache-Status"] == "MISS"
    assert second.headers["X-Cache-Status"] == "HIT"
    assert second.content == first.content
    assert "X-Accel-Expires" not in first.headers  # for nginx's cache only, never a client
    time.sleep(0.3)
    assert gunicorn.log.count(f"path={path} ") == 1  # the app saw the first fetch only


def lifetime(response) -> float:
    """Seconds a browser may keep `response` (RFC 9111: max-age, else Expires - Date; less Age)."""
    match = re.search(r"max-age=(\d+)", response.headers["Cache-Control"])
    if match:
        fresh = int(match.group(1))
    else:
        expires = parsedate_to_datetime(response.headers["Expires"])
        fresh = (expires - parsedate_to_datetime(response.headers["Date"])).total_seconds()
    return fresh - int(response.headers.get("Age", 0))


def test_a_cached_image_never_outlives_the_image_nor_replays_a_request_id(stack, fake_ai):
    nginx, gunicorn = stack(IMAGE_EXPIRATION="600")
    path = image_path(nginx)
    first = requests.get(
        nginx.url + path, headers={"X-Request-ID": "fetch-1"}, verify=nginx.cert, timeout=10
    )
    time.sleep(2.1)  # Date and Expires have a resolution of a second
    second = requests.get(
        nginx.url + path, headers={"X-Request-ID": "fetch-2"}, verify=nginx.cert, timeout=10
    )
    assert (first.headers["X-Cache-Status"], second.headers["X-Cache-Status"]) == ("MISS", "HIT")
    print(f"a hit's Age header: {second.headers.get('Age')!r}")  # nginx adds none
    # The image has 600 s less the time since it was made; the hit may not promise more.
    assert lifetime(first) <= 600
    assert lifetime(second) <= lifetime(first) - 2
    assert "max-age" not in second.headers["Cache-Control"]
    assert second.headers["Expires"] == first.headers["Expires"]
    direct = requests.get(gunicorn.url + path, timeout=10)  # the app alone: max-age from now
    assert abs(lifetime(direct) - lifetime(second)) <= 1
    assert parsedate_to_datetime(direct.headers["Expires"]) == parsedate_to_datetime(
        second.headers["Expires"]
    )
    # Each answer carries its own request's id, the one the app logged for the miss.
    assert first.headers["X-Request-ID"] == "fetch-1"
    assert second.headers["X-Request-ID"] == "fetch-2"
    time.sleep(0.3)
    assert f"path={path} status=200" in gunicorn.log and " id=fetch-1" in gunicorn.log
    third = requests.get(nginx.url + path, verify=nginx.cert, timeout=10)
    assert re.fullmatch(r"[0-9a-f]{32}", third.headers["X-Request-ID"])  # made by nginx
    # Revalidation keeps the same expiry, from nginx's cache and from the app.
    for url, verify in ((nginx.url, nginx.cert), (gunicorn.url, True)):
        etag = {"If-None-Match": first.headers["ETag"]}
        again = requests.get(url + path, headers=etag, verify=verify, timeout=10)
        assert again.status_code == 304
        assert again.headers["Expires"] == first.headers["Expires"]


def test_a_request_id_the_app_would_refuse_is_replaced_the_same_way(stack, fake_ai):
    nginx, gunicorn = stack()
    path = image_path(nginx)
    offered = "not a token! " + "x" * 200
    miss = requests.get(
        nginx.url + path, headers={"X-Request-ID": offered}, verify=nginx.cert, timeout=10
    )
    assert miss.headers["X-Cache-Status"] == "MISS"
    rid = miss.headers["X-Request-ID"]
    assert rid != offered
    time.sleep(0.3)
    assert f"path={path} status=200" in gunicorn.log and f" id={rid}" in gunicorn.log


def test_oversized_bodies_get_json_413_from_the_app_and_from_nginx(stack, fake_ai):
    nginx, _ = stack()
    from_app = chat(nginx, "x" * 70_000)  # above MAX_BODY_KB (64), below nginx's 80k
    assert from_app.status_code == 413
    assert from_app.json()["error"]["code"] == "request_too_large"
    assert "X-Request-ID" in from_app.headers  # the app answered
    from_nginx = generate(nginx.url, "x" * 200_000, nginx.cert)
    assert from_nginx.status_code == 413
    assert from_nginx.headers["Content-Type"] == "application/json"
    assert from_nginx.json()["error"]["code"] == "request_too_large"
    assert "X-Request-ID" not in from_nginx.headers  # nginx answered on its own
    assert fake_ai.calls == []


def allowed_origin(url: str, size: int, origin: str, verify=True) -> str | None:
    response = generate(url, "x" * size, verify, headers={"Origin": origin})
    assert response.status_code == 413
    return response.headers.get("Access-Control-Allow-Origin")


@pytest.mark.parametrize("cors_origins", [(), ("https://a.example",)])  # () is CORS_ORIGINS=*
def test_nginx_413_allows_the_origins_the_app_allows(stack, fake_ai, cors_origins):
    env = {"CORS_ORIGINS": ",".join(cors_origins)} if cors_origins else {}
    nginx, gunicorn = stack(cors_origins=cors_origins, **env)
    for origin in ("https://a.example", "https://b.example"):
        # The app's own 413 straight from gunicorn, nginx's for a body above its limit.
        from_app = allowed_origin(gunicorn.url, 70_000, origin)
        from_nginx = allowed_origin(nginx.url, 200_000, origin, nginx.cert)
        allowed = not cors_origins or origin in cors_origins
        assert from_nginx == from_app == (origin if allowed else None), origin


def test_every_https_answer_carries_hsts_and_plain_http_none(stack, fake_ai):
    nginx, _ = stack()

    def get(path, **kw):
        return requests.get(nginx.url + path, verify=nginx.cert, timeout=30, **kw)

    path = image_path(nginx)
    answers = {
        "page": get("/"),
        "stream": chat(nginx, stream=True),
        "image miss": get(path),
        "image hit": get(path),
        "unknown image": get("/image/" + "A" * 32),
        "nginx's 413": generate(nginx.url, "x" * 200_000, nginx.cert),
    }
    assert answers["image hit"].headers["X-Cache-Status"] == "HIT"
    assert answers["unknown image"].status_code == 404
    for name, response in answers.items():
        assert response.headers.get("Strict-Transport-Security") == "max-age=31536000", name
    plain = requests.get(f"http://localhost:{nginx.http_port}/", allow_redirects=False)
    assert "Strict-Transport-Security" not in plain.headers  # browsers ignore it over http


def alpn(nginx) -> str | None:
    context = ssl.create_default_context(cafile=nginx.cert)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", nginx.https_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.selected_alpn_protocol()


def nginx_version() -> tuple[int, ...]:
    out = subprocess.run([require_program("nginx", "nginx"), "-v"], capture_output=True, text=True)
    return tuple(int(n) for n in re.search(r"nginx/([\d.]+)", out.stderr).group(1).split("."))


# The README's one line for HTTP/2, by nginx version (nginx -t warns on the old one from 1.25.1).
HTTP2_OLD = "s/ ssl;$/ ssl http2;/"
HTTP2_NEW = "s/^    ssl_protocols .*/&\\n    http2 on;/"


def test_the_site_speaks_http1_as_shipped_and_http2_with_the_readme_line(stack, tmp_path):
    for line, expected in ((HTTP2_OLD, " ssl http2;"), (HTTP2_NEW, "\n    http2 on;\n")):
        copy = tmp_path / "site"
        copy.write_text(SITE.read_text())
        subprocess.run(["sed", "-i", line, str(copy)], check=True)
        edited = copy.read_text()
        assert edited.count(expected) == (2 if line == HTTP2_OLD else 1), edited
    nginx, _ = stack()
    assert alpn(nginx) == "http/1.1"
    line = HTTP2_NEW if nginx_version() >= (1, 25, 1) else HTTP2_OLD
    nginx2, _ = stack(sed=line)  # its start runs nginx -t and refuses any warning
    assert alpn(nginx2) == "h2"
    assert requests.get(f"{nginx2.url}/healthz", verify=nginx2.cert, timeout=10).ok


def test_the_site_is_run_as_shipped_but_for_ports_names_and_certificates(stack):
    nginx, _ = stack()
    assert "syntax is ok" in nginx.check_output and "[warn]" not in nginx.check_output
    shipped, run = SITE.read_text().splitlines(), nginx.site.read_text().splitlines()
    changed = [line for line in difflib.ndiff(shipped, run) if line[:2] in ("- ", "+ ")]
    directive = r"(listen |server_name |ssl_certificate(_key)? |server 127\.0\.0\.1:)"
    # The IPv6 listen lines are emptied (CI may have no IPv6).
    allowed = re.compile(rf"[-+] +{directive}|\+ *$")
    assert changed and all(allowed.match(line) for line in changed), changed


def test_the_image_cache_lives_where_debians_nginx_package_makes_room(stack):
    cache = re.search(r"^proxy_cache_path (\S+)", SITE.read_text(), re.M).group(1)
    parent = str(Path(cache).parent)
    dpkg = subprocess.run(["dpkg", "-L", "nginx-common"], capture_output=True, text=True)
    if dpkg.returncode != 0:
        pytest.skip("not a Debian system with nginx-common")
    assert parent in dpkg.stdout.splitlines()  # nginx itself makes only the last component
    nginx, _ = stack()
    made = nginx.workdir / "var-lib-nginx" / Path(cache).name
    assert made.is_dir() or Path(cache).is_dir()  # in the test's /var/lib/nginx, or the real one


def test_rate_limit_holds_across_workers_and_processes(stack, fake_ai, tmp_path, service_env):
    nginx, gunicorn = stack(RATE_LIMIT="4/minute")
    fake_ai.latency = 0.3
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(lambda i: chat(nginx, f"fox {i}").status_code, range(8)))
    assert statuses == [200] * 4 + [429] * 4
    pids = set(re.findall(r"pid=(\d+) \S+ request method=POST", gunicorn.log))
    print(f"requests were served by {len(pids)} worker process(es)")
    # A second gunicorn on the same DATA_DIR sees the same count.
    other = Gunicorn({**service_env, "RATE_LIMIT": "4/minute"}, tmp_path, 1).start()
    try:
        response = requests.post(
            f"{other.url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "a fox"}]},
            headers=AUTH,
            timeout=10,
        )
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        other.stop()


def test_healthz_through_nginx(stack):
    nginx, _ = stack()
    response = requests.get(f"{nginx.url}/healthz", verify=nginx.cert, timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_plain_http_redirects_to_https(stack):
    nginx, _ = stack()
    response = requests.get(f"http://localhost:{nginx.http_port}/v1/models", allow_redirects=False)
    assert response.status_code == 301
    assert response.headers["Location"].startswith("https://localhost")


def test_systemd_unit_verifies(tmp_path):
    analyze = require_program("systemd-analyze", "systemd")
    unit = (ROOT / "deploy" / "systemd" / "flux-api.service").read_text()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")  # an executable that exists here
    path = tmp_path / "flux-api.service"
    path.write_text(unit.replace("/opt/flux-api/.venv/bin/gunicorn", gunicorn))
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "flux-api.service" not in result.stderr, result.stderr
    for hardening in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=flux-api",
        "EnvironmentFile=",
        "Restart=on-failure",
        "User=flux-api",
    ):
        assert hardening in unit


def test_a_chat_message_with_an_image_passes_nginx_and_text_alone_keeps_its_limit(stack, fake_ai):
    """Chat bodies may carry images (data URLs) up to MAX_UPLOAD_MB through nginx too."""
    nginx, _ = stack()
    image = io.BytesIO()
    Image.effect_noise((400, 400), 64).convert("RGB").save(image, format="PNG")  # ~150 KB
    data_url = "data:image/png;base64," + base64.b64encode(image.getvalue()).decode()
    content = [
        {"type": "text", "text": "make it blue"},
        {"type": "image_url", "image_url": {"url": data_url}},
    ]
    response = chat(nginx, content)
    assert response.status_code == 200, response.text
    assert "Reference Images: 1" in response.json()["choices"][0]["message"]["content"]
    text_only = chat(nginx, "x" * 100_000)
    assert text_only.status_code == 413 and "MAX_BODY_KB" in text_only.json()["error"]["message"]


def test_an_edit_upload_above_nginx_s_80k_reaches_the_app(stack, fake_ai):
    nginx, _ = stack()
    image = io.BytesIO()
    Image.effect_noise((500, 500), 64).convert("RGB").save(image, format="PNG")  # ~240 KB
    assert len(image.getvalue()) > 80 * 1024
    response = requests.post(
        f"{nginx.url}/v1/images/edits",
        files=[("image[]", ("noise.png", image.getvalue(), "image/png"))],
        data={"prompt": "a calm sea", "response_format": "url"},
        headers=AUTH,
        verify=nginx.cert,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert len(fake_ai.calls[0]["references"]) == 1


METRICS_KEY = "metrics-SECRET-key-0123456789"
# The site's comment, done: the `return` of `location = /metrics` replaced by its three lines.
ALLOW_METRICS = (
    r"s|^        return 404 .*Unknown path /metrics.*|"
    r"        allow 127.0.0.1;\n        deny all;\n        proxy_pass http://flux_api;|"
)


def test_metrics_are_not_passed_from_outside_but_gunicorn_answers_them(stack):
    nginx, gunicorn = stack(METRICS_KEY=METRICS_KEY)
    reader = {"Authorization": f"Bearer {METRICS_KEY}"}
    for path in ("/metrics", "/metrics?x=1", "//metrics", "/%6Detrics"):
        answer = requests.get(nginx.url + path, headers=reader, verify=nginx.cert, timeout=10)
        assert answer.status_code == 404, path
        assert answer.json()["error"]["code"] == "not_found", path
        assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
    direct = requests.get(f"{gunicorn.url}/metrics", headers=reader, timeout=10)
    assert direct.status_code == 200
    assert direct.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    time.sleep(0.5)  # each worker writes its log from a thread of its own
    assert gunicorn.log.count("path=/metrics") == 1  # the direct one: nginx passed none

    opened, _ = stack(METRICS_KEY=METRICS_KEY, sed=ALLOW_METRICS)
    answer = requests.get(f"{opened.url}/metrics", headers=reader, verify=opened.cert, timeout=10)
    assert answer.status_code == 200 and "flux_api_requests_total" in answer.text
