"""Small inline copies of the images a tool made, for clients that show images in the chat:
a JPEG of at most 512 pixels a side and under 200 KB (the full image stays at its URL)."""

from __future__ import annotations

import io

from PIL import Image

MAX_BYTES = 200_000
_SIDES = (512, 384, 256)
_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def preview(data: bytes) -> bytes | None:
    """A downscaled JPEG of the image, or None if it cannot be read."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            picture = image.convert("RGB")
    except Exception:  # noqa: BLE001 - any image Pillow refuses (a bomb too): no preview
        return None
    for side in _SIDES:
        small = picture.copy()
        small.thumbnail((side, side))
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=80)
        if out.tell() <= MAX_BYTES:
            return out.getvalue()
    return None


def mime_type(data: bytes) -> str:
    """The image's type from its bytes (PNG when it cannot tell: the gateway checks anyway)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return _FORMATS.get(image.format or "", "image/png")
    except Exception:  # noqa: BLE001 - the gateway judges the bytes and says what is wrong
        return "image/png"
