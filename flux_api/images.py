"""POST /v1/images/generations: OpenAI's Images API on top of the pipeline.

Clients (NextChat, Open WebUI, LibreChat, the openai SDK) send DALL·E or gpt-image bodies; the
fields this service has no use for are accepted and ignored, so they work unmodified.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pybase64

from .budget import Budget
from .errors import invalid_request
from .fields import optional, whole_number
from .imaging import sniff_type
from .pipeline import Pipeline
from .sizes import parse_size

# Accepted for compatibility and ignored: quality, style, user, background, output_format,
# output_compression, moderation (and any other field OpenAI may add).
RESPONSE_FORMATS = ("url", "b64_json")


@dataclass(frozen=True)
class ImagesRequest:
    prompt: str
    model: str | None
    n: int
    size: tuple[int, int] | None
    response_format: str
    steps: int | None
    extras: dict


def parse_request(body: dict, max_n: int) -> ImagesRequest:
    """Check every field a client may get wrong, naming it in `param`."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid_request("`prompt` is required: describe the image you want.", param="prompt")
    model = optional(body, "model", str, "a string")
    response_format = body.get("response_format")
    if response_format is None:
        # gpt-image models only ever answer base64, and the clients that use them expect it.
        wants_b64 = isinstance(model, str) and model.startswith("gpt-image")
        response_format = "b64_json" if wants_b64 else "url"
    if response_format not in RESPONSE_FORMATS:
        raise invalid_request(
            '`response_format` must be "url" or "b64_json".', param="response_format"
        )
    negative = optional(body, "negative_prompt", str, "a string")
    extras = {"seed": whole_number(body, "seed", 0, 2**32 - 1), "negative_prompt": negative}
    return ImagesRequest(
        prompt=prompt,
        model=model,
        n=whole_number(body, "n", 1, max_n) or 1,
        size=parse_size(body.get("size")),
        response_format=response_format,
        steps=whole_number(body, "steps", 1),
        extras={k: v for k, v in extras.items() if v is not None},
    )


def generate(pipeline: Pipeline, request: ImagesRequest, base_url: str, budget: Budget) -> dict:
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
    as_base64 = request.response_format == "b64_json"
    choice, generated = pipeline.run(plan, request.n, keep=not as_base64, budget=budget)
    images = generated.images
    if as_base64:
        data = [{"b64_json": pybase64.b64encode(image).decode()} for image in images]
    else:
        data = [{"url": stored.url} for stored in generated.stored]
    for item in data:
        item["revised_prompt"] = choice.prompt
    width, height = plan.size
    image_type = sniff_type(images[0]) or "image/png"
    return {
        "created": int(time.time()),
        "data": data,
        "size": f"{width}x{height}",
        "output_format": image_type.split("/")[1],
    }
