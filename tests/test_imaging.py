"""imaging.is_complete: a whole JPEG, PNG or WebP is told from the first part of one."""

import io
import time

import pytest
from PIL import Image

from flux_api.imaging import is_complete


def encode(fmt: str, **options) -> bytes:
    """A noisy 256×256 picture (so every cut lands in real image data) encoded by Pillow."""
    image = Image.effect_noise((256, 256), 60).convert("RGB")
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


IMAGES = {
    "jpeg": encode("JPEG", quality=92),
    "progressive-jpeg": encode("JPEG", quality=80, progressive=True),
    "jpeg-with-exif": encode("JPEG", exif=Image.Exif()),
    "png": encode("PNG"),
    "webp": encode("WEBP", quality=80),
    "lossless-webp": encode("WEBP", lossless=True),
}


@pytest.mark.parametrize("name", IMAGES)
def test_whole_images_are_complete(name):
    assert is_complete(IMAGES[name])


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -12, -2, -1])
def test_truncated_images_are_not(name, keep):
    data = IMAGES[name]
    cut = int(len(data) * keep) if keep > 0 else len(data) + keep
    assert not is_complete(data[:cut])


def test_a_cut_jpeg_is_not_complete_even_if_pillow_opens_it():
    half = IMAGES["jpeg"][: len(IMAGES["jpeg"]) // 2]
    with Image.open(io.BytesIO(half)) as image:  # the header is whole: size and format read
        assert image.size == (256, 256)
    assert not is_complete(half)


@pytest.mark.parametrize("padding", [b"\x00" * 100, b"\n", b"\r\n"])
def test_padding_after_a_jpegs_end_is_allowed(padding):
    assert is_complete(IMAGES["jpeg"] + padding)


def test_a_cut_jpeg_padded_with_zeros_is_not_complete():
    half = IMAGES["jpeg"][: len(IMAGES["jpeg"]) // 2]
    assert not is_complete(half + b"\x00" * 1000)
    assert not is_complete(IMAGES["jpeg"] + b"\x00" * 5000)  # more than a padding


@pytest.mark.parametrize("name", ["png", "webp"])
def test_bytes_after_a_png_or_webp_are_not_allowed(name):
    assert not is_complete(IMAGES[name] + b"\x00\x00")


@pytest.mark.parametrize("data", [b"", b"GIF89a" + bytes(100), b"\xff\xd8\xff\xd9", b"RIFF"])
def test_other_or_empty_data_is_not_complete(data):
    assert not is_complete(data)


def test_nothing_is_decoded():
    big = Image.effect_noise((2048, 2048), 60).convert("RGB")
    out = io.BytesIO()
    big.save(out, format="JPEG", quality=92)
    data = out.getvalue()
    started = time.process_time()
    for _ in range(10):
        assert is_complete(data)
    assert time.process_time() - started < 0.02  # decoding it ten times takes ~0.35 s
