"""What the person asked for, read from the last user message as chat clients send it.

Open WebUI adds its own bookkeeping to a person's message: `<attached_files>…</attached_files>`
naming the files they attached (as a text part of its own, or at the start of the text), and,
when a file's text is used, its retrieval template around everything: `### Task:\\nRespond to the
user query using the provided context…`, the files' text in `<context><source …>…</source>
</context>`, then the person's words. None of that is theirs to send to the model: the prompt is
their own words, and the attached text comes along as context (`Said.attached`), which the
pipeline appends after a colon, cut at a sentence end to fit the model (generation/prompts.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_RAG_START = "### Task:\nRespond to the user query using the provided context"


@dataclass(frozen=True)
class Said:
    text: str  # the person's own words
    attached: str = ""  # the text of files they attached, when the client sent it along


def text_of(content: object) -> str | None:
    """A message's text: its `content` as a string, or its `text` parts joined by lines; None
    for any other shape."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    return "\n".join(
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    )


def read(text: str, system_texts: Iterable[str] = ()) -> Said:
    """The person's words and any attached text, from the last user message's text (and the
    system messages, where Open WebUI puts its retrieval template when told to)."""
    attached = ""
    if text.lstrip().startswith(_RAG_START):
        text, attached = _unwrapped(text.lstrip())
    else:
        for system in system_texts:
            if _RAG_START in system:
                attached = _sources(system[system.index(_RAG_START) :])
    return Said(without(text, "<attached_files>", "</attached_files>").strip(), attached)


# Tags are found with str.find, never a non-greedy regex: `<a>.*?</a>` rescans the rest of the
# text from every `<a>` left unclosed, which a 64 KB message turns into seconds of a worker's CPU.


def tagged(text: str, tag: str) -> list[str]:
    """The contents of each `<tag …>…</tag>` in `text`, in order, in one pass; an unclosed tag
    ends the search."""
    found, at = [], 0
    opening, closing = f"<{tag}", f"</{tag}>"
    while (start := text.find(opening, at)) != -1:
        after = start + len(opening)
        if text[after : after + 1] not in (">", " ", "\n"):  # <sources>, not <source>
            at = after
            continue
        inside = text.find(">", after) + 1
        end = text.find(closing, inside) if inside else -1
        if end == -1:
            break
        found.append(text[inside:end])
        at = end + len(closing)
    return found


def without(text: str, opening: str, closing: str) -> str:
    """`text` with each `opening…closing` block removed, in one pass; an unclosed block stays."""
    kept, at = [], 0
    while (start := text.find(opening, at)) != -1:
        end = text.find(closing, start + len(opening))
        if end == -1:
            break
        kept.append(text[at:start])
        at = end + len(closing)
    kept.append(text[at:])
    return "".join(kept)


def _unwrapped(text: str) -> tuple[str, str]:
    """(the person's words after the template, the sources' text inside it). The template's
    context is its last `<context>` block: the files' own text may hold anything before."""
    end = text.rfind("</context>")
    if end == -1:  # not the template after all: leave it as it is
        return text, ""
    end += len("</context>")
    return text[end:], _sources(text[:end])


def _sources(text: str) -> str:
    """The text of the `<source>` parts of the last `<context>` block in `text`."""
    end = text.rfind("</context>")
    start = text.rfind("<context>", 0, end)
    if start == -1 or end == -1:
        return ""
    context = text[start + len("<context>") : end]
    sources = tagged(context, "source") or [context]
    return " ".join(" ".join(source.split()) for source in sources)


# Words a title does not end on ("a red fox in" reads as cut off).
_DANGLING_WORDS = frozenset(
    "a an the and or but of in on at to for with from by into onto under over near".split()  # noqa: SIM905
)


def short_title(words: list[str], count: int) -> str:
    """The first `count` words, without punctuation at their ends, nor a small word last."""
    kept = [word.strip("\"“”'`*#_.,;:!?。，；：！？") for word in words[:count]]
    kept = [word for word in kept if word]
    while len(kept) > 1 and kept[-1].lower() in _DANGLING_WORDS:
        kept.pop()
    return " ".join(kept)
