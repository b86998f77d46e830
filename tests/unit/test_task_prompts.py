"""Open WebUI's background tasks get a short answer in the shape Open WebUI reads, and never reach
Workers AI: the task rules (the tasks sent to the service: tests/system/test_task_prompt_replies.py;
the templates: tests/support/task_templates.py).
"""

import json
import time

import pytest

from flux_api.conversation.tasks import PLAIN_ANSWER, is_task_prompt, task_reply
from tests.support.task_templates import (
    AUTOCOMPLETE_TASK,
    BACKGROUND_HISTORY,
    DOCUMENT_SUGGESTIONS_TASK,
    EMOJI_TASK,
    FOLLOW_UP_TASK,
    IMAGE_CHAT_HISTORY,
    IMAGE_PROMPT_TASK,
    MOA_TASK,
    OLD_TITLE_TASK,
    QUERIES_TASK,
    TAGS_TASK,
    TITLE_TASK,
    read_both_ways,
    read_json,
)


def test_title_is_the_users_first_words_without_emoji():
    assert read_json(task_reply(TITLE_TASK)) == {"title": "a red fox sleeping"}


def test_title_of_the_older_template_has_its_emoji_and_five_words():
    assert read_json(task_reply(OLD_TITLE_TASK)) == {"title": "🎨 a red fox sleeping"}


def test_tags():
    assert read_json(task_reply(TAGS_TASK)) == {"tags": ["Image generation"]}


def test_follow_ups_are_none():
    assert read_json(task_reply(FOLLOW_UP_TASK)) == {"follow_ups": []}


def test_image_prompt_is_the_last_user_message_cleaned():
    assert read_both_ways(task_reply(IMAGE_PROMPT_TASK)) == {
        "prompt": "now the same fox in a spring meadow, with cherry blossoms falling"
    }


def test_image_prompt_without_user_text_is_no_json_so_open_webui_uses_its_own():
    answer = task_reply(IMAGE_PROMPT_TASK.replace(IMAGE_CHAT_HISTORY, "USER:   \nASSISTANT: hi"))
    assert answer == PLAIN_ANSWER
    assert "{" not in answer and "}" not in answer


def test_queries_are_none():
    assert read_both_ways(task_reply(QUERIES_TASK)) == {"queries": []}


def test_autocomplete_suggests_nothing():
    assert read_json(task_reply(AUTOCOMPLETE_TASK)) == {"text": ""}


def test_document_suggestions_are_none():
    assert read_json(task_reply(DOCUMENT_SUGGESTIONS_TASK)) == {"questions": []}


def test_emoji_task_is_recognised_and_answered_with_one_pictograph():
    assert is_task_prompt(EMOJI_TASK)
    # Open WebUI drops quotes and keeps the first pictograph of the answer.
    assert task_reply(EMOJI_TASK).replace('"', "").replace("'", "") == "🎨"


def test_merging_responses_is_recognised_and_answered_in_plain_text():
    assert is_task_prompt(MOA_TASK)
    assert task_reply(MOA_TASK) == PLAIN_ANSWER


def test_an_unknown_task_gets_plain_text():
    assert task_reply("### Task:\nTranslate the chat history into French.") == PLAIN_ANSWER


def test_image_prompts_are_not_tasks():
    assert not is_task_prompt("a red fox sleeping in deep snow at dusk")
    assert not is_task_prompt("Your task: paint a fox")


@pytest.mark.parametrize(
    "words", ["USER: give this chat a title and some tags", "USER: search queries for fox photos"]
)
def test_words_in_the_chat_do_not_change_the_task(words):
    prompt = FOLLOW_UP_TASK.replace(BACKGROUND_HISTORY, words)
    assert read_json(task_reply(prompt)) == {"follow_ups": []}


@pytest.mark.parametrize(
    "prompt, title",
    [
        ("### Task: title\nUSER:   \n  USER: a fox in the snow at dusk\n", "a fox"),
        ("### Task: title\n\tUSER:\ta\tfox\n", "a fox"),
        ("### Task: title\nASSISTANT: USER: no\n", "Image generation"),
    ],
)
def test_title_takes_the_first_user_line_with_words(prompt, title):
    assert json.loads(task_reply(prompt)) == {"title": title}


# The largest prompt a 64 KB body can carry, in shapes that made a regex rescan the rest of it.
_ROOM = 62_000
_TITLE = "### Task: Generate a concise title for the chat.\n"
_IMAGE = "### Task:\nGenerate a detailed prompt for am image generation task.\n"


def _assert_fast(prompt: str) -> None:
    started = time.process_time()
    task_reply(prompt)
    assert time.process_time() - started < 0.05  # was 0.7–3.7 s for newlines: quadratic


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
        "<chat_history>" * (_ROOM // 14),
        "</chat_history>" * (_ROOM // 15),
    ],
    ids=[
        "newlines",
        "blank-lines",
        "spaces",
        "prefixes",
        "empty-users",
        "user-spaces",
        "blanks",
        "openings",
        "closings",
    ],
)
def test_a_title_of_the_largest_worst_prompt_takes_linear_time(filler):
    _assert_fast(_TITLE + filler)


@pytest.mark.parametrize(
    "filler",
    [
        "\n" * _ROOM,
        " " * _ROOM,
        "USER:" * (_ROOM // 5),
        "USER:\n" * (_ROOM // 6),
        "USER: a\n" + " \n" * (_ROOM // 2),
        "USER: a\n" + "x\n" * (_ROOM // 2),
        "USER: " + "{" * _ROOM,
        "USER: " + "{ }" * (_ROOM // 3),
        "<chat_history>\n" * (_ROOM // 15),
        "<chat_history>" + "</chat_history>" * (_ROOM // 15),
    ],
    ids=[
        "newlines",
        "spaces",
        "prefixes",
        "empty-users",
        "blank-continuations",
        "continuations",
        "braces",
        "brace-pairs",
        "openings",
        "closings",
    ],
)
def test_an_image_prompt_of_the_largest_worst_prompt_takes_linear_time(filler):
    _assert_fast(_IMAGE + filler)


@pytest.mark.parametrize(
    "prompt",
    ["### Task:" + " " * _ROOM, "### Task:" + "\n" * _ROOM, "### Task:\n" + "x" * _ROOM],
    ids=["spaces", "newlines", "one-line"],
)
def test_reading_the_task_statement_takes_linear_time(prompt):
    _assert_fast(prompt)
