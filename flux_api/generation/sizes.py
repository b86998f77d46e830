"""Aspect ratios and image sizes: pure functions, no I/O.

A ratio is read only where people write one: after `--ar` anywhere (the last one wins, and none
stays in the prompt), or else at the very end of the prompt (bracketed or followed by
punctuation too). "Meet at 10:30 in the park" keeps its time. The playground's static/ratio.js
follows the same rule; tests/system/test_playground.py checks they agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import gcd

from flux_api.config.models import DEFAULT_SIZE
from flux_api.errors import invalid_request

# The original Worker's presets keep their exact sizes.
PRESETS: dict[tuple[int, int], tuple[int, int]] = {
    (1, 1): (1024, 1024),
    (1, 2): (512, 1024),
    (3, 2): (768, 512),
    (3, 4): (768, 1024),
    (16, 9): (1024, 576),
    (9, 16): (576, 1024),
}
# Offered by the playground's ratio menu after its default, 1:1 (any W:H from 1:4 to 4:1 works).
COMMON_RATIOS = ("16:9", "9:16", "3:2", "2:3", "4:3", "3:4", "2:1", "1:2")
MAX_RATIO = 4  # from 1:4 to 4:1
LONG_SIDE = 1024
STEP = 64
MIN_SIDE = 256
MAX_SIDE = 2048  # largest side the Images API accepts

_COLON = r"[:：]"  # ASCII or full-width colon, as typed on CJK keyboards
_NUMBER = r"([0-9０-９]{1,5})"  # ASCII or full-width digits
_PAIR = rf"{_NUMBER}\s*{_COLON}\s*{_NUMBER}"
_AR_FLAG = re.compile(rf"(?:^|\s)--(?:ar|aspect)\s+{_PAIR}(?=[\s.,;!?。，；！？)\]）】]|$)", re.I)
# The last ratio of the prompt, alone or in brackets, then only punctuation: "a fox 16:9",
# "a fox (16:9)", "a fox 16:9." A bare one must start a word, so "10:30" in "at10:30" stays.
_FINAL = re.compile(
    rf"(?:[(\[（【]\s*{_PAIR}\s*[)\]）】]|(?:^|(?<=[\s,;，；、])){_PAIR})[\s.,;!?。，；！？…]*$"
)
# What is left between the text and a removed ratio: a separator nobody wants to keep.
_DANGLING = re.compile(r"[\s,;，；、]+$")
_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


@dataclass(frozen=True)
class Ratio:
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}:{self.height}"


def parse_ratio(prompt: str) -> tuple[str, Ratio | None]:
    """Split a prompt into (text without the ratio, the ratio or None): the last `--ar W:H`
    (every `--ar` is removed: none is meant for the model), or else the ratio ending the
    prompt, and only that one."""
    flags = list(_AR_FLAG.finditer(prompt))
    if flags:
        text = prompt
        for match in reversed(flags):  # from the end, so earlier positions stay true
            before, after = text[: match.start()].rstrip(), text[match.end() :].strip()
            joint = " " if before and after and after[0] not in ".,;!?。，；！？)]）】" else ""
            text = _DANGLING.sub("", before + joint + after).strip()
        return text, _ratio(flags[-1])
    final = _FINAL.search(prompt)
    if final:
        return _DANGLING.sub("", prompt[: final.start()]).strip(), _ratio(final)
    return prompt.strip(), None


def _ratio(match: re.Match) -> Ratio:
    width, height = (int(group.translate(_FULL_WIDTH_DIGITS)) for group in match.groups() if group)
    return Ratio(width, height)


def size_for_ratio(ratio: Ratio | None) -> tuple[int, int]:
    """The pixel size for a ratio: a preset, or long side 1024 and short side a multiple of 64."""
    if ratio is None:
        return DEFAULT_SIZE
    if ratio.width == 0 or ratio.height == 0:
        raise invalid_request(
            f"Aspect ratio {ratio} is not valid: both sides must be above 0.",
            code="invalid_aspect_ratio",
        )
    divisor = gcd(ratio.width, ratio.height)
    reduced = (ratio.width // divisor, ratio.height // divisor)
    if reduced in PRESETS:
        return PRESETS[reduced]
    long, short = max(reduced), min(reduced)
    if long > MAX_RATIO * short:
        raise invalid_request(
            f"Aspect ratio {ratio} is outside the supported range: use a ratio from 1:4 to 4:1, "
            "such as 16:9 or 2:3, at the end of the prompt.",
            code="invalid_aspect_ratio",
        )
    short_side = max(MIN_SIDE, round(LONG_SIDE * short / long / STEP) * STEP)
    return (LONG_SIDE, short_side) if reduced[0] >= reduced[1] else (short_side, LONG_SIDE)


def size_like(width: int, height: int) -> tuple[int, int]:
    """An output size with the shape of a `width` x `height` image (an edit's first image): long
    side 1024 and the short side to scale, in multiples of 16, at most 4:1."""
    long, short = max(width, height), max(1, min(width, height))
    short_side = max(MIN_SIDE, LONG_SIDE // MAX_RATIO, round(LONG_SIDE * short / long / 16) * 16)
    return (LONG_SIDE, short_side) if width >= height else (short_side, LONG_SIDE)


def parse_size(text: object) -> tuple[int, int] | None:
    """An Images API `size`: "WxH" with each side from 256 to 2048, or "auto" / absent (None)."""
    if text is None or text == "auto":
        return None
    match = (
        re.fullmatch(r"\s*([0-9]{1,5})\s*[xX×]\s*([0-9]{1,5})\s*", text)
        if isinstance(text, str)
        else None
    )
    if match:
        width, height = int(match.group(1)), int(match.group(2))
        if MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE:
            return width, height
    raise invalid_request(
        f'size must be "WxH" with each side from {MIN_SIDE} to {MAX_SIDE} (such as '
        f'"1024x576"), or "auto"; got {text!r}.',
        param="size",
        code="invalid_size",
    )


def upstream_size(
    target: tuple[int, int], size_range: tuple[int, int] | None
) -> tuple[int, int] | None:
    """The size to ask a model for: the target itself when the model takes it, else the nearest
    size with about the same ratio that it does (the answer is then cropped and resized).
    None for models that take no size."""
    if size_range is None:
        return None
    low, high = size_range
    width, height = target
    scale = 1.0
    if max(width, height) > high:
        scale = high / max(width, height)
    elif min(width, height) < low:
        scale = low / min(width, height)

    def scaled(side: int) -> int:
        # Multiples of 8 keep diffusion models happy; clamp again after rounding.
        return max(low, min(high, round(side * scale / 8) * 8))

    return scaled(width), scaled(height)
