"""The fake Workers AI holds image-editing calls to Cloudflare's contract (docs/workers-ai.md,
"Editing"): FLUX.2 reference images as file parts, SD 1.5 img2img / inpainting inputs as JSON.
These talk to the fake over HTTP directly, no service involved, so that it is a trustworthy
stand-in for the service's editing tests."""

import base64
import io

import pytest
import requests
from PIL import Image

from tests.support.fakes.workers_ai import ACCOUNT_ID, SCHEMAS, TOKEN
from tests.support.pictures import picture

FLUX2 = [
    "@cf/black-forest-labs/flux-2-dev",
    "@cf/black-forest-labs/flux-2-klein-4b",
    "@cf/black-forest-labs/flux-2-klein-9b",
]
IMG2IMG = "@cf/runwayml/stable-diffusion-v1-5-img2img"
INPAINTING = "@cf/runwayml/stable-diffusion-v1-5-inpainting"
SD_EDIT = [IMG2IMG, INPAINTING]


def run(fake, model: str, **kwargs) -> requests.Response:
    url = f"{fake.url}/client/v4/accounts/{ACCOUNT_ID}/ai/run/{model}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return requests.post(url, headers=headers, timeout=30, **kwargs)


def flux(fake, model: str, files: list, **fields) -> requests.Response:
    """A FLUX.2 call: `files` as (field name, bytes) file parts beside the text fields."""
    parts = [(name, (f"{name}.bin", data)) for name, data in files]
    parts += [(name, (None, str(value))) for name, value in {"prompt": "x", **fields}.items()]
    return run(fake, model, files=parts)


def refused(response: requests.Response, code: int, status: int = 400) -> str:
    """Assert Cloudflare's error envelope with this code; its message."""
    assert response.status_code == status
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    assert [error["code"] for error in body["errors"]] == [code]
    return body["errors"][0]["message"]


def bad_input(response: requests.Response) -> str:
    message = refused(response, 5006)
    assert message.startswith("AiError: Bad input: ")
    return message


def enveloped_image(response: requests.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    return Image.open(io.BytesIO(base64.b64decode(body["result"]["image"])))


def near(colour, expected, tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))


# FLUX.2: reference images as multipart file parts


@pytest.mark.parametrize("model", FLUX2)
def test_flux2_takes_a_reference_image_and_records_it(fake_ai, model):
    response = flux(fake_ai, model, [("input_image_0", picture(300, 200))], width=512, height=384)
    assert enveloped_image(response).size == (512, 384)
    call = fake_ai.calls[-1]
    assert call["references"] == [("input_image_0", 300, 200, "PNG")]
    assert call["fields"] == {"prompt": "x", "width": 512, "height": 384}


def test_flux2_takes_four_references_of_each_format_in_the_order_sent(fake_ai):
    files = [
        ("input_image_2", picture(64, 32, "JPEG")),
        ("input_image_0", picture(100, 80, "PNG")),
        ("input_image_3", picture(50, 50, "WEBP")),
        ("input_image_1", picture(512, 512, "PNG")),  # exactly 512 a side is allowed
    ]
    response = flux(fake_ai, FLUX2[0], files, steps=20)
    enveloped_image(response)
    assert fake_ai.calls[-1]["references"] == [
        ("input_image_2", 64, 32, "JPEG"),
        ("input_image_0", 100, 80, "PNG"),
        ("input_image_3", 50, 50, "WEBP"),
        ("input_image_1", 512, 512, "PNG"),
    ]


def test_flux2_without_references_is_unchanged(fake_ai):
    response = flux(fake_ai, FLUX2[1], [])
    assert enveloped_image(response).size == (1024, 1024)
    assert fake_ai.calls[-1]["references"] == []


def test_flux2_output_is_tinted_by_the_first_reference(fake_ai):
    files = [
        ("input_image_0", picture(64, 64, colour=(20, 200, 60))),
        ("input_image_1", picture(8, 8)),
    ]
    image = enveloped_image(flux(fake_ai, FLUX2[2], files, width=512, height=512))
    assert near(image.convert("RGB").getpixel((500, 10)), (20, 200, 60))  # the background
    plain = enveloped_image(flux(fake_ai, FLUX2[2], [], width=512, height=512))
    assert near(plain.convert("RGB").getpixel((500, 10)), (40, 90, 160))


@pytest.mark.parametrize("name", ["image", "input_image", "input_image_4", "image[]", "mask"])
def test_flux2_refuses_any_other_file_name(fake_ai, name):
    response = flux(fake_ai, FLUX2[0], [(name, picture(64, 64))])
    assert f"'{name}'" in bad_input(response)


def test_flux2_refuses_the_same_reference_twice(fake_ai):
    files = [("input_image_0", picture(64, 64)), ("input_image_0", picture(32, 32))]
    assert "'input_image_0'" in bad_input(flux(fake_ai, FLUX2[1], files))


def test_flux2_refuses_more_than_four_references(fake_ai):
    files = [(f"input_image_{i}", picture(32, 32)) for i in range(5)]
    assert "at most 4 input images" in bad_input(flux(fake_ai, FLUX2[0], files))


@pytest.mark.parametrize(
    "data",
    [b"hello, not an image", b"", picture(64, 64)[:60], picture(64, 64, "GIF")],
    ids=["text", "empty", "cut-off-png", "gif"],
)
def test_flux2_refuses_a_reference_that_is_not_a_jpeg_png_or_webp(fake_ai, data):
    response = flux(fake_ai, FLUX2[0], [("input_image_0", data)])
    assert "is not a JPEG, PNG or WebP image" in bad_input(response)


@pytest.mark.parametrize("size", [(513, 100), (100, 513), (1024, 1024)])
def test_flux2_refuses_a_reference_over_512_a_side(fake_ai, size):
    response = flux(fake_ai, FLUX2[1], [("input_image_0", picture(*size))])
    message = bad_input(response)
    assert f"{size[0]}x{size[1]}" in message and "at most 512x512" in message


def test_flux2_refuses_a_reference_sent_as_a_text_part(fake_ai):
    """A part without a filename is a text field, not the binary file Cloudflare asks for."""
    parts = [("prompt", (None, "x")), ("input_image_0", (None, picture(32, 32)))]
    assert "must be a file part" in bad_input(run(fake_ai, FLUX2[0], files=parts))


def test_flux2_still_refuses_json_and_unknown_text_fields(fake_ai):
    assert "multipart" in bad_input(run(fake_ai, FLUX2[0], json={"prompt": "x"}))
    assert "additional properties" in bad_input(flux(fake_ai, FLUX2[1], [], steps=4))


# SD 1.5 img2img and inpainting: the input file in JSON


def sd_body(image: bytes | None = None, mask: bytes | None = None, **fields) -> dict:
    body = {"prompt": "a red barn", **fields}
    if image is not None:
        body["image"] = list(image)
    if mask is not None:
        body["mask"] = list(mask)
    return body


def raw_png(response: requests.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")  # raw bytes, no envelope
    return Image.open(io.BytesIO(response.content))


def test_both_sd_edit_models_are_in_the_fakes_schemas():
    for model in SD_EDIT:
        schema = SCHEMAS[model]
        assert not schema.multipart and not schema.envelope and schema.image_format == "PNG"
        assert {"image", "image_b64", "mask", "strength", "num_steps"} <= set(schema.fields)


@pytest.mark.parametrize("model", SD_EDIT)
def test_sd_edit_takes_image_bytes_and_a_mask_and_answers_raw_png(fake_ai, model):
    body = sd_body(picture(96, 64, "JPEG"), picture(96, 64), strength=0.6, num_steps=20)
    image = raw_png(run(fake_ai, model, json=body))
    assert image.size == (96, 64)  # no width/height: the input's size
    call = fake_ai.calls[-1]
    assert call["image"] == (96, 64, "JPEG")
    assert call["mask"] == (96, 64)
    assert bytes(call["fields"]["image"]) == picture(96, 64, "JPEG")


@pytest.mark.parametrize("model", SD_EDIT)
def test_sd_edit_takes_image_b64(fake_ai, model):
    body = sd_body(mask=picture(64, 64), width=512, height=256, guidance=7.5, seed=42)
    body["image_b64"] = base64.b64encode(picture(64, 64, "WEBP")).decode()
    assert raw_png(run(fake_ai, model, json=body)).size == (512, 256)
    assert fake_ai.calls[-1]["image"] == (64, 64, "WEBP")


def test_img2img_takes_no_mask_and_records_none(fake_ai):
    raw_png(run(fake_ai, IMG2IMG, json=sd_body(picture(64, 64))))
    call = fake_ai.calls[-1]
    assert call["image"] == (64, 64, "PNG") and "mask" not in call


def test_sd_edit_output_is_tinted_by_the_input(fake_ai):
    body = sd_body(picture(64, 64, colour=(10, 160, 220)), width=256, height=256)
    image = raw_png(run(fake_ai, IMG2IMG, json=body)).convert("RGB")
    assert image.getpixel((250, 5)) == (10, 160, 220)


@pytest.mark.parametrize("model", SD_EDIT)
def test_invalid_base64_is_a_5004(fake_ai, model):
    body = sd_body(mask=picture(32, 32), image_b64="not base64 at all!")
    message = refused(run(fake_ai, model, json=body), 5004)
    assert "base64" in message


def test_img2img_without_an_image_is_refused_by_the_model(fake_ai):
    """Past the schema (which requires only `prompt`): the model's own 3030."""
    message = refused(run(fake_ai, IMG2IMG, json=sd_body()), 3030)
    assert "missing required input image" in message


def test_inpainting_without_a_mask_is_refused_like_cloudflare(fake_ai):
    """As reported from Cloudflare: {"code": 3030, "message": "AiError: AiError: Model input is
    not valid: missing required input mask_image (…)"}, with or without an image."""
    for body in (sd_body(), sd_body(picture(64, 64))):
        message = refused(run(fake_ai, INPAINTING, json=body), 3030)
        assert message.startswith("AiError: AiError: Model input is not valid: ")
        assert "missing required input mask_image" in message


def test_inpainting_with_a_mask_but_no_image_is_refused(fake_ai):
    body = sd_body(mask=picture(64, 64))
    assert "missing required input image" in refused(run(fake_ai, INPAINTING, json=body), 3030)


@pytest.mark.parametrize("model", SD_EDIT)
@pytest.mark.parametrize(
    "field, data",
    [("image", b"not an image"), ("image", picture(64, 64, "GIF")), ("mask", b"\x00" * 50)],
)
def test_sd_edit_refuses_files_that_are_not_jpeg_png_or_webp(fake_ai, model, field, data):
    body = sd_body(picture(64, 64), picture(64, 64))
    body[field] = list(data)
    assert f"'{field}' is not a JPEG, PNG or WebP image" in bad_input(
        run(fake_ai, model, json=body)
    )


@pytest.mark.parametrize("model", SD_EDIT)
@pytest.mark.parametrize(
    "change, words",
    [
        ({"image": [137, 80, 256]}, "'image' must be an array of integers from 0 to 255"),
        ({"image": [-1]}, "'image' must be an array"),
        ({"image": "iVBORw0KGgo="}, "'image' must be an array"),
        ({"mask": [1.5]}, "'mask' must be an array"),
        ({"image_b64": 12}, "'image_b64' must be string"),
        ({"num_steps": 21}, "'num_steps' must be between 1 and 20"),
        ({"strength": 1.5}, "'strength' must be between 0 and 1"),
        ({"width": 255}, "'width' must be between 256 and 2048"),
        ({"height": 2049}, "'height' must be between 256 and 2048"),
        ({"size": "512x512"}, "must NOT have additional properties: 'size'"),
        ({"steps": 10}, "must NOT have additional properties: 'steps'"),
        ({"prompt": ""}, "'prompt' must be a string"),
    ],
)
def test_sd_edit_schema_violations_are_5006(fake_ai, model, change, words):
    body = {**sd_body(picture(64, 64), picture(64, 64)), **change}
    assert words in bad_input(run(fake_ai, model, json=body))


def test_sd_edit_without_a_prompt_is_5006(fake_ai):
    body = sd_body(picture(64, 64), picture(64, 64))
    del body["prompt"]
    assert "'prompt'" in bad_input(run(fake_ai, INPAINTING, json=body))
