"""Input images for editing: checked from their bytes, and prepared once for the model that
takes them (FLUX.2's references fit 512x512; the SD 1.5 models take the image, and a mask, at the
output size).

Nothing here trusts a filename or a declared type: the bytes say what an image is. Checking
(`inspect`) reads only an image's header, so every limit that needs no pixels (how many images,
how many bytes, the size the header claims, MAX_PIXELS against decompression bombs) refuses a
request before anything is decoded; pixels are decoded only to prepare an image the model will
take, under the worker's IMAGE_MEMORY_MB. Sizes are as shown: a phone photo stored landscape
with an EXIF orientation is upright everywhere (its size, the reference, img2img, the mask), as
every image viewer shows it.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from PIL import Image, ImageOps

from flux_api.errors import invalid_request
from flux_api.imaging.pictures import sniff_type

MAX_IMAGE_BYTES = 10 * 1024 * 1024  # per uploaded image
MAX_PIXELS = 40_000_000  # about 6300x6300: more is a bomb, not a photo
MAX_UPLOADED_IMAGES = 16  # OpenAI's own limit for `image[]`
_ORIENTATION = 0x0112  # the EXIF tag
_TURNED = {5, 6, 7, 8}  # orientations that swap width and height
_DECODED_BYTES_PER_PIXEL = 4  # RGBA, the widest mode an input is decoded to


@dataclass(frozen=True)
class InputImage:
    data: bytes
    size: tuple[int, int]  # as shown: after its EXIF orientation
    has_alpha: bool
    param: str  # the request field it came in, for errors found while preparing it
    what: str  # "image 0", "mask"
    upright: bool = True  # False when its EXIF orientation must be applied

    @property
    def decoded_bytes(self) -> int:
        """The most memory its pixels take once decoded (and once more while turned)."""
        width, height = self.size
        return width * height * _DECODED_BYTES_PER_PIXEL * (1 if self.upright else 2)


def check_count(count: int, param: str = "image") -> None:
    """More images than anything takes is a 400 before any of them is read."""
    if count > MAX_UPLOADED_IMAGES:
        raise invalid_request(
            f"At most {MAX_UPLOADED_IMAGES} images may be sent; this request has {count}.",
            param=param,
            code="too_many_images",
        )


def check_image(data: bytes, param: str, what: str = "image") -> InputImage:
    """A JPEG, PNG or WebP within the limits, judged from its header alone, or a 400 naming
    `param`. Its pixels are not decoded here: `prepared` does that, and finds a cut file."""
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
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            orientation = _orientation(image)
    except Image.DecompressionBombError:  # Pillow's own guard, far above MAX_PIXELS
        raise invalid_request(
            f"The {what} has more pixels than the {MAX_PIXELS:,} accepted.",
            param=param,
            code="image_too_large",
        ) from None
    except (OSError, ValueError, SyntaxError):  # a header Pillow cannot read
        raise _unreadable(param, what) from None
    if orientation in _TURNED:
        width, height = height, width
    return InputImage(data, (width, height), has_alpha, param, what, upright=orientation == 1)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation from the header's own EXIF block. (Pillow's getexif() decodes a
    whole PNG to look for one after the pixels: what this check must never do.)"""
    raw = image.info.get("exif")
    if not raw:
        return 1
    exif = Image.Exif()
    try:
        exif.load(raw)
    except (OSError, ValueError, SyntaxError, struct.error):  # a broken block: shown as stored
        return 1
    orientation = exif.get(_ORIENTATION, 1)
    return orientation if orientation in range(1, 9) else 1


def decoded_bytes(images: list[InputImage]) -> int:
    """What preparing these images holds at once at most: they are prepared one at a time."""
    return max((image.decoded_bytes for image in images), default=0)


def _unreadable(param: str, what: str):
    return invalid_request(
        f"The {what} could not be read as an image.", param=param, code="invalid_image"
    )


class _Opened:
    """An input image decoded and turned upright, or a 400 naming it when its pixels are cut or
    corrupt (the header promised more than the file holds)."""

    def __init__(self, image: InputImage):
        self.image = image

    def __enter__(self) -> Image.Image:
        self._file = Image.open(io.BytesIO(self.image.data))
        try:
            self._file.load()
            return ImageOps.exif_transpose(self._file)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            self._file.close()
            raise _unreadable(self.image.param, self.image.what) from None

    def __exit__(self, *exc) -> None:
        self._file.close()


def fit_within(image: InputImage, side: int) -> bytes:
    """The image upright and scaled down (aspect kept) so neither side exceeds `side`, encoded
    once: PNG when it has transparency, else JPEG. Its own bytes when they already are that."""
    with _Opened(image) as picture:
        if max(image.size) <= side and image.upright:
            return image.data
        picture.thumbnail((side, side), Image.Resampling.LANCZOS)
        return _encode(picture, image.has_alpha)


def resized(image: InputImage, size: tuple[int, int]) -> bytes:
    """The image upright at exactly `size` (for img2img, which edits at the output size), as
    PNG."""
    with _Opened(image) as picture:
        return _encode(picture.convert("RGB").resize(size, Image.Resampling.LANCZOS), True)


def inpainting_mask(mask: InputImage, size: tuple[int, int]) -> bytes:
    """OpenAI's mask (transparent where the image is to change), upright, as the inpainting
    model's: white where to paint, black where to keep, at `size`, as PNG bytes."""
    with _Opened(mask) as picture:
        alpha = picture.convert("RGBA").getchannel("A")
    paint = alpha.point(lambda value: 255 if value == 0 else 0)
    return _encode(paint.resize(size, Image.Resampling.NEAREST), has_alpha=True)


def _encode(picture: Image.Image, has_alpha: bool) -> bytes:
    out = io.BytesIO()
    if has_alpha:
        picture.save(out, format="PNG", compress_level=1)
    else:
        picture.convert("RGB").save(out, format="JPEG", quality=92)
    return out.getvalue()
