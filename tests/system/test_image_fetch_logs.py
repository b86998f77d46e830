"""An image fetch's access line, through the real gunicorn: its own id, after its body."""

import re
import time

import requests

from tests.support.service import API_KEY


def _generate(url: str, rid: str) -> str:
    response = requests.post(
        f"{url}/v1/images/generations",
        json={"prompt": "a fox"},
        headers={"Authorization": f"Bearer {API_KEY}", "X-Request-ID": rid},
        timeout=30,
    )
    return re.search(r"/image/[A-Za-z0-9_-]+", response.json()["data"][0]["url"]).group(0)


def _lines_about(server, path: str, count: int) -> list[str]:
    """The log's lines that mention `path`, once there are `count` of them."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in server.log.splitlines() if f"{path} " in line]
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} lines about {path}:\n{server.log}")


def test_a_fetch_is_logged_with_its_own_id_after_its_body(gunicorn, service_env, fake_ai):
    # One worker with one thread, so the fetches run on the thread that served the generation;
    # gunicorn's own access line is written once the body is sent, before the body is closed.
    env = {**service_env, "GUNICORN_THREADS": "1", "GUNICORN_ACCESS_LOG": "-"}
    server = gunicorn(env, workers=1)
    path = _generate(server.url, "generation-1")
    fetch = requests.get(server.url + path, headers={"X-Request-ID": "fetch-abc"}, timeout=10)
    assert fetch.status_code == 200 and fetch.headers["X-Request-ID"] == "fetch-abc"

    gunicorns, ours = _lines_about(server, path, 2)
    assert f'"GET {path} HTTP/1.1" 200' in gunicorns  # ours came after the body was sent
    assert re.search(
        rf"\[fetch-abc\] request method=GET path={path} status=200 .* id=fetch-abc key=-$", ours
    )

    etag = fetch.headers["ETag"]
    headers = {"X-Request-ID": "fetch-304", "If-None-Match": etag}
    assert requests.get(server.url + path, headers=headers, timeout=10).status_code == 304
    *_, gunicorns, ours = _lines_about(server, path, 4)
    assert f'"GET {path} HTTP/1.1" 304' in gunicorns
    assert re.search(
        rf"\[fetch-304\] request method=GET path={path} status=304 .* id=fetch-304 key=-$", ours
    )
