"""POST /v1/images/generations: OpenAI's Images API on top of the pipeline.

Clients (NextChat, Open WebUI, LibreChat, the openai SDK) send DALL·E or gpt-image bodies; the
fields this service has no use for are accepted and ignored, so they work unmodified.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, replace

import pybase64

from flux_api.budget import Budget
from flux_api.errors import invalid_request
from flux_api.generation.memory import ImageMemory
from flux_api.generation.pipeline import Generated, Pipeline, Plan, PromptChoice
from flux_api.generation.sizes import parse_size
from flux_api.imaging.pictures import image_bytes, sniff_type
from flux_api.wire.fields import optional, whole_number

# Accepted for compatibility and ignored: quality, style, user, background, output_compression,
# moderation (and any other field OpenAI may add).
RESPONSE_FORMATS = ("url", "b64_json")
OUTPUT_FORMATS = ("png", "jpeg", "webp")


def response_format(body: dict, model: str | None) -> str:
    """`response_format`, or the default for the model named: gpt-image models only ever answer
    base64, and the clients that use them expect it."""
    value = body.get("response_format")
    if value is None:
        return "b64_json" if isinstance(model, str) and model.startswith("gpt-image") else "url"
    if value not in RESPONSE_FORMATS:
        raise invalid_request(
            '`response_format` must be "url" or "b64_json".', param="response_format"
        )
    return value


def output_format(body: dict) -> str | None:
    """`output_format` when a client asks for one (the image is then served in it); None keeps
    the model's own format untouched."""
    value = body.get("output_format")
    if value is None or value == "":
        return None
    if value not in OUTPUT_FORMATS:
        raise invalid_request(
            '`output_format` must be "png", "jpeg" or "webp".', param="output_format"
        )
    return value


@dataclass(frozen=True)
class ImagesRequest:
    prompt: str
    model: str | None
    n: int
    size: tuple[int, int] | None
    response_format: str
    steps: int | None
    extras: dict
    output_format: str | None = None


def parse_request(body: dict, max_n: int) -> ImagesRequest:
    """Check every field a client may get wrong, naming it in `param`."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid_request("`prompt` is required: describe the image you want.", param="prompt")
    model = optional(body, "model", str, "a string")
    negative = optional(body, "negative_prompt", str, "a string")
    extras = {"seed": whole_number(body, "seed", 0, 2**32 - 1), "negative_prompt": negative}
    return ImagesRequest(
        prompt=prompt,
        model=model,
        n=whole_number(body, "n", 1, max_n) or 1,
        size=parse_size(body.get("size")),
        response_format=response_format(body, model),
        steps=whole_number(body, "steps", 1),
        extras={k: v for k, v in extras.items() if v is not None},
        output_format=output_format(body),
    )


def generate(
    pipeline: Pipeline,
    request: ImagesRequest,
    base_url: str,
    budget: Budget,
    memory: ImageMemory,
) -> dict | Iterable[bytes]:
    """Generate all `n` images, then store them: if any fails, nothing is stored."""
    plan = pipeline.plan(
        request.prompt,
        request.model,
        base_url,
        size=request.size,
        steps=request.steps,
        extras=request.extras,
        param="prompt",
    )
    return deliver(
        pipeline, plan, request.n, request.response_format, budget, memory, request.output_format
    )


def deliver(
    pipeline: Pipeline,
    plan: Plan,
    n: int,
    response_format: str,
    budget: Budget,
    memory: ImageMemory,
    fmt: str | None = None,
) -> dict | Iterable[bytes]:
    """Make a plan's `n` images and answer in the Images API's shape, for generations and edits
    alike. A `url` answer is a dict; a `b64_json` one is JSON streamed image by image, holding
    the request's memory reservation until it has been sent."""
    as_base64 = response_format == "b64_json"
    pipeline.admit(plan, n, keep=not as_base64)
    # Models that make 1024x1024 whatever is asked hold that much before a crop.
    largest = max(plan.size, (1024, 1024), key=lambda size: size[0] * size[1])
    try:
        reservation = memory.reserve(image_bytes(largest, n), budget)
    except BaseException:  # gave up waiting for memory: the store's room goes back too
        pipeline.store.release()
        raise
    try:
        plan = replace(plan, output_format=fmt) if fmt else plan
        choice, generated = pipeline.run(plan, n, keep=not as_base64, budget=budget)
        assert isinstance(choice, PromptChoice) and isinstance(generated, Generated)
        width, height = plan.size
        image_type = sniff_type(generated.images[0]) or "image/png"
        head = {
            "created": int(time.time()),
            "size": f"{width}x{height}",
            "output_format": image_type.split("/")[1],
        }
        if as_base64:
            # Everything that could fail is done before the answer starts: once a 200 is on
            # the wire, a failure cuts the body, and the SDK repeats the paid call.
            opening = json.dumps(head)[:-1].encode() + b', "data": ['
            item = b'{"revised_prompt": ' + json.dumps(choice.prompt).encode() + b', "b64_json": "'
            chunks = _b64_json(opening, item, generated.images)
            return StreamedBody(chunks, reservation.release, on_abandon=budget.leave)
    except BaseException:
        reservation.release()
        raise
    reservation.release()
    data = [{"url": stored.url, "revised_prompt": choice.prompt} for stored in generated.stored]
    return {**head, "data": data}


# Base64 turns every 3 bytes into 4 characters: pieces of a multiple of 3 join seamlessly.
_B64_PIECE = 3 * 256 * 1024


def _b64_json(opening: bytes, item: bytes, images: list[bytes]) -> Generator[bytes, None, None]:
    """The Images API answer with `b64_json` items, encoded a piece at a time (the answer of
    four 2048x2048 PNGs is ~60 MB as one string)."""
    yield opening
    for index in range(len(images)):
        image, images[index] = images[index], b""  # sent: let it go
        yield (b", " if index else b"") + item
        for start in range(0, len(image), _B64_PIECE):
            yield pybase64.b64encode(image[start : start + _B64_PIECE])
        yield b'"}'
    yield b"]}"


class StreamedBody:
    """A response body that runs `on_close` when the server closes it, sent or not (a
    generator that never started would skip its `finally`), and `on_abandon` first if it was
    closed before its end (the client went away)."""

    def __init__(
        self,
        chunks: Generator[bytes, None, None],
        on_close: Callable[[], object],
        on_abandon: Callable[[], object],
    ):
        self._chunks = chunks
        self._on_close = on_close
        self._on_abandon = on_abandon
        self._finished = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
        self._finished = True

    def close(self) -> None:
        try:
            if not self._finished:
                self._on_abandon()
            self._chunks.close()
        finally:
            self._on_close()
