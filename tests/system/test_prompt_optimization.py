"""Prompt optimisation through an OpenAI-compatible LLM, and the fallback when it fails."""

import time

import pytest

from flux_api.upstream.optimizer import (
    DEFAULT_SYSTEM_MESSAGE,
)
from tests.support.fakes.optimizer import OPTIMIZER_KEY, OPTIMIZER_MODEL
from tests.support.service import content_of, read_sse


def test_a_misconfigured_optimizer_is_one_warning_naming_the_setting(
    start_service, optimizer_env, fake_ai, fake_optimizer, caplog
):
    service = start_service(**{**optimizer_env, "EXTERNAL_API_KEY": "sk-wrong"})
    for _ in range(3):
        assert service.chat("a fox").status_code == 200  # the prompt as written
    warnings = [
        r.getMessage() for r in caplog.records if "optimizer answered HTTP" in r.getMessage()
    ]
    assert len(warnings) == 1 and "HTTP 401" in warnings[0] and "EXTERNAL_API_KEY" in warnings[0]
    assert "sk-wrong" not in warnings[0]


def test_optimized_prompt_is_used_and_reported(
    start_service, optimizer_env, fake_ai, fake_optimizer
):
    service = start_service(**optimizer_env)
    response = service.chat("一只狐狸在雪地里 16:9")
    assert response.status_code == 200
    content = response.json()["choices"][0]["message"]["content"]
    expected = "A cinematic, detailed rendering of 一只狐狸在雪地里, soft golden light, calm mood"
    assert f"💬 Prompt Generation Model: {OPTIMIZER_MODEL}" in content
    assert f"🌐 Prompt Used: {expected}" in content
    assert "🎨 Original Prompt: 一只狐狸在雪地里 16:9" in content
    assert fake_ai.calls[-1]["fields"]["prompt"] == expected
    call = fake_optimizer.calls[-1]
    assert call["headers"]["Authorization"] == f"Bearer {OPTIMIZER_KEY}"
    assert call["body"]["model"] == OPTIMIZER_MODEL
    system, user = call["body"]["messages"]
    assert system == {"role": "system", "content": DEFAULT_SYSTEM_MESSAGE}
    assert "16:9" in user["content"] and "一只狐狸在雪地里" in user["content"]


def test_system_message_can_be_replaced(start_service, optimizer_env, fake_ai, fake_optimizer):
    service = start_service(**optimizer_env, SYSTEM_MESSAGE="Answer with a haiku prompt.")
    service.chat("a fox")
    assert (
        fake_optimizer.calls[-1]["body"]["messages"][0]["content"] == "Answer with a haiku prompt."
    )


def test_cf_is_translate_is_an_alias(start_service, optimizer_env, fake_ai, fake_optimizer):
    env = {**optimizer_env, "PROMPT_OPTIMIZATION": None, "CF_IS_TRANSLATE": "true"}
    service = start_service(**env)
    service.chat("a fox")
    assert len(fake_optimizer.calls) == 1


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("error", "HTTP 500"),
        ("garbage", "not a chat completion"),
        ("empty", "empty prompt"),
        ("hang", "timed out"),
    ],
)
def test_failing_optimizer_falls_back_to_the_prompt_as_written(
    start_service, optimizer_env, fake_ai, fake_optimizer, mode, reason
):
    fake_optimizer.mode = mode
    service = start_service(**optimizer_env)  # OPTIMIZER_TIMEOUT is 1 s
    response = service.chat("a fox in snow 3:2")
    assert response.status_code == 200
    content = response.json()["choices"][0]["message"]["content"]
    assert "💬 Prompt Generation Model: Original Prompt (the optimizer" in content
    assert reason in content
    assert "🌐 Prompt Used: a fox in snow\n" in content
    assert fake_ai.calls[-1]["fields"]["prompt"] == "a fox in snow"


def test_enormous_optimizer_answer_is_cut_to_the_model_limit(
    start_service, optimizer_env, fake_ai, fake_optimizer
):
    fake_optimizer.mode = "enormous"
    service = start_service(**optimizer_env)
    assert service.chat("a fox").status_code == 200
    sent = fake_ai.calls[-1]["fields"]["prompt"]
    assert 2000 <= len(sent) <= 2048


def test_wrong_optimizer_key_falls_back(start_service, optimizer_env, fake_ai, fake_optimizer):
    service = start_service(**{**optimizer_env, "EXTERNAL_API_KEY": "sk-wrong"})
    content = service.chat("a fox").json()["choices"][0]["message"]["content"]
    assert "HTTP 401" in content


def test_optimizer_in_a_stream_reports_the_optimized_prompt(
    start_service, optimizer_env, fake_ai, fake_optimizer
):
    service = start_service(**optimizer_env)
    started = time.monotonic()
    streamed = content_of(read_sse(service.chat("a fox", stream=True), started))
    assert f"💬 Prompt Generation Model: {OPTIMIZER_MODEL}" in streamed
    assert "🌐 Prompt Used: A cinematic" in streamed
