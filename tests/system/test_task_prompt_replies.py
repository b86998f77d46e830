"""Open WebUI's background tasks sent to the service: answered in text, with no Workers AI call
(the task rules: tests/unit/test_task_prompts.py)."""

import time

import pytest

from flux_api.conversation.tasks import task_reply
from tests.support.service import content_of, read_sse
from tests.support.task_templates import (
    AUTOCOMPLETE_TASK,
    EMOJI_TASK,
    IMAGE_PROMPT_TASK,
    MOA_TASK,
    TAGS_TASK,
    TITLE_TASK,
    read_json,
)


def test_task_prompt_gets_text_and_no_upstream_call(service, fake_ai):
    response = service.chat(TITLE_TASK, model="flux-1-schnell")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert read_json(body["choices"][0]["message"]["content"]) == {"title": "a red fox sleeping"}
    assert fake_ai.calls == []


def test_streamed_task_prompt_gets_text_and_no_upstream_call(service, fake_ai):
    started = time.monotonic()
    events = read_sse(service.chat(TAGS_TASK, stream=True), started)
    assert read_json(content_of(events)) == {"tags": ["Image generation"]}
    assert events[-1].data == "[DONE]"
    assert fake_ai.calls == []


@pytest.mark.parametrize("prompt", [IMAGE_PROMPT_TASK, AUTOCOMPLETE_TASK, EMOJI_TASK, MOA_TASK])
def test_the_other_tasks_make_no_upstream_call(service, fake_ai, prompt):
    response = service.chat(prompt)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == task_reply(prompt)
    assert fake_ai.calls == []


def test_task_prompts_can_be_generated_when_skipping_is_off(start_service, fake_ai):
    service = start_service(SKIP_TASK_PROMPTS="false")
    assert service.chat("### Task:\nSuggest 3-5 relevant follow-up questions").status_code == 200
    assert len(fake_ai.calls) == 1
