"""imaging: a whole JPEG, PNG or WebP is told from the first part of one (is_complete), and fit
crops losslessly where the geometry allows, else decodes and re-encodes as before."""

import io
import time

import pytest
from PIL import Image, ImageChops, ImageFile

from flux_api.imaging import pictures as imaging
from flux_api.imaging.pictures import crop_box, fit, is_complete


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


# fit: a JPEG that only needs a crop is cut losslessly (in the DCT domain); anything else is
# decoded, cropped, resized and re-encoded by Pillow as before.

SCHNELL_CROPS = [  # flux-1-schnell answers 1024x1024 whatever the ratio
    (512, 1024),  # 1:2, left 256
    (768, 1024),  # 3:4, left 128
    (1024, 576),  # 16:9, top 224
    (576, 1024),  # 9:16, left 224
    (1024, 448),  # 21:9 (a computed size: long side 1024, short side a multiple of 64), top 288
    (1024, 256),  # 4:1, top 384
]


def photo(size=(1024, 1024), fmt="JPEG", **options) -> bytes:
    """A noisy photo-like picture (every block has detail) as Workers AI sends them."""
    image = Image.effect_noise(size, 50).convert("RGB")
    image = Image.blend(image, Image.radial_gradient("L").resize(size).convert("RGB"), 0.5)
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


SQUARE = photo(quality=87)  # 4:2:0, Pillow's default: 16x16 MCUs


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def reencoded(data: bytes, target) -> bytes:
    """What fit returned before the lossless path: Pillow's crop, resize and encode."""
    with Image.open(io.BytesIO(data)) as image:
        fitted = image.resize(target, Image.Resampling.LANCZOS, box=crop_box(image.size, target))
        out = io.BytesIO()
        if image.format == "PNG":
            fitted.save(out, format="PNG", compress_level=1)
        else:
            fitted.save(out, format="JPEG", quality=92)
    return out.getvalue()


def assert_same_pixels(cropped: bytes, original: bytes, box) -> None:
    """Every pixel equal to the same box of the decoded original, except the one row or column
    along each cut: there the decoder smooths the half-resolution colour planes with the
    neighbouring block, which the crop left out (a small difference, not a re-encoding)."""
    reference = decoded(original).crop(box)
    difference = ImageChops.difference(decoded(cropped), reference)
    width, height = reference.size
    inside = (
        1 if box[0] > 0 else 0,
        1 if box[1] > 0 else 0,
        width - 1 if box[2] < decoded(original).width else width,
        height - 1 if box[3] < decoded(original).height else height,
    )
    assert difference.crop(inside).getbbox() is None  # bit for bit
    assert max(high for _, high in difference.getextrema()) <= 16


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail on any pixel decoded or image encoded by Pillow."""

    def refuse(*args, **kwargs):
        raise AssertionError("Pillow decoded or encoded an image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(Image.Image, "save", refuse)


@pytest.fixture
def no_lossless(monkeypatch):
    """Fail if the lossless library is asked for anything."""

    def refuse(*args, **kwargs):
        raise AssertionError("jpeg_transform.crop was called")

    if imaging.lossless is not None:
        monkeypatch.setattr(imaging.lossless, "crop", refuse)


lossless = pytest.mark.skipif(
    imaging.lossless is None, reason="no libturbojpeg 3 on this platform (requirements.txt)"
)


@lossless
@pytest.mark.parametrize("target", SCHNELL_CROPS)
def test_every_schnell_crop_is_lossless(target, no_decoding):
    cropped = fit(SQUARE, target)
    with Image.open(io.BytesIO(cropped)) as image, Image.open(io.BytesIO(SQUARE)) as original:
        assert image.size == target
        assert image.quantization == original.quantization  # the original's, not Pillow's 92
        assert image.layer == original.layer  # same sampling: 4:2:0
    assert len(cropped) < len(SQUARE)


@lossless
@pytest.mark.parametrize("target", SCHNELL_CROPS)
def test_a_lossless_crop_has_the_originals_pixels(target):
    assert_same_pixels(fit(SQUARE, target), SQUARE, crop_box((1024, 1024), target))


LAYOUTS = {
    "444": photo(subsampling="4:4:4"),  # 8x8 MCUs
    "422": photo(subsampling="4:2:2"),  # 16x8
    "progressive": photo(progressive=True),
    "optimized-huffman": photo(quality=60, optimize=True),
}


@lossless
@pytest.mark.parametrize("layout", LAYOUTS)
def test_other_jpeg_layouts_are_cropped_losslessly(layout, no_decoding):
    original = LAYOUTS[layout]
    cropped = fit(original, (1024, 576))
    with Image.open(io.BytesIO(cropped)) as image, Image.open(io.BytesIO(original)) as source:
        assert image.size == (1024, 576)
        assert image.quantization == source.quantization


@lossless
def test_a_grayscale_jpeg_is_cropped_losslessly():
    image = Image.effect_noise((1024, 1024), 50)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=87)
    cropped = fit(out.getvalue(), (1024, 576))
    assert_same_pixels(cropped, out.getvalue(), (0, 224, 1024, 800))
    assert decoded(cropped).size == (1024, 576)


@lossless
@pytest.mark.parametrize(
    "target, box",
    [
        ((1024, 500), (0, 256, 1024, 756)),  # centred top 262: 6 px up to the MCU at 256
        ((1024, 552), (0, 240, 1024, 792)),  # centred top 236: 4 px down to 240
        ((1000, 1024), (16, 0, 1016, 1024)),  # centred left 12: 4 px right to 16
    ],
)
def test_a_box_between_mcus_moves_to_the_nearest_one(target, box):
    cropped = fit(SQUARE, target)
    assert decoded(cropped).size == target
    assert_same_pixels(cropped, SQUARE, box)
    assert abs(box[0] - crop_box((1024, 1024), target)[0]) <= imaging.MAX_SHIFT
    assert abs(box[1] - crop_box((1024, 1024), target)[1]) <= imaging.MAX_SHIFT


@pytest.mark.parametrize(
    "offset, step, limit, expected",
    [
        (224, 16, 448, 224),
        (262, 16, 524, 256),
        (264, 16, 524, 256),  # a tie goes to the lower boundary
        (265, 16, 524, 272),
        (261, 8, 262, 256),  # 264 would push the box off the image
        (265, 16, 270, None),  # 272 would, and 256 is 9 px away
        (12, 32, 24, None),  # 12 px to 0, 20 px to 32: more than MAX_SHIFT
    ],
)
def test_aligned(offset, step, limit, expected):
    assert imaging._aligned(offset, step, limit) == expected


@lossless
def test_an_unaligned_box_beyond_the_allowed_shift_is_reencoded_as_before(monkeypatch):
    monkeypatch.setattr(imaging, "MAX_SHIFT", 0)
    assert fit(SQUARE, (1024, 500)) == reencoded(SQUARE, (1024, 500))
    assert fit(SQUARE, (1024, 576)) != reencoded(SQUARE, (1024, 576))  # aligned: still lossless


@pytest.mark.parametrize("target", [(768, 512), (512, 512), (2048, 2048), (1000, 1000)])
def test_a_resize_is_decoded_and_reencoded_as_before(target, no_lossless):
    assert fit(SQUARE, target) == reencoded(SQUARE, target)


def test_a_png_is_cropped_by_pillow_as_before(no_lossless):
    square_png = photo(fmt="PNG")
    cropped = fit(square_png, (1024, 576))
    assert cropped == reencoded(square_png, (1024, 576))
    assert cropped.startswith(b"\x89PNG")


@lossless
def test_a_jpeg_the_library_refuses_is_reencoded(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("Could not transform")

    monkeypatch.setattr(imaging.lossless, "crop", refuse)
    assert fit(SQUARE, (1024, 576)) == reencoded(SQUARE, (1024, 576))


def test_without_the_library_every_crop_is_reencoded(monkeypatch):
    monkeypatch.setattr(imaging, "lossless", None)
    assert fit(SQUARE, (1024, 576)) == reencoded(SQUARE, (1024, 576))


def test_an_image_at_the_size_is_passed_through(no_decoding, no_lossless):
    assert fit(SQUARE, (1024, 1024)) is SQUARE


def test_a_cut_jpeg_fails_as_before(no_lossless):
    with pytest.raises(OSError):
        fit(SQUARE[: len(SQUARE) // 2], (1024, 576))


@pytest.mark.parametrize("data", [b"", b"GIF89a" + bytes(100), b"\xff\xd8\xff\xd9", b"garbage"])
def test_garbage_fails_as_before(data, no_lossless):
    with pytest.raises(OSError):  # PIL.UnidentifiedImageError is an OSError
        fit(data, (1024, 576))
