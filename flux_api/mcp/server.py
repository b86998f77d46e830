"""The MCP tools: generate_image, edit_image, list_models. Each calls the gateway's HTTP API
with the caller's key (over HTTP: the bearer token the client sent; over stdio: FLUX_API_KEY)
and answers with the image URL as text, a resource link to it, and a small inline preview."""

# No `from __future__ import annotations`: the SDK reads the tools' annotations at runtime, and
# one of them (n's bound) comes from the settings in scope.

import base64
import binascii
import json
import re
import string
import time
from collections.abc import Awaitable
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import (
    ContentBlock,
    ImageContent,
    ResourceLink,
    TextContent,
    ToolAnnotations,
)
from pydantic import Field

from .gateway import Gateway, GatewayError, MadeImage
from .previews import preview
from .settings import MCPSettings

INSTRUCTIONS = (
    "flux-api makes images with Cloudflare Workers AI's FLUX models. Call generate_image with a "
    "visual description (subject, style, light, composition); pass aspect_ratio for a shape "
    "such as 16:9. To change an image, call edit_image with its URL and what to change. Each "
    "image's URL expires after a while (the gateway's IMAGE_EXPIRATION): show or save it."
)
# What each tool is for, as the model choosing a tool reads it.
GENERATE = (
    "Make images from a text description. Returns each image's URL (with its size and the "
    "prompt used), a link to it and a small preview."
)
EDIT = (
    "Edit or combine images with a text instruction: FLUX.2 takes up to 4 reference images; "
    "with a mask, the first image is inpainted where the mask is transparent. Returns the new "
    "image's URL, a link and a small preview."
)
MODELS = (
    "The image models this service offers: each id, whether it makes images from text, "
    "whether it edits, and how many input images it takes."
)
# Where http_app's bearer check leaves the key it verified, in the request's ASGI scope.
KEY_IN_SCOPE = "flux_api.key"
_RATIO = re.compile(r"\d{1,3}:\d{1,3}")
_PROGRESS_EVERY = 2.0  # seconds between progress notifications while the gateway works


def build_server(settings: MCPSettings, gateway: Gateway) -> MCPServer:
    # WARNING: the SDK logs every request at INFO (its own and httpx2's), which under systemd
    # buries what matters.
    server = MCPServer("flux-api", instructions=INSTRUCTIONS, version="1.0.0", log_level="WARNING")
    makes = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)

    @server.tool(annotations=makes, description=GENERATE)
    async def generate_image(
        prompt: Annotated[
            str, Field(min_length=1, description="What the image shows, in plain words.")
        ],
        ctx: Context,
        aspect_ratio: Annotated[
            str | None,
            Field(description="Shape as W:H, such as 16:9, 9:16, 4:3 or 1:1 (the default)."),
        ] = None,
        size: Annotated[
            str | None,
            Field(
                description="Exact WIDTHxHEIGHT in pixels, such as 1024x576; instead of a ratio."
            ),
        ] = None,
        model: Annotated[
            str | None,
            Field(description="A model id from list_models; the gateway's default if omitted."),
        ] = None,
        n: Annotated[
            int, Field(ge=1, le=settings.max_n, description="How many images to make.")
        ] = 1,
    ) -> list[ContentBlock]:
        if aspect_ratio and size:
            raise ToolError("Give either aspect_ratio or size, not both.")
        if aspect_ratio:
            if not _RATIO.fullmatch(aspect_ratio.strip()):
                raise ToolError(f"aspect_ratio must look like 16:9, not {aspect_ratio!r}.")
            prompt = f"{prompt} --ar {aspect_ratio.strip()}"  # the gateway reads --ar W:H
        what = "Making the image" if n == 1 else f"Making {n} images"
        call = gateway.generate(_key(ctx, settings), prompt, size, model, n)
        return await _deliver(ctx, gateway, await _with_progress(ctx, what, call))

    @server.tool(annotations=makes, description=EDIT)
    async def edit_image(
        prompt: Annotated[
            str, Field(min_length=1, description="What to change, or what to make of the images.")
        ],
        images: Annotated[
            list[str],
            Field(
                min_length=1,
                max_length=4,
                description="1 to 4 images: URLs of images this service made (…/image/<key>), "
                "or base64 (raw or as a data: URL).",
            ),
        ],
        ctx: Context,
        mask: Annotated[
            str | None,
            Field(
                description="Optional PNG mask, base64 or a URL of this service: transparent "
                "where the first image should change."
            ),
        ] = None,
        model: Annotated[
            str | None,
            Field(description="A model that edits (list_models); the default if omitted."),
        ] = None,
        size: Annotated[
            str | None, Field(description="WIDTHxHEIGHT; the first image's shape if omitted.")
        ] = None,
    ) -> list[ContentBlock]:
        inputs = [
            await _image_arg(gateway, value, f"images[{i}]") for i, value in enumerate(images)
        ]
        mask_bytes = await _image_arg(gateway, mask, "mask") if mask else None
        call = gateway.edit(_key(ctx, settings), prompt, inputs, mask_bytes, model, size)
        return await _deliver(ctx, gateway, await _with_progress(ctx, "Editing the image", call))

    @server.tool(
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False), description=MODELS
    )
    async def list_models(ctx: Context) -> str:
        try:
            models = await gateway.models(_key(ctx, settings))
        except GatewayError as exc:
            raise ToolError(exc.message) from None
        described = []
        for model in models:
            abilities = model.get("flux_api") or {}
            described.append(
                {
                    "id": model.get("id"),
                    "text_to_image": abilities.get("text_to_image"),
                    "edits": abilities.get("edits"),
                    "max_input_images": abilities.get("max_input_images"),
                }
            )
        return json.dumps(described, indent=2)

    return server


def _key(ctx: Context, settings: MCPSettings) -> str:
    """Over HTTP the key the bearer check verified (http_app hands it on in the ASGI scope):
    never another, and never FLUX_API_KEY. Over stdio, FLUX_API_KEY."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None)
    if scope is None:
        return settings.api_key
    key = scope.get(KEY_IN_SCOPE)
    if not key:
        raise ToolError("No API key reached this tool.")
    return key


async def _with_progress(ctx: Context, what: str, call: Awaitable[list[MadeImage]]):
    """Await the gateway while telling the client, every few seconds, that work goes on (sent
    only when the client asked for progress)."""
    result: list[MadeImage] = []
    started = time.monotonic()

    async def tick() -> None:
        step = 0
        while True:
            await ctx.report_progress(step, None, f"{what}… {time.monotonic() - started:.0f} s")
            step += 1
            await anyio.sleep(_PROGRESS_EVERY)

    failed: GatewayError | None = None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tick)
        try:
            result = await call
        except GatewayError as exc:  # raised below: from inside, it would reach the SDK
            failed = exc  # wrapped in an ExceptionGroup, and lose its message
        finally:
            tasks.cancel_scope.cancel()
    if failed is not None:
        raise ToolError(failed.message)
    return result


async def _deliver(ctx: Context, gateway: Gateway, made: list[MadeImage]) -> list[ContentBlock]:
    if not made:
        raise ToolError("The gateway answered without an image.")
    blocks: list[ContentBlock] = []
    for index, image in enumerate(made, start=1):
        lines = [f"Image {index}: {image.url}"]
        if image.size:
            lines.append(f"Size: {image.size}")
        if image.revised_prompt:
            lines.append(f"Prompt used: {image.revised_prompt}")
        blocks.append(TextContent(type="text", text="\n".join(lines)))
        blocks.append(
            ResourceLink(type="resource_link", uri=image.url, name=f"image-{index}", mime_type=None)
        )
        try:
            small = preview(await gateway.own_image(image.url) or b"")
        except GatewayError:  # the image is made and paid for: a missing preview is no error
            small = None
        if small:
            encoded = base64.b64encode(small).decode()
            blocks.append(ImageContent(type="image", data=encoded, mime_type="image/jpeg"))
    return blocks


async def _image_arg(gateway: Gateway, value: str, name: str) -> bytes:
    """An image argument: a URL of this service, a data: URL, or bare base64."""
    value = value.strip()
    if value.startswith(("http://", "https://")):
        try:
            found = await gateway.own_image(value)
        except GatewayError as exc:
            raise ToolError(f"{name}: {exc.message}") from None
        if found is None:
            raise ToolError(
                f"{name}: only images of this service (…/image/<key>) are fetched; send other "
                "images as base64."
            )
        return found
    if value.startswith("data:"):
        value = value.partition(",")[2]
    return _base64(value, name)


_STANDARD = str.maketrans("-_", "+/")  # URL-safe base64: the standard one, two letters swapped
_ALPHABET = frozenset(string.ascii_letters + string.digits + "+/")


def _base64(value: str, name: str) -> bytes:
    """Standard or URL-safe base64, with or without padding, wrapped in lines or not."""
    letters = "".join(value.split()).rstrip("=").translate(_STANDARD)  # as tools print it
    if not letters:
        raise ToolError(f"{name} holds no data: give a URL of this service or base64.")
    for position, letter in enumerate(letters, start=1):
        if letter not in _ALPHABET:
            raise ToolError(
                f"{name} is neither a URL of this service nor base64: {letter!r} at character "
                f"{position} is not a base64 character."
            )
    if len(letters) % 4 == 1:  # no base64 text has that length: something is missing
        raise ToolError(f"{name}: the base64 is cut short ({len(letters)} characters).")
    try:
        return base64.b64decode(letters + "=" * (-len(letters) % 4), validate=True)
    except binascii.Error as exc:  # not expected once the letters and length are checked
        raise ToolError(f"{name} is not valid base64 ({exc}).") from None
