"""Reading a Workers AI answer: the image bytes of a success (raw, or base64 in the JSON
envelope, checked to be a whole image), or the exception its error envelope stands for."""

from __future__ import annotations

import binascii
import json
import re

import pybase64

from flux_api.config.models import ModelProfile, ResponseForm
from flux_api.imaging.pictures import is_complete, sniff_type
from flux_api.upstream.workers_ai.errors import BadResponse, WorkersAIError, classify


def decode(
    model: ModelProfile, status: int, content: bytes, retry_after: int | None, scrub
) -> bytes:
    """The image in an answer, or raise what went wrong; `scrub` cleans upstream text of
    secrets before it reaches a message."""
    if status == 200 and model.response is ResponseForm.RAW and sniff_type(content):
        return _whole(content)
    cut = _image_cut_out(content) if status == 200 else None
    envelope, image_b64 = cut if cut is not None else (_json_or_none(content), None)
    if status != 200 or (envelope is not None and envelope.get("success") is False):
        raise _error_from(status, envelope, retry_after, scrub)
    if envelope is None:
        raise BadResponse(f"HTTP 200 with an unreadable {len(content)}-byte body")
    if image_b64 is None:
        image_b64 = (envelope.get("result") or {}).get("image")
    if not isinstance(image_b64, (str, bytes)):
        raise BadResponse("the answer holds no image")
    try:
        image = pybase64.b64decode(image_b64, validate=True)  # SIMD: ~50x the stdlib's speed
    except (binascii.Error, ValueError) as exc:
        raise BadResponse("the image is not valid base64") from exc
    if not sniff_type(image):
        raise BadResponse("the decoded bytes are not a JPEG, PNG or WebP image")
    return _whole(image)


def _error_from(
    status: int, envelope: dict | None, retry_after: int | None, scrub
) -> WorkersAIError:
    errors = (envelope or {}).get("errors") or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    code = first.get("code") if isinstance(first.get("code"), int) else None
    message = scrub(str(first.get("message") or "no error message"))
    return classify(status, code, message, retry_after)


def _whole(image: bytes) -> bytes:
    """The image, if it is complete: a cut-off one would be stored and served as a success."""
    if not is_complete(image):
        raise BadResponse(f"the image is cut off ({len(image)} bytes arrived)")
    return image


_IMAGE_STRING = re.compile(rb'"image"\s*:\s*"')


def _image_cut_out(content: bytes) -> tuple[dict, bytes] | None:
    """A success's envelope parsed without its image, and the image's base64 as bytes. Parsing
    the ~250 KiB string as JSON was 5 % of a worker's CPU (bench/README.md); base64 holds no
    quote nor backslash, so the string ends at the next quote. None when the answer is shaped
    otherwise (escapes in the string, the key elsewhere): it is then parsed whole, as before."""
    found = _IMAGE_STRING.search(content)
    if found is None:
        return None
    start = found.end()
    end = content.find(b'"', start)
    if end < 0 or content.find(b"\\", start, end) >= 0:
        return None
    if _IMAGE_STRING.search(content, end) is not None:
        return None  # another "image" key: which one is the result's, only a parse can tell
    envelope = _json_or_none(content[:start] + content[end:])
    if envelope is None:
        return None
    result = envelope.get("result")
    if not isinstance(result, dict) or result.get("image") != "":
        return None  # the string cut out was not the result's image
    return envelope, content[start:end]


def _json_or_none(content: bytes) -> dict | None:
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):  # RecursionError: an envelope nested absurdly deep
        return None
    return data if isinstance(data, dict) else None


def neurons_spent(value: str | None) -> float | None:
    """The `cf-ai-neurons` header of a success, when Cloudflare sends one."""
    try:
        spent = float(value) if value else None
    except ValueError:
        return None
    return spent if spent is not None and 0 <= spent < 1e9 else None
