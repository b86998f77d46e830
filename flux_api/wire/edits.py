"""POST /v1/images/edits and /v1/images/variations: OpenAI's editing endpoints on the pipeline.

Clients send multipart/form-data: `image` (one file) or `image[]` (one part per file, which the
openai SDK, Open WebUI and LibreChat all send), an optional `mask`, and the same fields as a
generation; or JSON with `images: [{"image_url": "data:…"}]`. Only data URLs are taken: fetching
a remote URL would make this service a proxy into its own network (and spend time and quota on
whatever a URL answers), so an `https:` URL is refused with a message saying what to send.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

import pybase64
from werkzeug.datastructures import MultiDict

from flux_api.budget import Budget
from flux_api.config.models import EditInput
from flux_api.errors import invalid_request
from flux_api.generation import model_choice
from flux_api.generation.memory import ImageMemory
from flux_api.generation.pipeline import Pipeline, Plan
from flux_api.generation.sizes import parse_size, size_like, upstream_size
from flux_api.imaging.references import (
    InputImage,
    check_count,
    check_image,
    decoded_bytes,
    fit_within,
    inpainting_mask,
    resized,
)
from flux_api.wire.fields import optional, whole_number
from flux_api.wire.images import output_format, response_format

# What a variation asks of the model: the openai API takes no prompt for it.
VARIATION_PROMPT = (
    "A variation of image 0: the same subject, composition, style and colours, with small "
    "natural differences in the details."
)
_DATA_URL = re.compile(
    r"data:(?P<type>[\w/+.-]*)(?P<params>(?:;[^,;]*)*?);base64,(?P<data>.*)", re.S
)
_NUMBERS = {"n": int, "seed": int, "strength": float}
_OWN_IMAGE = re.compile(r"/image/(?P<key>[A-Za-z0-9_-]{16,64})$")


@dataclass(frozen=True)
class EditRequest:
    prompt: str
    images: list[InputImage]
    mask: InputImage | None
    model: str | None
    n: int
    size: tuple[int, int] | None
    response_format: str
    extras: dict
    output_format: str | None = None


def parse_form(form: MultiDict, files: MultiDict, max_n: int, variation: bool) -> EditRequest:
    """A multipart edit or variation: `image` and `image[]` parts, in order, then the fields."""
    parts = [part for name in ("image", "image[]") for part in files.getlist(name)]
    check_count(len(parts))
    uploads = [part.read() for part in parts]
    mask_part = files.get("mask")
    body = {name: _typed(name, value) for name, value in form.items()}
    mask = mask_part.read() if mask_part is not None else None
    return _request(body, uploads, mask, max_n, variation)


def parse_json(body: dict, max_n: int, variation: bool = False) -> EditRequest:
    """The JSON form: `images: [{"image_url": "data:…"}]` (an item may also be the bare URL
    string) and `mask: {"image_url": …}` or the bare string."""
    images = body.get("images")
    if not isinstance(images, list) or not all(isinstance(item, (dict, str)) for item in images):
        raise invalid_request(
            'Send the images as `images: [{"image_url": "data:image/png;base64,…"}]`, or as '
            "multipart `image[]` parts.",
            param="images",
        )
    check_count(len(images), "images")
    uploads = [_from_url(item, f"images[{index}]") for index, item in enumerate(images)]
    mask = body.get("mask")
    if mask is not None and not isinstance(mask, (dict, str)):
        raise invalid_request(
            'Send the mask as `mask: {"image_url": "data:image/png;base64,…"}` or as that '
            "data URL.",
            param="mask",
        )
    mask_bytes = _from_url(mask, "mask") if mask is not None else None
    return _request(body, uploads, mask_bytes, max_n, variation)


def from_chat(
    prompt: str, image_urls: tuple[str, ...], model: str | None, store, settings
) -> EditRequest:
    """A chat message with images is an edit of those images with its text. An image of this
    service (its /image/<key> URL, as in an earlier reply) is taken from the store. How many
    there are, and whether a model takes that many, is checked before any is read; what is
    read stops at MAX_UPLOAD_MB in all, as an upload would."""
    check_count(len(image_urls), "messages")
    model_choice.edit_model(settings, model, len(image_urls), masked=False)
    budget = settings.max_upload_mb * 1024 * 1024
    uploads = []
    for index, url in enumerate(image_urls):
        uploads.append(_chat_image(url, store, index))
        budget -= len(uploads[-1])
        if budget < 0:
            raise invalid_request(
                f"The images of this message come to more than {settings.max_upload_mb} MB "
                "(MAX_UPLOAD_MB). Send fewer or smaller images.",
                param="messages",
                code="image_too_large",
            )
    return edit_of(prompt, uploads, model)


def edit_of(prompt: str, uploads: list[bytes], model: str | None) -> EditRequest:
    """A chat's edit of these images, already read, with the person's words."""
    body = {"prompt": prompt, "model": model, "response_format": "url"}
    return _request(body, uploads, None, max_n=1, variation=False)


def _chat_image(url: str, store, index: int) -> bytes:
    key = _OWN_IMAGE.search(url)
    if key is not None and not url.startswith("data:"):
        stored = store.get(key["key"])
        if stored is None:
            raise invalid_request(
                f"Image {index} ({url[:100]}) has expired or never existed here.",
                param="messages",
                code="image_not_found",
            )
        return stored
    return _from_url({"image_url": url}, "messages")


def plan_edit(
    pipeline: Pipeline, request: EditRequest, base_url: str, memory: ImageMemory, budget: Budget
) -> Plan:
    """The model that takes these images (model_choice), the output size (`size`, else the
    first image's shape), and the images prepared once for that model: decoded one at a time,
    only once every other check has passed, within the worker's IMAGE_MEMORY_MB."""
    model = model_choice.edit_model(
        pipeline.settings, request.model, len(request.images), request.mask is not None
    )
    pipeline.check(request.prompt, model, "prompt")
    size = request.size or size_like(*request.images[0].size)
    mask = None
    used = request.images[: 1 if model.edit_input is not EditInput.REFERENCES else None]
    masks = [request.mask] if request.mask is not None else []
    reservation = memory.reserve(decoded_bytes(used + masks), budget)
    try:
        if model.edit_input is EditInput.REFERENCES:
            side = model.max_image_side
            assert side is not None  # every model that takes references bounds their size
            images = tuple(fit_within(image, side) for image in request.images)
        else:  # the SD 1.5 models edit the image at the size they make
            at = upstream_size(size, model.size_range) or size
            images = (resized(request.images[0], at),)
            if request.mask is not None:
                mask = inpainting_mask(request.mask, at)
    finally:
        reservation.release()
    return Plan(
        request.prompt,
        request.prompt,
        size,
        model,
        base_url.rstrip("/"),
        extras=request.extras,
        images=images,
        mask=mask,
    )


def _request(
    body: dict, uploads: list[bytes], mask: bytes | None, max_n: int, variation: bool
) -> EditRequest:
    if not uploads:
        raise invalid_request(
            "No image: send the image to edit as `image` (or `image[]` parts).", param="image"
        )
    check_count(len(uploads))
    images = [check_image(data, "image", f"image {index}") for index, data in enumerate(uploads)]
    checked_mask = check_image(mask, "mask", "mask") if mask is not None else None
    if checked_mask is not None and checked_mask.size != images[0].size:
        raise invalid_request(
            f"The mask is {_wxh(checked_mask.size)}; it must be the size of the first image "
            f"({_wxh(images[0].size)}).",
            param="mask",
        )
    prompt = VARIATION_PROMPT if variation else body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid_request("`prompt` is required: say how to change the image.", param="prompt")
    model = optional(body, "model", str, "a string")
    strength = optional(body, "strength", (int, float), "a number from 0 to 1")
    if strength is not None and not 0 <= strength <= 1:
        raise invalid_request("`strength` must be a number from 0 to 1.", param="strength")
    extras = {"seed": whole_number(body, "seed", 0, 2**32 - 1), "strength": strength}
    return EditRequest(
        prompt=prompt.strip(),
        images=images,
        mask=checked_mask,
        model=model,
        n=whole_number(body, "n", 1, max_n) or 1,
        size=parse_size(body.get("size")),
        response_format=response_format(body, model),
        extras={name: value for name, value in extras.items() if value is not None},
        output_format=output_format(body),
    )


def _typed(name: str, value: str):
    """A multipart field as the JSON form would have it (n, seed, strength are numbers)."""
    kind = _NUMBERS.get(name)
    if kind is None or value.strip() == "":
        return value if value.strip() else None
    try:
        return kind(value)
    except ValueError:
        raise invalid_request(
            f"`{name}` must be a number, not {value[:20]!r}.", param=name
        ) from None


def _from_url(item: dict | str, param: str) -> bytes:
    url = item.get("image_url") if isinstance(item, dict) else item
    if isinstance(url, dict):  # {"image_url": {"url": …}}, as in chat messages
        url = url.get("url")
    if not isinstance(url, str):
        raise invalid_request(f"`{param}` needs an `image_url` (a data: URL).", param=param)
    match = _DATA_URL.fullmatch(url.strip())
    if match is None:
        raise invalid_request(
            f"`{param}` must be a data: URL (data:image/png;base64,…); remote URLs are not "
            "fetched by this service.",
            param=param,
            code="unsupported_image_url",
        )
    try:
        return pybase64.b64decode(match["data"], validate=False)
    except (binascii.Error, ValueError):
        raise invalid_request(f"`{param}` holds base64 that is not valid.", param=param) from None


def _wxh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"
