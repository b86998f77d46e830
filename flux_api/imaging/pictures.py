"""Image bytes: detect the real type, read the size, crop and resize to an exact size.

Pixels are decoded only when the size has to change; an image already at the requested size is
passed through byte for byte, and a JPEG that only needs a crop (flux-1-schnell's 1024x1024 at
every ratio whose long side is 1024) is cropped losslessly, in the DCT domain.
"""

from __future__ import annotations

import io

from PIL import Image

from flux_api.imaging import jpeg_transform

# The lossless crop (tj3Transform), or None without libturbojpeg 3 here: every crop then decodes
# and re-encodes.
lossless = jpeg_transform if jpeg_transform.available else None

_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)
_PIL_FORMAT = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
_JPEG_END = b"\xff\xd9"  # EOI; in entropy-coded data an 0xFF is followed by 0x00 or RSTn
_JPEG_PADDING = b"\x00\r\n"  # left after EOI by some cameras and text-mode transfers
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: no data, then its CRC


def sniff_type(data: bytes) -> str | None:
    """The MIME type from the first bytes (JPEG, PNG or WebP), or None for anything else."""
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def is_complete(data: bytes) -> bool:
    """Whether `data` is a whole JPEG, PNG or WebP rather than the start of one (a cut-off
    download decodes lazily, so it would otherwise pass as an image). Reads only its ends: a
    JPEG ends with EOI (after it up to 4 KiB of NULs, CRs and LFs is allowed), a PNG with its
    IEND chunk, a WebP's length is what its RIFF header says. Any other type: False."""
    mime = sniff_type(data)
    if mime == "image/jpeg":
        return len(data) > 4 and data[-4096:].rstrip(_JPEG_PADDING).endswith(_JPEG_END)
    if mime == "image/png":
        return data.endswith(_PNG_END)
    if mime == "image/webp":
        return int.from_bytes(data[4:8], "little") + 8 == len(data)
    return False


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height read from the header; Pillow opens lazily, so no pixel is decoded."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def crop_box(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred box of `size` with the aspect ratio of `target`."""
    width, height = size
    target_w, target_h = target
    if width * target_h > height * target_w:  # too wide: trim the sides
        new_w = round(height * target_w / target_h)
        left = (width - new_w) // 2
        return left, 0, left + new_w, height
    new_h = round(width * target_h / target_w)
    top = (height - new_h) // 2
    return 0, top, width, top + new_h


# A lossless crop starts on a whole MCU (16x16 pixels for 4:2:0 JPEGs): a crop box between two
# MCU boundaries moves to the nearest one, at most this many pixels off the centred box.
MAX_SHIFT = 8


def lossless_crop(data: bytes, image: Image.Image, target: tuple[int, int]) -> bytes | None:
    """`data` (the JPEG `image` was opened from) cropped to exactly `target` without decoding or
    re-encoding a pixel: the entropy-coded DCT blocks inside the box are copied, with the
    original's quantization tables and markers. None when that cannot be done: not a whole JPEG,
    no lossless library here, a resize needed (the centred box is not `target` itself), the box
    more than MAX_SHIFT pixels from an MCU boundary, or the library refusing the file."""
    if lossless is None or image.format != "JPEG" or not is_complete(data):
        return None  # a cut-off JPEG goes to Pillow, which fails on it as before
    left, top, right, bottom = crop_box(image.size, target)
    if (right - left, bottom - top) != target:
        return None
    sampling = [(h, v) for _, h, v, _ in getattr(image, "layer", None) or []]
    if not sampling:
        return None
    mcu_w = 8 * max(h for h, _ in sampling)
    mcu_h = 8 * max(v for _, v in sampling)
    x = _aligned(left, mcu_w, image.width - target[0])
    y = _aligned(top, mcu_h, image.height - target[1])
    if x is None or y is None:
        return None
    try:
        cropped = lossless.crop(data, x, y, *target)
        return cropped if image_size(cropped) == target else None
    except OSError:  # a JPEG libjpeg-turbo cannot transform
        return None


def _aligned(offset: int, step: int, limit: int) -> int | None:
    """The multiple of `step` nearest `offset` (the lower on a tie) from 0 to `limit`, or None
    when it is more than MAX_SHIFT away."""
    lower = offset - offset % step
    nearest = lower + step if offset - lower > step / 2 and lower + step <= limit else lower
    return nearest if abs(nearest - offset) <= MAX_SHIFT else None


def fit(data: bytes, target: tuple[int, int]) -> bytes:
    """Return an image of exactly `target` pixels: centre-crop to its ratio, then resize. A JPEG
    that needs no resize is cropped losslessly when it can be (see lossless_crop)."""
    with Image.open(io.BytesIO(data)) as image:
        if image.size == target:
            return data
        cropped = lossless_crop(data, image, target)
        if cropped is not None:
            return cropped
        mime = sniff_type(data) or "image/png"
        fitted = image.resize(target, Image.Resampling.LANCZOS, box=crop_box(image.size, target))
    out = io.BytesIO()
    # zlib level 1: a 2048x2048 photo-like PNG encodes in 0.32 s of CPU instead of 1.39 s
    # (level 6, Pillow's default), for a file 17 % larger.
    options = {"quality": 92} if mime != "image/png" else {"compress_level": 1}
    fitted.save(out, format=_PIL_FORMAT[mime], **options)
    return out.getvalue()


def convert(data: bytes, fmt: str) -> bytes:
    """The image in `fmt` ("png", "jpeg" or "webp"), re-encoded only when it is not already so
    (a client that asks for PNG labels the bytes PNG, whatever the model made)."""
    mime = f"image/{fmt}"
    if sniff_type(data) == mime:
        return data
    with Image.open(io.BytesIO(data)) as image:
        picture = image.convert("RGBA" if fmt != "jpeg" and "A" in image.getbands() else "RGB")
    out = io.BytesIO()
    options = {"quality": 92} if fmt in ("jpeg", "webp") else {"compress_level": 1}
    picture.save(out, format=_PIL_FORMAT[mime], **options)
    return out.getvalue()


# What an image takes in memory at its largest: decoded, as RGB. Memory bounds count in it.
BYTES_PER_PIXEL = 3


def image_bytes(size: tuple[int, int], count: int) -> int:
    """The most memory `count` images of `size` are expected to hold at once."""
    width, height = size
    return width * height * BYTES_PER_PIXEL * count
