"""GET|HEAD /image/<key>, and the store: expiry, size cap, persistence across restarts."""

import re
import time

import pytest
import requests

from tests.support.fakes.workers_ai import render_image


def generate(service, prompt="a fox") -> str:
    content = service.chat(prompt).json()["choices"][0]["message"]["content"]
    return re.search(r"/image/([^)]+)\)$", content).group(1)


def test_image_is_served_with_type_etag_and_cache_lifetime(start_service, fake_ai):
    service = start_service(IMAGE_EXPIRATION="600")
    key = generate(service)
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", key)  # 192 random bits
    response = service.get(f"/image/{key}", key=None)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["ETag"] == f'"{key}"'
    max_age = int(re.search(r"max-age=(\d+)", response.headers["Cache-Control"]).group(1))
    assert "public" in response.headers["Cache-Control"]
    assert 590 <= max_age <= 600
    assert response.content == render_image(1024, 1024)


def test_head_gives_headers_without_a_body(service, fake_ai):
    key = generate(service)
    response = requests.head(f"{service.url}/image/{key}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert int(response.headers["Content-Length"]) > 1000
    assert response.content == b""


def test_if_none_match_gives_304(service, fake_ai):
    key = generate(service)
    response = service.get(f"/image/{key}", key=None, headers={"If-None-Match": f'"{key}"'})
    assert response.status_code == 304
    assert response.content == b""


@pytest.mark.parametrize(
    "key",
    [
        "doesnotexist",
        "A" * 32,
        "..%2F..%2Fetc%2Fpasswd",
        "../../api_key",
        "x" * 5000,
        "%E2%98%83" * 8,
        "a%00b" * 8,
    ],
)
def test_unknown_or_odd_keys_are_a_json_404(service, key):
    response = service.get(f"/image/{key}", key=None)
    assert response.status_code == 404
    assert response.json()["error"]["code"] in ("image_not_found", "not_found")


def test_images_expire(start_service, fake_ai):
    service = start_service(IMAGE_EXPIRATION="1")
    key = generate(service)
    assert service.get(f"/image/{key}", key=None).status_code == 200
    time.sleep(1.2)
    response = service.get(f"/image/{key}", key=None)
    assert response.status_code == 404
    assert "expired" in response.json()["error"]["message"]


def test_images_survive_a_restart(start_service, fake_ai):
    first = start_service()
    keys = [generate(first, f"picture {i}") for i in range(3)]
    first.app.extensions["flux_api"].store.close()
    second = start_service()  # same DATA_DIR
    for key in keys:
        assert second.get(f"/image/{key}", key=None).status_code == 200


def test_a_request_too_large_for_the_store_is_a_507_and_keeps_what_is_stored(
    start_service, fake_ai
):
    service = start_service(STORE_SIZE_LIMIT_MB="1", IMAGES_MAX_N="8")
    kept = generate(service)
    fake_ai.realistic = True  # ~190 KiB JPEGs: eight of them are ~1.5 MiB
    try:
        response = service.post(
            "/v1/images/generations", {"prompt": "a fox", "n": 8, "size": "1024x1024"}
        )
    finally:
        fake_ai.realistic = False
    error = response.json()["error"]
    assert response.status_code == 507 and error["code"] == "insufficient_storage"
    assert "STORE_SIZE_LIMIT_MB" in error["message"]
    assert response.headers["x-should-retry"] == "false"
    assert service.get(f"/image/{kept}", key=None).status_code == 200


def test_images_are_readable_from_any_origin_by_default_without_vary(service, fake_ai):
    key = generate(service)
    response = service.get(f"/image/{key}", key=None, headers={"Origin": "https://x.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in response.headers  # one cached copy serves every origin


def test_images_follow_restricted_cors_origins(start_service, fake_ai):
    service = start_service(CORS_ORIGINS="https://mine.example")
    key = generate(service)
    mine = service.get(f"/image/{key}", key=None, headers={"Origin": "https://mine.example"})
    theirs = service.get(f"/image/{key}", key=None, headers={"Origin": "https://their.example"})
    assert mine.headers["Access-Control-Allow-Origin"] == "https://mine.example"
    assert "X-Request-ID" in mine.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Origin" not in theirs.headers
    assert theirs.status_code == mine.status_code == 200
    assert mine.headers["Vary"] == theirs.headers["Vary"] == "Origin"


def test_image_fetches_are_logged_with_their_request_id(service, fake_ai, caplog):
    key = generate(service)
    response = service.get(f"/image/{key}", key=None, headers={"X-Request-ID": "fetch-42"})
    assert response.headers["X-Request-ID"] == "fetch-42"
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # the line is written once the body has been sent
        fetches = [r for r in caplog.records if f"path=/image/{key} status=200" in r.getMessage()]
        if fetches:
            break
        time.sleep(0.02)
    assert len(fetches) == 1
    assert "id=fetch-42" in fetches[0].getMessage()
    assert fetches[0].request_id == "fetch-42"  # not the generation's, logged before on the thread


def test_other_methods_on_an_image_are_a_json_405(service, fake_ai):
    key = generate(service)
    response = requests.post(f"{service.url}/image/{key}")
    assert response.status_code == 405
    assert response.json()["error"]["message"]
