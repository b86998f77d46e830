"""The image served has the requested size for every model family, and each model is sent only
what its schema accepts."""

import io
import re

import pytest
from PIL import Image

from flux_api.imaging import pictures as imaging
from tests.support.fakes.workers_ai import render_image

SCHNELL = "@cf/black-forest-labs/flux-1-schnell"
FLUX2_DEV = "@cf/black-forest-labs/flux-2-dev"
KLEIN = "@cf/black-forest-labs/flux-2-klein-9b"
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"
LIGHTNING = "@cf/bytedance/stable-diffusion-xl-lightning"
PHOENIX = "@cf/leonardo/phoenix-1.0"
LUCID = "@cf/leonardo/lucid-origin"


def served_image(service, content: str, model: str) -> tuple[Image.Image, str, bytes]:
    response = service.chat(content, model=model)
    assert response.status_code == 200, response.text
    text = response.json()["choices"][0]["message"]["content"]
    url = re.search(r"\((http[^)]+)\)$", text).group(1)
    image = service.get(url[len(service.url) :], key=None)
    return Image.open(io.BytesIO(image.content)), image.headers["Content-Type"], image.content


RATIOS = [
    ("1:1", (1024, 1024)),
    ("1:2", (512, 1024)),
    ("3:2", (768, 512)),
    ("3:4", (768, 1024)),
    ("16:9", (1024, 576)),
    ("9:16", (576, 1024)),
    ("21:9", (1024, 448)),
    ("--ar 4:1", (1024, 256)),
]


@pytest.mark.parametrize("model", [SCHNELL, FLUX2_DEV, KLEIN, SDXL, PHOENIX, LUCID])
@pytest.mark.parametrize("ratio, size", RATIOS)
def test_every_ratio_is_served_at_its_exact_size(service, fake_ai, model, ratio, size):
    image, _, _ = served_image(service, f"a harbour at night {ratio}", model)
    assert image.size == size


def test_schnell_output_is_centre_cropped_then_resized(service, fake_ai):
    image, mime, _ = served_image(service, "a harbour 16:9", SCHNELL)
    assert fake_ai.calls[-1]["fields"] == {"prompt": "a harbour", "steps": 4}
    assert mime == "image/jpeg"
    # The fake's 1024x1024 card has a red band on its left eighth and a yellow disc in the centre.
    # A centre crop to 16:9 keeps the full width, so the band stays; the disc stays centred.
    assert _is_red(image.getpixel((20, 288)))
    assert _is_yellow(image.getpixel((512, 288)))


def test_native_models_get_width_and_height_and_no_pixels_are_touched(service, fake_ai):
    _, mime, data = served_image(service, "a harbour 16:9", FLUX2_DEV)
    call = fake_ai.calls[-1]
    assert call["content_type"].startswith("multipart/form-data")
    assert call["fields"] == {"prompt": "a harbour", "width": 1024, "height": 576, "steps": 4}
    assert data == render_image(1024, 576, "JPEG")  # byte for byte: nothing was re-encoded
    assert mime == "image/jpeg"


def test_klein_gets_no_steps(service, fake_ai):
    served_image(service, "a harbour", KLEIN)
    assert fake_ai.calls[-1]["fields"] == {"prompt": "a harbour", "width": 1024, "height": 1024}


@pytest.mark.parametrize(
    "model, mime", [(SDXL, "image/png"), (LIGHTNING, "image/jpeg"), (PHOENIX, "image/jpeg")]
)
def test_raw_byte_models_are_served_with_their_sniffed_type(service, fake_ai, model, mime):
    _, served_mime, _ = served_image(service, "a harbour 3:4", model)
    assert served_mime == mime
    assert fake_ai.calls[-1]["fields"] == {"prompt": "a harbour", "width": 768, "height": 1024}


def _is_red(pixel) -> bool:
    r, g, b = pixel[:3]
    return r > 180 and g < 110 and b < 100


def _is_yellow(pixel) -> bool:
    r, g, b = pixel[:3]
    return r > 200 and g > 180 and b < 120


@pytest.mark.parametrize(
    "content, prompt, size",
    [
        ("a fox (16:9).", "a fox", "1024x576"),
        ("a fox 16:9 2:3", "a fox 16:9", "704x1024"),
        ("a fox 16:9 --ar 3:2", "a fox 16:9", "768x512"),
    ],
)
def test_the_ratio_rule_reaches_the_model(service, fake_ai, content, prompt, size):
    facts = service.chat(content).json()["flux_api"]
    assert (facts["prompt"], facts["size"]) == (prompt, size)
    assert fake_ai.calls[-1]["fields"]["prompt"] == prompt


@pytest.mark.skipif(imaging.lossless is None, reason="no turbojpeg wheel for this platform")
@pytest.mark.parametrize(
    "ratio, size",
    [("16:9", (1024, 576)), ("9:16", (576, 1024)), ("1:2", (512, 1024)), ("3:4", (768, 1024))],
)
def test_schnell_crops_are_lossless(service, fake_ai, ratio, size):
    image, mime, data = served_image(service, f"a harbour {ratio}", SCHNELL)
    original = render_image(1024, 1024, "JPEG")
    with Image.open(io.BytesIO(original)) as generated:
        assert image.size == size
        assert image.quantization == generated.quantization  # not re-encoded at quality 92
    assert len(data) < len(original)
    assert mime == "image/jpeg"


def test_schnell_3_2_is_resized(service, fake_ai):
    # 768x512 is not a crop of 1024x1024: the centred 1024x683 box is decoded and resized.
    image, mime, _data = served_image(service, "a harbour 3:2", SCHNELL)
    with Image.open(io.BytesIO(render_image(1024, 1024, "JPEG"))) as generated:
        assert image.quantization != generated.quantization
    assert (image.size, mime) == ((768, 512), "image/jpeg")
