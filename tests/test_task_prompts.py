"""Open WebUI's background tasks get a short text answer and never reach Workers AI."""

import json
import time

import pytest

from flux_api.tasks import task_reply
from tests.conftest import content_of, read_sse

TITLE_TASK = """### Task:
Generate a concise, 3-5 word title with an emoji summarizing the chat history.
### Output:
JSON format: { "title": "your concise title here" }
### Chat History:
<chat_history>
USER: a red fox sleeping in deep snow at dusk 16:9
ASSISTANT: 🎨 Original Prompt: a red fox sleeping in deep snow at dusk 16:9
</chat_history>"""

TAGS_TASK = """### Task:
Generate 1-3 broad tags categorizing the main themes of the chat history, along with 1-3 more specific subtopic tags.

### Output:
JSON format: { "tags": ["tag1", "tag2", "tag3"] }"""

FOLLOW_UP_TASK = """### Task:
Suggest 3-5 relevant follow-up questions or prompts that the user might naturally ask next."""


@pytest.mark.parametrize(
    "prompt, expected",
    [
        (TITLE_TASK, {"title": "🎨 a red fox sleeping in"}),
        (TAGS_TASK, {"tags": ["Image generation"]}),
        (FOLLOW_UP_TASK, {"follow_ups": []}),
    ],
)
def test_task_replies_are_the_json_open_webui_asks_for(prompt, expected):
    assert json.loads(task_reply(prompt)) == expected


def test_task_prompt_gets_text_and_no_upstream_call(service, fake_ai):
    response = service.chat(TITLE_TASK, model="flux-1-schnell")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert json.loads(body["choices"][0]["message"]["content"])["title"].startswith("🎨")
    assert fake_ai.calls == []


def test_streamed_task_prompt_gets_text_and_no_upstream_call(service, fake_ai):
    started = time.monotonic()
    events = read_sse(service.chat(TAGS_TASK, stream=True), started)
    assert json.loads(content_of(events)) == {"tags": ["Image generation"]}
    assert events[-1].data == "[DONE]"
    assert fake_ai.calls == []


def test_task_prompts_can_be_generated_when_skipping_is_off(start_service, fake_ai):
    service = start_service(SKIP_TASK_PROMPTS="false")
    assert service.chat(FOLLOW_UP_TASK).status_code == 200
    assert len(fake_ai.calls) == 1


@pytest.mark.parametrize(
    "prompt, title",
    [
        ("### Task: title\nUSER:   \n  USER: a fox in the snow at dusk\n", "a fox in the snow"),
        ("### Task: title\n\tUSER:\ta\tfox\n", "a fox"),
        ("### Task: title\nASSISTANT: USER: no\n", "Image generation"),
    ],
)
def test_title_takes_the_first_user_line_with_words(prompt, title):
    assert json.loads(task_reply(prompt)) == {"title": "🎨 " + title}


# The largest prompt a 64 KB body can carry, in shapes that made a regex rescan the rest of it.
_ROOM = 62_000
_TITLE = "### Task: Generate a concise title for the chat.\n"


@pytest.mark.parametrize(
    "filler",
    [
        "\n" * _ROOM,
        " \n" * (_ROOM // 2),
        " " * _ROOM,
        "USER:" * (_ROOM // 5),
        "USER:\n" * (_ROOM // 6),
        "USER: " + " " * _ROOM,
        "\tUSER: \t\n" * (_ROOM // 9),
    ],
    ids=["newlines", "blank-lines", "spaces", "prefixes", "empty-users", "user-spaces", "blanks"],
)
def test_a_title_of_the_largest_worst_prompt_takes_linear_time(filler):
    started = time.process_time()
    task_reply(_TITLE + filler)
    assert time.process_time() - started < 0.05  # was 0.7–3.7 s for newlines: quadratic
