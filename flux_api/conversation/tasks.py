"""Open WebUI's background tasks (titles, tags, follow-ups…), sent to the chat model itself.

An image for them would waste quota and put stray pictures in the chat, so each gets a short
answer, with no upstream call, in the JSON Open WebUI parses: one flat object, as some of its
readers cut from the last `{`. A task is known by its template's first line (KNOWN_STATEMENTS, from
Open WebUI 0.12.4 and tests/fixtures/open-webui-0.12.4/); words are the fallback for custom ones.
"""

from __future__ import annotations

import json

from flux_api.conversation.messages import short_title

TASK_MARKER = "### Task:"
# Open WebUI's tasks whose templates do not start with TASK_MARKER.
EMOJI_TASK_START = "Your task is to reflect the speaker's likely facial expression"
MOA_TASK_START = "You have been provided with a set of responses from various models"
_STARTS = (TASK_MARKER, EMOJI_TASK_START, MOA_TASK_START)

PLAIN_ANSWER = "This model generates images; send it a description of the picture you want."
# The role prefixes Open WebUI writes at the start of each message in a rendered chat history
# ("USER: …", "ASSISTANT: …": the role upper-cased), and the tags around that history.
_ROLES = ("USER:", "ASSISTANT:", "SYSTEM:", "TOOL:", "DEVELOPER:")
_HISTORY_OPEN, _HISTORY_CLOSE = "<chat_history>", "</chat_history>"


# Open WebUI's retrieval template starts like a task, but wraps a person's own message (their
# words after the attached files' text): that is a request for an image (conversation.py).
RAG_STATEMENT = "respond to the user query using the provided context"


def is_task_prompt(text: str) -> bool:
    stripped = text.lstrip()
    if stripped.startswith(TASK_MARKER) and _statement(stripped).startswith(RAG_STATEMENT):
        return False
    return stripped.startswith(_STARTS)


def _statement(text: str) -> str:
    """The task's first line, lower-cased: what the template asks for, before any chat text.

    The templates put it on the line after the marker; older or custom ones on the same line.
    Only this line is looked at, so words in the chat history (a user asking for "tags") cannot
    change which task is answered.
    """
    rest = text.lstrip()[len(TASK_MARKER) :].lstrip()
    return rest.partition("\n")[0].lower()


def _history(text: str) -> str:
    """The rendered chat history between <chat_history> tags, or the whole text if it has none."""
    start = text.find(_HISTORY_OPEN)
    if start == -1:
        return text
    start += len(_HISTORY_OPEN)
    end = text.rfind(_HISTORY_CLOSE, start)
    return text[start:] if end == -1 else text[start:end]


def _first_user_words(text: str, count: int) -> list[str] | None:
    r"""The first `count` words of the first `USER:` line that has any, or None.

    A loop over lines, because the regex it replaces (`^\s*USER:` under re.M) was quadratic: from
    each line start its `\s*` rescanned every blank line below (seconds of CPU for 62 KB of "\n").
    """
    for line in text.split("\n"):
        line = line.lstrip()
        if line.startswith("USER:"):
            words = line[len("USER:") :].split()
            if words:
                return words[:count]
    return None


def _last_user_message(history: str) -> str:
    """The last USER message of a rendered history, lines joined, whitespace collapsed.

    One pass over the lines: a message runs from its `ROLE:` line to the next one, since Open
    WebUI joins "ROLE: content" entries with newlines and keeps newlines inside a content.
    """
    lines = history.split("\n")
    last = None
    for index, line in enumerate(lines):
        if line.startswith("USER:"):
            last = index
    if last is None:
        return ""
    parts = [lines[last][len("USER:") :]]
    for line in lines[last + 1 :]:
        if line.startswith(_ROLES):
            break
        parts.append(line)
    return " ".join(" ".join(parts).split())


def _image_prompt(text: str) -> str | None:
    """The user's own words as the image prompt, or None when the history has none."""
    prompt = _last_user_message(_history(text))
    # Open WebUI's reader starts at the last "{": a brace inside the prompt would cut it there.
    prompt = " ".join(prompt.replace("{", " ").replace("}", " ").split())
    return prompt or None


def _title(text: str, statement: str) -> str:
    count = 5 if "3-5 word" in statement else 4  # older template: 3-5 words; now: 2-4
    words = _first_user_words(_history(text), count) or ["Image", "generation"]
    title = short_title(words, count) or "Image generation"
    if "with an emoji" in statement:
        title = "🎨 " + title
    return json.dumps({"title": title}, ensure_ascii=False)


# The first line of each 0.12.x template (after the marker), and of older ones where they
# differ, with the task it names: matched first, so a template is known by its structure. Words
# are the fallback for custom templates only.
KNOWN_STATEMENTS = (
    ("generate a concise title", "title"),
    ("generate a concise, 3-5 word title", "title"),
    ("generate 1-3 broad tags", "tags"),
    ("predict 3-5 useful messages", "follow_ups"),
    ("suggest 3-5 relevant follow-up questions", "follow_ups"),
    ("generate a detailed prompt for am image generation task", "image_prompt"),
    ("generate a detailed prompt for an image generation task", "image_prompt"),
    ("analyze the chat history to determine the necessity of generating search queries", "queries"),
    ("you are an autocompletion system", "autocomplete"),
    ("generate 3-5 insightful questions", "questions"),
)


def _known_task(statement: str) -> str | None:
    for start, task in KNOWN_STATEMENTS:
        if statement.startswith(start):
            return task
    return None


def _marked_task_reply(text: str) -> str:
    task = _statement(text)
    known = _known_task(task)
    if known is not None:
        return _KNOWN_REPLIES[known](text, task)
    if "image generation" in task and "prompt" in task:
        return _image_prompt_reply(text, task)
    if "autocompletion" in task or "autocomplete" in task:
        return json.dumps({"text": ""})
    if "follow-up" in task or "follow up" in task:
        return json.dumps({"follow_ups": []})
    if "questions" in task and "document" in task:
        return json.dumps({"questions": []})
    if "tags" in task:
        return json.dumps({"tags": ["Image generation"]})
    if "title" in task:
        return _title(text, task)
    if "search quer" in task or "retrieval quer" in task:
        return json.dumps({"queries": []})
    if "emoji" in task:
        return "🎨"
    return PLAIN_ANSWER


def _image_prompt_reply(text: str, task: str) -> str:
    prompt = _image_prompt(text)
    # No JSON when there is nothing to say: Open WebUI then uses the user's message itself.
    return PLAIN_ANSWER if prompt is None else json.dumps({"prompt": prompt}, ensure_ascii=False)


_KNOWN_REPLIES = {
    "title": lambda text, task: _title(text, task),
    "tags": lambda text, task: json.dumps({"tags": ["Image generation"]}),
    "follow_ups": lambda text, task: json.dumps({"follow_ups": []}),
    "image_prompt": _image_prompt_reply,
    "queries": lambda text, task: json.dumps({"queries": []}),
    "autocomplete": lambda text, task: json.dumps({"text": ""}),
    "questions": lambda text, task: json.dumps({"questions": []}),
}


def task_reply(text: str) -> str:
    """A small, valid answer to the task, without calling any upstream."""
    stripped = text.lstrip()
    if stripped.startswith(TASK_MARKER):
        return _marked_task_reply(text)
    if stripped.startswith(EMOJI_TASK_START):
        return "🎨"
    return PLAIN_ANSWER
