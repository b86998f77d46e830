"""Prompt optimisation through an OpenAI-compatible LLM, and the fallback when it fails."""

import time

import pytest

from flux_api.upstream.optimizer import (
    DEFAULT_SYSTEM_MESSAGE,
    chat_completions_url,
    clean_prompt,
)
from tests.conftest import content_of, read_sse
from tests.fakes.optimizer import OPTIMIZER_KEY, OPTIMIZER_MODEL


@pytest.mark.parametrize(
    "base", ["http://llm.local", "http://llm.local/", "http://llm.local/v1", "http://llm.local/v1/"]
)
def test_base_url_works_with_or_without_v1(base):
    assert chat_completions_url(base) == "http://llm.local/v1/chat/completions"


@pytest.mark.parametrize(
    "base, url",
    [
        (
            "https://generativelanguage.googleapis.com/v1beta/openai",
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
        ),
        ("https://ark.example.com/api/v3", "https://ark.example.com/api/v3/chat/completions"),
        (
            "https://llm.example.com/openai/v2/",
            "https://llm.example.com/openai/v2/chat/completions",
        ),
        ("https://llm.example.com/proxy", "https://llm.example.com/proxy/v1/chat/completions"),
        ("https://v1.example.com", "https://v1.example.com/v1/chat/completions"),
    ],
)
def test_a_base_that_names_its_version_gets_no_extra_v1(base, url):
    assert chat_completions_url(base) == url


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


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ('Prompt: "A fox in snow, soft light"', "A fox in snow, soft light"),
        ("**Prompt:** A fox in snow", "A fox in snow"),
        ("Optimized prompt： “A fox in snow”", "A fox in snow"),
        ("<think>the user wants a fox</think>\nA fox in snow", "A fox in snow"),
        ("```\nA fox\nin snow\n```", "A fox in snow"),
        ("A fox in snow", "A fox in snow"),
    ],
)
def test_clean_prompt_strips_labels_quotes_and_thinking(raw, cleaned):
    assert clean_prompt(raw, 2048) == cleaned


def test_clean_prompt_cuts_at_a_word_boundary_within_the_limit():
    cut = clean_prompt("alpha beta gamma delta", 13)
    assert cut == "alpha beta"


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
