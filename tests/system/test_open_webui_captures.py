"""Requests captured on the wire from the real Open WebUI 0.12.4 (tests/fixtures/open-webui-0.12.4),
replayed against the service: each gets the answer Open WebUI needs, sends Workers AI only the
person's own words, and makes only the calls a person asked for."""

from __future__ import annotations

import json

import pytest

from tests.support.captures import capture, with_own_keys
from tests.support.service import content_of, read_sse


def send(service, body: dict):
    response = service.post("/v1/chat/completions", body)
    assert response.status_code == 200, response.text
    if body.get("stream"):
        return content_of(read_sse(response, 0.0))
    return response.json()["choices"][0]["message"]["content"]


def prompt_sent(call: dict) -> str:
    return call["fields"]["prompt"]


def test_a_typed_prompt_with_native_tools_makes_the_image(service, fake_ai):
    content = send(service, capture("chat-native-tools.json"))
    (call,) = fake_ai.calls
    assert prompt_sent(call) == "a lighthouse at dawn"
    assert "1024x576" in content and "/image/" in content


def test_an_attached_image_is_edited_with_only_the_typed_words(service, fake_ai):
    content = send(service, capture("chat-image-attached.json"))
    (call,) = fake_ai.calls
    assert prompt_sent(call) == "make the sun blue"
    assert len(call["references"]) == 1
    assert "attached_files" not in content and "sun.png" not in content
    assert "Original Prompt: make the sun blue\n" in content


def test_an_attached_file_illustrates_the_story_not_a_search_task(service, fake_ai):
    content = send(service, capture("chat-file-attached-rag.json"))
    (call,) = fake_ai.calls
    assert prompt_sent(call) == (
        "illustrate this story: Once upon a time a small robot lived in a lighthouse on a rocky "
        "island. Every night it polished the great lamp and watched the ships pass by."
    )
    assert "queries" not in content and "/image/" in content
    assert "Original Prompt: illustrate this story\n" in content


def test_a_long_attached_file_is_cut_at_a_sentence_end_to_fit_the_model(service, fake_ai):
    body = capture("chat-file-attached-rag.json")
    story = "The robot climbed the stairs. " * 200  # 6,000 characters
    text = body["messages"][-1]["content"]
    start = text.index(">", text.index("<source id=", text.index("<context>"))) + 1
    body["messages"][-1]["content"] = text[:start] + story + text[text.index("</source>") :]
    send(service, body)
    sent = prompt_sent(fake_ai.calls[0])
    assert sent.startswith("illustrate this story: The robot climbed the stairs.")
    assert len(sent) <= 2048 and sent.endswith("stairs.")


def test_a_file_attached_in_a_system_message_is_used_the_same_way(service, fake_ai):
    """With RAG_SYSTEM_CONTEXT on, Open WebUI puts its template in a system message."""
    rag = capture("chat-file-attached-rag.json")["messages"][-1]["content"]
    template, _, typed = rag.rpartition("</attached_files>")
    template = template.split("<attached_files>")[0]
    body = {
        "model": "@cf/black-forest-labs/flux-1-schnell",
        "messages": [
            {"role": "system", "content": template},
            {"role": "user", "content": typed.strip()},
        ],
    }
    send(service, body)
    assert prompt_sent(fake_ai.calls[0]).startswith("illustrate this story: Once upon a time")


@pytest.mark.parametrize(
    "name", ["chat-legacy-after-image-engine.json", "chat-legacy-after-image-edit.json"]
)
def test_legacy_function_calling_after_open_webui_made_the_image_bills_nothing(
    service, fake_ai, name
):
    content = send(service, capture(name))
    assert fake_ai.calls == []
    assert "image" in content and "/image/" not in content


def test_legacy_notes_are_answered_even_when_task_prompts_are_generated(start_service, fake_ai):
    service = start_service(SKIP_TASK_PROMPTS="false")
    send(service, capture("chat-legacy-after-image-engine.json"))
    assert fake_ai.calls == []


def test_a_failed_image_note_passes_the_error_on(service, fake_ai):
    note = (
        "<context>Image generation was attempted but failed. The system is currently unable to "
        "generate the image. Tell the user that the following error occurred: quota used up"
        "</context>"
    )
    body = {"messages": [{"role": "system", "content": note}, {"role": "user", "content": "a fox"}]}
    assert "quota used up" in send(service, body)
    assert fake_ai.calls == []


def test_a_follow_up_describing_a_new_picture_makes_a_new_image(service, fake_ai):
    for name in ("chat-follow-up-new-legacy.json", "chat-follow-up-new-native.json"):
        body = with_own_keys(capture(name), service)
        fake_ai.calls.clear()
        content = send(service, body)
        (call,) = fake_ai.calls
        assert prompt_sent(call) == "a sailing boat on a calm sea"
        assert "references" not in call and "Reference Images" not in content


def read_json(answer: str) -> dict:
    """As Open WebUI reads a task's answer: from the first "{" to the last "}"."""
    return json.loads(answer[answer.find("{") : answer.rfind("}") + 1])


@pytest.mark.parametrize(
    "name, key, check",
    [
        ("task-title.json", "title", lambda value: value == "a red fox"),
        ("task-tags.json", "tags", lambda value: isinstance(value, list) and value),
        ("task-follow-ups.json", "follow_ups", lambda value: value == []),
        ("task-queries.json", "queries", lambda value: value == []),
        ("task-image-prompt.json", "prompt", lambda value: value == "a castle on a hill"),
    ],
)
def test_each_background_task_gets_the_shape_its_parser_reads(service, fake_ai, name, key, check):
    answer = send(service, capture(name))
    assert check(read_json(answer)[key]), answer
    assert fake_ai.calls == []
