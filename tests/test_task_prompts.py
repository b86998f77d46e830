"""Open WebUI's background tasks get a short answer in the shape Open WebUI reads, and never reach
Workers AI.

The fixtures are the starts of Open WebUI's default task templates (see
flux_api/conversation/tasks.py for the release they were checked against), rendered as Open WebUI
renders them: {{MESSAGES:END:n}} becomes the last n messages as "ROLE: content" lines, and for
the background tasks (title, tags, follow-ups) the <details> blocks and markdown images of the
messages are removed first.
"""

import json
import time

import pytest

from flux_api.conversation.tasks import PLAIN_ANSWER, is_task_prompt, task_reply
from tests.conftest import content_of, read_sse


def read_json(answer: str):
    """As most of Open WebUI's readers do: from the first "{" to the last "}"."""
    return json.loads(answer[answer.find("{") : answer.rfind("}") + 1])


def read_json_from_last_brace(answer: str):
    """As its image-prompt and retrieval-query readers do: from the last "{" to the last "}"."""
    return json.loads(answer[answer.rfind("{") : answer.rfind("}") + 1])


def read_both_ways(answer: str):
    parsed = read_json(answer)
    assert read_json_from_last_brace(answer) == parsed
    return parsed


# A chat with this service as background tasks see it: the reply's image link is removed.
BACKGROUND_HISTORY = """USER: a red fox sleeping in deep snow at dusk 16:9
ASSISTANT: 🎨 Original Prompt: a red fox sleeping in deep snow at dusk 16:9
💬 Prompt Generation Model: Original Prompt
🌐 Prompt Used: a red fox sleeping in deep snow at dusk
📐 Image Specifications: 1344x768
🌟 Image generation successful!"""

# The chat as the image-prompt task sees it: the whole request, the new user message last, which
# may span lines and hold braces.
IMAGE_CHAT_HISTORY = """SYSTEM: You draw what the user describes.
USER: a red fox sleeping in deep snow at dusk
ASSISTANT: 🎨 Original Prompt: a red fox sleeping in deep snow at dusk
🌟 Image generation successful!

![Generated image](https://flux.example/image/2f9c.jpg)
USER: now the same fox in a {spring} meadow,
  with   cherry blossoms falling"""


def history(messages: str) -> str:
    return f"### Chat History:\n<chat_history>\n{messages}\n</chat_history>"


TITLE_TASK = """### Task:
Generate a concise title summarizing the chat history.
### Guidelines:
- The title should clearly represent the main theme or subject of the conversation.
- Keep it short: 2-4 words is best.
- Do not use emojis, quotation marks, or special formatting.
### Output:
JSON format: { "title": "your concise title here" }
### Examples:
- { "title": "Stock Trends" },
- { "title": "Chocolate Chip Cookies" },
""" + history(BACKGROUND_HISTORY)

# The title template of earlier releases, still in use where an admin saved it.
OLD_TITLE_TASK = """### Task:
Generate a concise, 3-5 word title with an emoji summarizing the chat history.
### Guidelines:
- The title should clearly represent the main theme or subject of the conversation.
### Output:
JSON format: { "title": "your concise title here" }
""" + history(BACKGROUND_HISTORY)

TAGS_TASK = """### Task:
Generate 1-3 broad tags categorizing the main themes of the chat history, along with 1-3 more specific subtopic tags.

### Guidelines:
- Start with high-level domains (e.g. Science, Technology, Philosophy, Arts, Politics, Business, Health, Sports, Entertainment, Education)
- If content is too short (less than 3 messages) or too diverse, use only ["General"]

### Output:
JSON format: { "tags": ["tag1", "tag2", "tag3"] }

""" + history(BACKGROUND_HISTORY)

FOLLOW_UP_TASK = """### Task:
Suggest 3-5 relevant follow-up questions or prompts that the user might naturally ask next in this conversation as a **user**, based on the chat history, to help continue or deepen the discussion.
### Guidelines:
- Write all follow-up questions from the user’s point of view, directed to the assistant.
- Response must be a JSON object with a "follow_ups" key containing an array of strings, no extra text or formatting.
### Output:
JSON format: { "follow_ups": ["Question 1?", "Question 2?", "Question 3?"] }
""" + history(BACKGROUND_HISTORY)

IMAGE_PROMPT_TASK = """### Task:
Generate a detailed prompt for am image generation task based on the given language and context. Describe the image as if you were explaining it to someone who cannot see it. Include relevant details, colors, shapes, and any other important elements.

### Guidelines:
- Be descriptive and detailed, focusing on the most important aspects of the image.

### Output:
Strictly return in JSON format:
{
    "prompt": "Your detailed description here."
}

""" + history(IMAGE_CHAT_HISTORY)

QUERIES_TASK = (
    """### Task:
Analyze the chat history to determine the necessity of generating search queries, in the given language. By default, **prioritize generating 1-3 broad and relevant search queries** unless it is absolutely certain that no additional information is required.

### Guidelines:
- If and only if it is entirely certain that no useful results can be retrieved by a search, return: { "queries": [] }.
- Today's date is: 2025-06-01.

### Output:
Strictly return in JSON format: 
{
  "queries": ["query1", "query2"]
}

"""
    + history(IMAGE_CHAT_HISTORY)
    + "\n"
)

AUTOCOMPLETE_TASK = (
    """### Task:
You are an autocompletion system. Continue the text in `<text>` based on the **completion type** in `<type>` and the given language.  

### **Instructions**:
5. If unsure, return: `{ "text": "" }`.  

### **Output Rules**:
- Respond only in JSON format: `{ "text": "<your_completion>" }`.

---
### Context:
<chat_history>
"""
    + BACKGROUND_HISTORY
    + """
</chat_history>
<type>General</type>  
<text>a lighthouse on a cliff at</text>  
#### Output:
"""
)

DOCUMENT_SUGGESTIONS_TASK = """### Task:
Generate 3-5 insightful questions a user would naturally want to ask about the provided document content, to help them explore and understand its key topics, concepts, and details.
### Output:
JSON format: { "questions": ["Question 1?", "Question 2?", "Question 3?"] }
### Document Content:
<document>
Tide tables for the harbour, June: high water 06:12 and 18:40.
</document>"""

EMOJI_TASK = """Your task is to reflect the speaker's likely facial expression through a fitting emoji. Interpret emotions from the message and reflect their facial expression using fitting, diverse emojis (e.g., 😊, 😢, 😡, 😱).

Message: ```that fox picture is wonderful, thank you!```"""

MOA_TASK = '''You have been provided with a set of responses from various models to the latest user query: "a red fox in the snow"

Your task is to synthesize these responses into a single, high-quality response.

Responses from models: """🎨 Original Prompt: a red fox in the snow"""

"""Here is a fox in the snow."""'''


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
