"""One order of refusals for every endpoint (the README's errors section): 401 (key) → 413 (size)
→ 400 (the request itself) → 429 (RATE_LIMIT) → 503 (store) → 429 (every account parked) → the
upstream's own answers. A request is told what is wrong with it whatever the service's state."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
import requests

from tests.support.fakes.workers_ai import ACCOUNT_ID
from tests.support.pictures import picture
from tests.support.service import API_KEY, content_of, read_sse

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def park_every_account(service, fake_ai) -> None:
    fake_ai.exhausted.add(ACCOUNT_ID)
    assert service.chat("uses up the day").status_code == 429
    fake_ai.calls.clear()


def break_the_store(service_env) -> None:
    images = Path(service_env["DATA_DIR"]) / "images"
    shutil.rmtree(images)
    images.write_text("not a directory any more")


def chat(service, prompt: str, stream: bool = False):
    return service.post(
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": prompt}], "stream": stream},
    )


def generation(service, prompt: str):
    return service.post("/v1/images/generations", {"prompt": prompt, "size": "9x9"})


def edit(service, prompt: str):
    files = [("image", ("a.png", picture(64, 64), "image/png"))]
    fields = {"prompt": prompt, "strength": "7"}  # out of range: a 400
    return requests.post(
        service.url + "/v1/images/edits", files=files, data=fields, headers=AUTH, timeout=30
    )


ENDPOINTS = {
    "chat": lambda service: chat(service, "a fox 9:1"),
    "stream": lambda service: chat(service, "a fox 9:1", stream=True),
    "generation": lambda service: generation(service, "a fox"),
    "edit": lambda service: edit(service, "add a hat"),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_bad_request_is_a_400_even_with_every_account_parked(service, fake_ai, endpoint):
    park_every_account(service, fake_ai)
    response = ENDPOINTS[endpoint](service)
    assert response.status_code == 400, response.text
    assert fake_ai.calls == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_bad_request_is_a_400_even_with_the_store_broken(service, service_env, fake_ai, endpoint):
    break_the_store(service_env)
    assert ENDPOINTS[endpoint](service).status_code == 400


def test_rate_limit_answers_before_the_store_and_the_parked_accounts(
    start_service, service_env, fake_ai
):
    service = start_service(RATE_LIMIT="1/minute")
    assert service.chat("a fox").status_code == 200
    fake_ai.exhausted.add(ACCOUNT_ID)  # would be a 429 insufficient_quota, unbilled
    break_the_store(service_env)
    response = service.chat("a fox")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("stream", [False, True])
def test_a_broken_store_answers_before_the_parked_accounts(
    start_service, service_env, fake_ai, stream
):
    park_every_account(start_service(), fake_ai)
    service = start_service()  # the same DATA_DIR, without a store check remembered
    break_the_store(service_env)
    response = chat(service, "a fox", stream=stream)
    assert response.status_code == 503, response.text  # a stream too: before its first byte
    assert response.json()["error"]["code"] == "store_unavailable"
    assert fake_ai.calls == []


def test_every_account_parked_is_a_429_before_any_stream_byte(service, fake_ai):
    park_every_account(service, fake_ai)
    response = chat(service, "a fox", stream=True)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "insufficient_quota"


def test_a_stream_that_passes_every_check_streams(service, fake_ai):
    response = chat(service, "a fox", stream=True)
    assert response.status_code == 200
    assert "/image/" in content_of(read_sse(response, 0.0))


def test_base64_answers_need_no_store(service, service_env, fake_ai):
    """A `b64_json` answer keeps nothing, so a broken store does not refuse it."""
    break_the_store(service_env)
    response = service.post(
        "/v1/images/generations", {"prompt": "a fox", "response_format": "b64_json"}
    )
    assert response.status_code == 200, response.text
    assert base64.b64decode(response.json()["data"][0]["b64_json"])
