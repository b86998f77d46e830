"""What reading a chat may cost, found by a review of the real-client work, through the service
(reading a message's tags alone: tests/unit/test_reading_costs.py): a text chat too large is
refused before it is read; the optimizer (a paid call) is counted against RATE_LIMIT and asked
only when an image can follow; a failed generation gives its Redis reservation back; odd inputs
are never a 500."""

from __future__ import annotations

import json

import pytest
import redis

from flux_api.conversation.client_prompts import all_prompts
from tests.support.fakes.workers_ai import ACCOUNT_ID, Scripted
from tests.support.redis_server import small_redis_server

# ---- tags are read in one pass -------------------------------------------------------------


def test_a_large_text_chat_is_refused_before_it_is_read(service, fake_ai):
    response = service.chat("<attached_files>" * 8192)  # 128 KB: over MAX_BODY_KB
    assert response.status_code == 413


# ---- the optimizer is a paid call too ------------------------------------------------------


def barn(service) -> str:
    return service.chat("a red barn in a wheat field").json()["choices"][0]["message"]["content"]


def follow(service, barn_reply: str, follow_up: str):
    messages = [
        {"role": "user", "content": "a red barn in a wheat field"},
        {"role": "assistant", "content": barn_reply},
        {"role": "user", "content": follow_up},
    ]
    return service.post("/v1/chat/completions", {"messages": messages})


def test_a_follow_up_over_rate_limit_never_asks_the_optimizer(
    start_service, fake_ai, fake_optimizer, optimizer_env
):
    service = start_service(RATE_LIMIT="2/minute", **optimizer_env)
    reply = barn(service)
    fake_optimizer.answer = json.dumps({"edit": True, "prompt": "Make the barn blue."})
    assert follow(service, reply, "make it blue").status_code == 200  # 2 images: the limit
    fake_optimizer.calls.clear()
    for _ in range(3):
        assert follow(service, reply, "make it blue").status_code == 429
    assert fake_optimizer.calls == []  # was one paid optimizer call per refused request


def test_a_follow_up_with_every_account_parked_never_asks_the_optimizer(
    start_service, fake_ai, fake_optimizer, optimizer_env
):
    service = start_service(**optimizer_env)
    first = service.chat("a red barn").json()["choices"][0]["message"]["content"]
    fake_ai.exhausted.add(ACCOUNT_ID)
    assert service.chat("uses up the day").status_code == 429
    fake_optimizer.calls.clear()
    messages = [
        {"role": "user", "content": "a red barn"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "make it blue"},
    ]
    response = service.post("/v1/chat/completions", {"messages": messages})
    assert response.status_code == 429 and fake_optimizer.calls == []


def test_a_new_picture_in_a_chat_asks_the_optimizer_once(
    start_service, fake_ai, fake_optimizer, optimizer_env
):
    service = start_service(**optimizer_env)
    first = service.chat("a red barn").json()["choices"][0]["message"]["content"]
    fake_optimizer.answer = json.dumps({"edit": False, "prompt": "A lighthouse on a cliff."})
    fake_optimizer.calls.clear()
    messages = [
        {"role": "user", "content": "a red barn"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "a lighthouse on a cliff"},
    ]
    assert service.post("/v1/chat/completions", {"messages": messages}).status_code == 200
    assert len(fake_optimizer.calls) == 1  # its judgement wrote the prompt: not asked again
    assert fake_ai.calls[-1]["fields"]["prompt"] == "A lighthouse on a cliff."


def test_titles_by_the_optimizer_count_against_rate_limit(
    start_service, fake_ai, fake_optimizer, optimizer_env
):
    service = start_service(RATE_LIMIT="1/minute", **optimizer_env)
    fake_optimizer.answer = "Fox In Snow"
    topic = next(p for p in all_prompts() if p.client == "NextChat" and p.kind == "title")
    messages = [
        {"role": "user", "content": "a red fox in snow"},
        {"role": "user", "content": topic.text},
    ]
    titles = [
        service.post("/v1/chat/completions", {"messages": messages}).json()["choices"][0][
            "message"
        ]["content"]
        for _ in range(3)
    ]
    assert titles == ["Fox In Snow", "a red fox in snow", "a red fox in snow"]  # from the prompt
    assert len(fake_optimizer.calls) == 1 and fake_ai.calls == []


# ---- odd inputs ----------------------------------------------------------------------------


def test_a_follow_up_without_an_edit_model_is_a_new_image(start_service, fake_ai):
    service = start_service(IMAGE_MODELS="flux-1-schnell")
    response = follow(service, barn(service), "make it blue")
    assert response.status_code == 200, response.text
    assert "references" not in fake_ai.calls[-1]


def test_deeply_nested_json_in_a_title_request_is_no_500(service, fake_ai):
    cherry = next(p for p in all_prompts() if p.client == "Cherry Studio" and p.kind == "title")
    messages = [{"role": "system", "content": cherry.text}, {"role": "user", "content": "[" * 5000}]
    assert service.post("/v1/chat/completions", {"messages": messages}).status_code == 200


def test_a_text_part_that_is_not_text_is_no_500(
    start_service, fake_ai, fake_optimizer, optimizer_env
):
    service = start_service(**optimizer_env)
    first = service.chat("a red barn").json()["choices"][0]["message"]["content"]
    messages = [
        {"role": "user", "content": "a red barn"},
        {"role": "assistant", "content": [{"type": "text", "text": first}, {"type": "text"}]},
        {"role": "user", "content": [{"type": "text", "text": "make it blue"}]},
    ]
    assert service.post("/v1/chat/completions", {"messages": messages}).status_code == 200


# ---- Redis: a failed generation gives its room back ---------------------------------------


@pytest.fixture
def small_redis(tmp_path):
    with small_redis_server(tmp_path / "redis", maxmemory="64mb") as server:
        yield server


def test_a_failed_generation_gives_its_redis_reservation_back(start_service, fake_ai, small_redis):
    service = start_service(REDIS_URL=small_redis.url)
    body = {"prompt": "a fox", "model": "flux-2-dev", "size": "1920x1920", "n": 4}
    fake_ai.script(*[Scripted(status=400, code=5006, message="bad input")] * 4)
    assert service.post("/v1/images/generations", body).status_code == 502
    reserved = redis.Redis.from_url(small_redis.url).zcard("flux-api:images:reserved")
    assert reserved == 0  # was a 44 MB lease for 180 s, refusing the next request as "full"
    fake_ai.reset()
    assert service.post("/v1/images/generations", body).status_code == 200
