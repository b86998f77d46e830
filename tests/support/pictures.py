"""Picture files to send: one colour, any size and format."""

from __future__ import annotations

import io

from PIL import Image


def picture(width: int = 640, height: int = 480, fmt: str = "PNG", colour=(200, 80, 40)) -> bytes:
    """A solid picture file: its average colour is `colour` (exactly, but for JPEG)."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format=fmt)
    return out.getvalue()
