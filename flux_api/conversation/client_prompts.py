"""The background prompts of chat clients other than Open WebUI (whose `### Task:` templates are
in tasks.py), kept as data in client_prompts.json: each names its client, what it asks for
(`kind`), the role of the message that carries it, where that message sits, and how the
conversation it is about is written down (`history`).

A request is matched on the start of one message, never on a word anywhere: a user message that
is the instruction must be the last message (NextChat's title prompt comes after the history);
a system message may be anywhere (NextChat's summary instruction is a system message after the
history, LobeChat's and Cherry Studio's are the first message). Whitespace is compared collapsed,
since clients re-indent their templates between releases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

_DATA = Path(__file__).with_name("client_prompts.json")
# Only the start of a message is compared: enough to tell the prompts apart, and a bound on
# the work a huge message can cause.
_COMPARED_CHARS = 200


@dataclass(frozen=True)
class ClientPrompt:
    client: str
    kind: str  # title, summary, search, translation, language, suggestions, tools
    role: str  # "user" or "system"
    where: str  # "last": must be the last message; "any": anywhere
    history: str  # how the conversation is written: messages, tagged, labelled, fenced, json
    text: str
    locale: str = ""

    @cached_property
    def start(self) -> str:
        # Once per prompt, not once per prompt per chat request (2 % of a worker's CPU was
        # this, profiled under bench/run.py).
        return normalised(self.text)


@dataclass(frozen=True)
class Match:
    prompt: ClientPrompt
    index: int  # of the message that carries the instruction


def normalised(text: str) -> str:
    return " ".join(text[: _COMPARED_CHARS * 2].split())[:_COMPARED_CHARS]


@lru_cache(maxsize=1)
def all_prompts() -> tuple[ClientPrompt, ...]:
    entries = json.loads(_DATA.read_text(encoding="utf-8"))["prompts"]
    return tuple(ClientPrompt(**entry) for entry in entries)


def find(messages: list[tuple[str, str]]) -> Match | None:
    """The client prompt these (role, text) messages carry, or None."""
    if not messages:
        return None
    last = len(messages) - 1
    systems = [index for index, (role, _) in enumerate(messages) if role == "system"]
    # The clients put their instruction first, last, or in the first or last system message:
    # looking nowhere else bounds the work whatever the number of messages.
    places = {0, last, *systems[:1], *systems[-1:]}
    starts = {index: normalised(messages[index][1]) for index in places}
    for prompt in all_prompts():
        candidates = [last] if prompt.where == "last" else list(starts)
        for index in candidates:
            role, _ = messages[index]
            if role == prompt.role and starts[index].startswith(prompt.start):
                return Match(prompt, index)
    return None
