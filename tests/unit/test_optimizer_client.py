"""The prompt optimizer's client on its own: where it sends (the chat-completions URL from its
base) and what it keeps of an answer (the optimizer at work:
tests/system/test_prompt_optimization.py)."""

import pytest

from flux_api.upstream.optimizer import chat_completions_url, clean_prompt


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
