"""Input images for editing: checked from their bytes, and prepared once for the model that
takes them (FLUX.2's references fit 512x512; the SD 1.5 models take the image, and a mask, at the
output size).

Nothing here trusts a filename or a declared type: the bytes say what an image is, and an image
that claims more pixels than MAX_PIXELS is refused before it is decoded (a decompression bomb).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from .errors import invalid_request
from .imaging import sniff_type

MAX_IMAGE_BYTES = 10 * 1024 * 1024  # per uploaded image
MAX_PIXELS = 40_000_000  # about 6300x6300: more is a bomb, not a photo
MAX_UPLOADED_IMAGES = 16  # OpenAI's own limit for `image[]`


@dataclass(frozen=True)
class InputImage:
    data: bytes
    size: tuple[int, int]
    has_alpha: bool


def check_image(data: bytes, param: str, what: str = "image") -> InputImage:
    """A JPEG, PNG or WebP within the limits, or a 400 naming `param`."""
    if len(data) > MAX_IMAGE_BYTES:
        raise invalid_request(
            f"The {what} is {len(data) / 2**20:.1f} MB; each image may be at most "
            f"{MAX_IMAGE_BYTES // 2**20} MB.",
            param=param,
            code="image_too_large",
        )
    if sniff_type(data) is None:
        raise invalid_request(
            f"The {what} is not a JPEG, PNG or WebP image (its bytes say so, whatever its "
            "name or type).",
            param=param,
            code="invalid_image",
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise invalid_request(
                    f"The {what} has {width}x{height} pixels; at most {MAX_PIXELS:,} are accepted.",
                    param=param,
                    code="image_too_large",
                )
            image.load()  # a cut or corrupt file fails here, not at the model
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    except Image.DecompressionBombError:  # Pillow's own guard, far above MAX_PIXELS
        raise invalid_request(
            f"The {what} has more pixels than the {MAX_PIXELS:,} accepted.",
            param=param,
            code="image_too_large",
        ) from None
    except (OSError, ValueError):
        raise invalid_request(
            f"The {what} could not be read as an image.", param=param, code="invalid_image"
        ) from None
    return InputImage(data, (width, height), has_alpha)


def fit_within(image: InputImage, side: int) -> bytes:
    """The image scaled down (aspect kept) so neither side exceeds `side`, encoded once: PNG
    when it has transparency, else JPEG. Returned as is when it already fits."""
    if max(image.size) <= side:
        return image.data
    with Image.open(io.BytesIO(image.data)) as opened:
        picture = ImageOps.exif_transpose(opened)
        picture.thumbnail((side, side), Image.Resampling.LANCZOS)
        return _encode(picture, image.has_alpha)


def resized(image: InputImage, size: tuple[int, int]) -> bytes:
    """The image at exactly `size` (for img2img, which edits at the output size), as PNG."""
    with Image.open(io.BytesIO(image.data)) as opened:
        picture = ImageOps.exif_transpose(opened).convert("RGB")
        return _encode(picture.resize(size, Image.Resampling.LANCZOS), has_alpha=True)


def inpainting_mask(mask: InputImage, size: tuple[int, int]) -> bytes:
    """OpenAI's mask (transparent where the image is to change) as the inpainting model's:
    white where to paint, black where to keep, at `size`, as PNG bytes."""
    with Image.open(io.BytesIO(mask.data)) as opened:
        alpha = opened.convert("RGBA").getchannel("A")
    paint = alpha.point(lambda value: 255 if value == 0 else 0)
    return _encode(paint.resize(size, Image.Resampling.NEAREST), has_alpha=True)


def _encode(picture: Image.Image, has_alpha: bool) -> bytes:
    out = io.BytesIO()
    if has_alpha:
        picture.save(out, format="PNG", compress_level=1)
    else:
        picture.convert("RGB").save(out, format="JPEG", quality=92)
    return out.getvalue()
