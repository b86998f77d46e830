"""A prompt made to fit its model: the text of a file attached to a chat goes after the person's
words, cut at a sentence end so that the whole stays within the model's prompt limit."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?。！？…](?=\s|$)")


def with_context(prompt: str, attached: str, limit: int) -> str:
    """`prompt: attached`, the attached text cut at the last sentence end that fits `limit`
    characters (or at a word end when no sentence does); the prompt alone when none fits."""
    if not attached:
        return prompt
    room = limit - len(prompt) - 2
    if room <= 0:
        return prompt
    if len(attached) <= room:
        return f"{prompt}: {attached}"
    cut = attached[:room]
    ends = [match.end() for match in _SENTENCE_END.finditer(cut)]
    if ends:
        cut = cut[: ends[-1]]
    else:
        cut = cut.rsplit(" ", 1)[0] if " " in cut else ""
    return f"{prompt}: {cut.strip()}" if cut.strip() else prompt
