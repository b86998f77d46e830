"""DELETE /image/<key>: images are public to whoever has the link for a week, so their owner can
remove one at once, with an API key; on disk and in Redis, whose size count stays exact."""

from __future__ import annotations

import pytest
import requests

from tests.support.programs import free_port
from tests.support.redis_server import RedisServer, assert_counter_exact, client_of
from tests.support.service import API_KEY


def made(service) -> str:
    return service.chat("a fox").json()["flux_api"]["image_url"]


def delete(url: str, key: str | None = API_KEY) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.delete(url, headers=headers, timeout=10)


def test_an_image_is_deleted_with_a_key_and_is_gone(service, fake_ai):
    url = made(service)
    assert requests.get(url, timeout=10).status_code == 200
    answer = delete(url)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": url.rsplit("/", 1)[1], "object": "image", "deleted": True}
    assert requests.get(url, timeout=10).status_code == 404
    again = delete(url)
    assert again.status_code == 404 and again.json()["error"]["code"] == "image_not_found"


@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_deleting_needs_the_api_key_and_keeps_the_image(service, fake_ai, key):
    url = made(service)
    assert delete(url, key).status_code == 401
    assert requests.get(url, timeout=10).status_code == 200


def test_a_malformed_key_is_a_404(service):
    assert delete(service.url + "/image/not-a-key!").status_code == 404


def test_other_images_stay(service, fake_ai):
    kept, gone = made(service), made(service)
    assert delete(gone).status_code == 200
    assert requests.get(kept, timeout=10).status_code == 200


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis", free_port()).start()
    yield server
    server.stop()


def test_deleting_from_redis_keeps_the_size_count_exact(start_service, fake_ai, redis_server):
    service = start_service(REDIS_URL=redis_server.url)
    urls = [made(service) for _ in range(3)]
    client = client_of(redis_server)
    before = assert_counter_exact(client)
    assert delete(urls[1]).status_code == 200
    assert requests.get(urls[1], timeout=10).status_code == 404
    assert 0 < assert_counter_exact(client) < before
    assert requests.get(urls[0], timeout=10).status_code == 200


def test_a_fetch_tells_a_reverse_proxy_to_keep_its_copy_an_hour_at_most(service, fake_ai):
    """The shipped nginx site caches images; a deleted one must not live there a week."""
    fetched = requests.get(made(service), timeout=10)
    assert 3000 < int(fetched.headers["X-Accel-Expires"]) <= 3600
