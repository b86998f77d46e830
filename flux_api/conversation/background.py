"""Answers to the chat requests that do not ask for an image: clients' background prompts (a
title, a summary, search routing… see client_prompts.py and tasks.py) and Open WebUI's notes
after it made an image itself ("legacy" function calling). None of them calls Workers AI.

A title is made from the person's first image prompt, a summary lists the prompts of the chat:
both are read from the conversation as the client wrote it down in its request.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import cached_property

from flux_api.conversation import client_prompts, followups, tasks
from flux_api.conversation.messages import short_title, tagged, text_of, without
from flux_api.generation.sizes import parse_ratio
from flux_api.upstream.optimizer import OptimizerError

log = logging.getLogger(__name__)
_MAX_PROMPTS = 8  # in a summary
_PROMPT_CHARS = 120  # of each prompt in a summary
_TITLE_WORDS = 5
_SCANNED_CHARS = 20_000  # of a conversation written into one message

# Open WebUI's system note once it has made, edited, or failed to make an image itself
# (utils/middleware.py of 0.12.4). The chat request that follows must not make another.
_OPEN_WEBUI_NOTES = (
    ("<context>The requested image has been created", "created"),
    ("<context>The requested image has been edited and created", "edited"),
    ("<context>Image generation was attempted but failed", "failed"),
    ("<context>Image generation was requested but the feature is currently disabled", "off"),
)
# What Open WebUI does next in this mode: with its Image button on, it edits the image it keeps
# with the next message, whatever it says; with the button off, it sends no image along.
_NOTE_REPLIES = {
    "created": "Here is your image. With the Image button on, your next message edits it; for "
    "an unrelated picture, start a new chat.",
    "edited": "Here is the edited image. With the Image button on, your next message edits it "
    "again; for an unrelated picture, start a new chat.",
    "failed": "The image could not be made: {error}",
    "off": "Image generation is turned off in Open WebUI's settings, so no image was made.",
    "button_off": "Open WebUI keeps that image itself, so it cannot be changed from here: turn "
    "the Image button on and say again how to change it. No image was made.",
}
_FAILED_ERROR = "error occurred: "


@dataclass(frozen=True)
class TextAnswer:
    text: str
    kind: str  # for the access log: "task", "title", "summary", "note"…


def note(messages: list, follow_ups: bool = True) -> TextAnswer | None:
    """The answer to Open WebUI's note that it has made (or failed to make) the image itself;
    and, with `follow_ups`, to a change asked of such an image with the Image button off."""
    said = _role_texts(messages)
    found = _open_webui_note(said)
    if found is not None or not follow_ups:
        return found
    return _change_of_open_webui_image(messages, said)


def _change_of_open_webui_image(messages: list, said: list[tuple[str, str]]):
    """In legacy mode Open WebUI keeps the images it made and sends none of them along: a
    change asked of one ("make it green") would otherwise be a new, billed, unrelated image."""
    if not said or said[-1][0] != "user" or not followups.asks_for_change(said[-1][1]):
        return None
    answers = [text.strip() for role, text in said[:-1] if role == "assistant"]
    made_by_it = (_NOTE_REPLIES["created"], _NOTE_REPLIES["edited"])
    if not answers or answers[-1] not in made_by_it or followups.earlier_image(messages):
        return None
    return TextAnswer(_NOTE_REPLIES["button_off"], "note")


def answer(
    messages: list, response_format: object = None, optimizer=None, allow_optimizer=lambda: True
) -> TextAnswer | None:
    """The answer to a client's background prompt, or None for an image request. With the
    prompt optimizer on, its LLM writes titles and summaries; without it, or when it fails,
    they are made from the prompts themselves."""
    said = _role_texts(messages)
    last_user = next((text for role, text in reversed(said) if role == "user"), None)
    if last_user is not None and said[-1][0] == "user" and tasks.is_task_prompt(last_user):
        return TextAnswer(tasks.task_reply(last_user), "task")
    match = client_prompts.find(said)
    if match is None:
        return None
    prompts = _person_prompts(said, match)
    instruction = said[match.index][1]
    writer = optimizer if match.prompt.kind in ("title", "summary") else None
    words = _Words(prompts, writer, allow_optimizer)
    reply = _reply(match.prompt.kind, words, instruction, response_format)
    return TextAnswer(reply, match.prompt.kind)


def _role_texts(messages: list) -> list[tuple[str, str]]:
    """Each message as (role, its text); parts that are not text are left out."""
    out = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        text = text_of(message.get("content"))
        if text is not None:
            out.append((str(message.get("role")), text))
    return out


def _open_webui_note(said: list[tuple[str, str]]) -> TextAnswer | None:
    for role, text in said:
        if role != "system" or "<context>" not in text:
            continue
        for start, kind in _OPEN_WEBUI_NOTES:
            if start in text:
                reply = _NOTE_REPLIES[kind]
                if kind == "failed":
                    reply = reply.format(error=_failure(text))
                return TextAnswer(reply, "note")
    return None


def _failure(note: str) -> str:
    """The error Open WebUI's failure note passes on, cut short."""
    start = note.find(_FAILED_ERROR)
    end = note.find("</context>", start)
    if start == -1 or end == -1:
        return "unknown error"
    return " ".join(note[start + len(_FAILED_ERROR) : end].split())[:500] or "unknown error"


# ---- the person's prompts, as each client writes the conversation down --------------------


def _person_prompts(said: list[tuple[str, str]], match: client_prompts.Match) -> list[str]:
    style = match.prompt.history
    instruction = said[match.index][1][:_SCANNED_CHARS]
    if style == "messages":
        found = [
            text
            for index, (role, text) in enumerate(said)
            if role == "user" and index != match.index
        ]
    elif style == "tagged":  # LobeChat: <user>…</user>
        body = _last_user(said)[:_SCANNED_CHARS]
        found = tagged(body, "user")
        if not found:  # its older form: "user: …" lines
            found = re.findall(r"^user: (.+)$", body, re.M)
    elif style == "labelled":  # LibreChat: "User: …" lines, in the instruction or a system message
        found = re.findall(r"^User: (.+)$", instruction, re.M)
    elif style == "fenced":  # ChatBox: messages between ``` fences, split by dashes; users first
        fenced = instruction.split("```")
        chunks = fenced[1].split("---------") if len(fenced) > 2 else []
        found = chunks[::2]
    else:  # "json", Cherry Studio: [{"role": …, "mainText": …}] as the user message
        found = _json_user_texts(_last_user(said)[:_SCANNED_CHARS])
    return [prompt for prompt in (_clean(text) for text in found) if prompt]


def _last_user(said: list[tuple[str, str]]) -> str:
    return next((text for role, text in reversed(said) if role == "user"), "")


def _json_user_texts(text: str) -> list[str]:
    try:
        items = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested absurdly deep
        return []
    if not isinstance(items, list):
        return []
    return [
        item["mainText"]
        for item in items
        if isinstance(item, dict)
        and item.get("role") == "user"
        and isinstance(item.get("mainText"), str)
    ]


def _clean(text: str) -> str:
    """A prompt as a title or summary shows it: one line, no ratio, no markdown image."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text[:2000])
    text = without(text, "<attached_files>", "</attached_files>")
    prompt, _ = parse_ratio(" ".join(text.split()))
    return prompt


# ---- the answers ---------------------------------------------------------------------------


def title_of(prompts: list[str]) -> str:
    """A few words of the person's first image prompt."""
    title = short_title(prompts[0].split(), _TITLE_WORDS) if prompts else ""
    return title or "Image generation"


def summary_of(prompts: list[str]) -> str:
    if not prompts:
        return "No image has been made in this chat yet."
    shown = [prompt[:_PROMPT_CHARS] for prompt in prompts[-_MAX_PROMPTS:]]
    more = len(prompts) - len(shown)
    listed = "; ".join(shown) + (f" (and {more} earlier)" if more else "")
    return f"Images made in this chat from the prompts: {listed}."


class _Words:
    """A chat's title and summary, written when first needed: by the optimizer's LLM when it is
    on (one call each at most), else from the prompts."""

    def __init__(self, prompts: list[str], optimizer, allowed):
        self.prompts, self.optimizer, self.allowed = prompts, optimizer, allowed

    @cached_property
    def title(self) -> str:
        return self._written("title") or title_of(self.prompts)

    @cached_property
    def summary(self) -> str:
        return self._written("summary") or summary_of(self.prompts)

    def _written(self, kind: str) -> str | None:
        if self.optimizer is None or not self.prompts or not self.allowed():
            return None
        try:
            return self.optimizer.describe(kind, self.prompts)
        except OptimizerError as exc:
            log.warning(
                "optimizer could not write a chat %s (%s); made from the prompts", kind, exc
            )
            return None


def _reply(kind: str, words: _Words, instruction: str, response_format) -> str:
    schema = _json_schema(response_format)
    if schema is not None:
        return json.dumps(_filled(schema, words), ensure_ascii=False)
    if kind == "title":  # plain text, unless the instruction asks for JSON (LobeChat may)
        if "JSON" in instruction[:2000]:
            return json.dumps({"title": words.title}, ensure_ascii=False)
        return words.title
    if kind == "summary":
        return words.summary
    if kind == "search":  # ChatBox's routing: go on with the person's message, no search
        return json.dumps({"action": "proceed"})
    if kind == "tools":  # Open WebUI's function calling: no tool, go on with the message
        return json.dumps({"tool_calls": []})
    if kind == "suggestions":
        return json.dumps({"chips": []})
    if kind == "language":
        return "English"
    return tasks.PLAIN_ANSWER


def _json_schema(response_format: object) -> dict | None:
    """The schema a `response_format: {"type": "json_schema"}` asks the answer to follow."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else {}


def _filled(schema: dict, words: _Words) -> dict:
    """An object with each property the schema names: what it can be from this chat."""
    values = {
        "title": lambda: words.title,
        "summary": lambda: words.summary,
        "description": lambda: words.summary,
        "language": lambda: "English",
    }
    properties = schema.get("properties")
    out = {}
    for name, spec in properties.items() if isinstance(properties, dict) else []:
        kind = spec.get("type") if isinstance(spec, dict) else None
        out[name] = values[name]() if name in values else ([] if kind == "array" else "")
    return out or {"title": words.title}
