"""Image editing: /v1/images/edits and /v1/images/variations, as the clients send them (the openai
SDK, Open WebUI, LibreChat), against the fake's editing contract, and every bad input."""

from __future__ import annotations

import base64
import io
import uuid

import openai
import pytest
import requests
from PIL import Image

from tests.support.pictures import picture
from tests.support.service import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
FLUX2_KLEIN_4B = "@cf/black-forest-labs/flux-2-klein-4b"
INPAINTING = "@cf/runwayml/stable-diffusion-v1-5-inpainting"


def mask_for(width: int, height: int) -> bytes:
    """OpenAI's mask: transparent (alpha 0) where the image is to change: here the left half."""
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, width // 2, height))
    out = io.BytesIO()
    mask.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def client(service):
    return openai.OpenAI(base_url=f"{service.url}/v1", api_key=API_KEY, max_retries=0)


def edit(service, files, **fields) -> requests.Response:
    return requests.post(
        service.url + "/v1/images/edits", files=files, data=fields, headers=AUTH, timeout=30
    )


def test_sdk_edit_with_one_image_sends_one_reference(client, service, fake_ai):
    result = client.images.edit(
        image=("fox.png", picture(), "image/png"), prompt="make image 0 blue", size="1024x1024"
    )
    assert result.data[0].url.startswith(service.url + "/image/")
    (call,) = fake_ai.calls
    assert call["model"] == FLUX2_KLEIN_4B  # EDIT_MODEL, the default
    assert [ref[0] for ref in call["references"]] == ["input_image_0"]
    assert requests.get(result.data[0].url, timeout=10).status_code == 200


def test_sdk_edit_with_three_images_sends_three_references_within_512(client, fake_ai):
    images = [(f"p{i}.png", picture(1600, 900), "image/png") for i in range(3)]
    result = client.images.edit(image=images, prompt="image 0 in the style of image 1")
    assert len(result.data) == 1
    (call,) = fake_ai.calls
    references = call["references"]
    assert [ref[0] for ref in references] == ["input_image_0", "input_image_1", "input_image_2"]
    assert all(max(ref[1], ref[2]) <= 512 for ref in references)
    assert call["fields"]["width"] == 1024 and call["fields"]["height"] == 576  # the first's shape


def test_sdk_edit_with_a_mask_goes_to_the_inpainting_model(client, fake_ai):
    result = client.images.edit(
        image=("room.png", picture(512, 512), "image/png"),
        mask=("mask.png", mask_for(512, 512), "image/png"),
        prompt="a red sofa",
        response_format="b64_json",
    )
    assert base64.b64decode(result.data[0].b64_json)[:4] == b"\x89PNG"
    (call,) = fake_ai.calls
    assert call["model"] == INPAINTING
    assert call["image"][:2] == (1024, 1024) or call["image"][:2] == (512, 512)
    assert call["mask"] is not None


def test_open_webui_multipart_body(service, fake_ai):
    """Open WebUI: `image[]` even for one image, a uuid filename, b64_json, no mask."""
    files = [("image[]", (f"{uuid.uuid4()}.png", picture(), "image/png"))]
    response = edit(
        service,
        files,
        model="dall-e-2",
        prompt="add a hat",
        n="1",
        size="512x512",
        response_format="b64_json",
    )
    assert response.status_code == 200, response.text
    image = base64.b64decode(response.json()["data"][0]["b64_json"])
    assert Image.open(io.BytesIO(image)).size == (512, 512)


def test_librechat_multipart_body(service, fake_ai):
    """LibreChat: one `image[]` part per file, quality and size, no n; reads data[0].b64_json."""
    files = [("image[]", (f"f{i}.jpg", picture(fmt="JPEG"), "image/jpeg")) for i in range(2)]
    response = edit(
        service, files, model="gpt-image-1", prompt="merge them", quality="high", size="1024x1024"
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["b64_json"]
    assert len(fake_ai.calls[0]["references"]) == 2


def test_variation(client, fake_ai):
    result = client.images.create_variation(image=("fox.png", picture(), "image/png"), n=2)
    assert len(result.data) == 2
    assert all(len(call["references"]) == 1 for call in fake_ai.calls)


def test_json_form_with_a_data_url(service, fake_ai):
    data_url = "data:image/png;base64," + base64.b64encode(picture()).decode()
    response = service.post(
        "/v1/images/edits", {"prompt": "make it night", "images": [{"image_url": data_url}]}
    )
    assert response.status_code == 200, response.text
    assert len(fake_ai.calls) == 1


def test_models_say_which_edit(service):
    models = {m["id"]: m for m in service.get("/v1/models").json()["data"]}
    assert models[FLUX2_KLEIN_4B]["flux_api"]["edits"] is True
    assert models["@cf/black-forest-labs/flux-1-schnell"]["flux_api"]["edits"] is False
    assert models[INPAINTING]["flux_api"]["text_to_image"] is False
    assert models[FLUX2_KLEIN_4B]["flux_api"]["max_input_images"] == 4


NOT_AN_IMAGE = ("notes.png", b"just some text, not a picture", "image/png")


def bomb() -> bytes:
    """A tiny PNG that claims 50,000 x 50,000 pixels."""
    out = io.BytesIO()
    Image.new("1", (50_000, 50_000)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    "files, fields, param, words",
    [
        ([("image", NOT_AN_IMAGE)], {"prompt": "x"}, "image", "not a JPEG, PNG or WebP"),
        ([("image", ("big.png", bomb(), "image/png"))], {"prompt": "x"}, "image", "pixels"),
        ([("image", ("a.png", picture(), "image/png"))], {}, "prompt", "prompt"),
        ([], {"prompt": "x"}, "image", "No image"),
        (
            [
                ("image", ("a.png", picture(640, 480), "image/png")),
                ("mask", ("m.png", mask_for(320, 240), "image/png")),
            ],
            {"prompt": "x"},
            "mask",
            "size of the first image",
        ),
        (
            [("image[]", (f"{i}.png", picture(64, 64), "image/png")) for i in range(5)],
            {"prompt": "x"},
            "image",
            "at most 4",
        ),
        (
            [("image[]", (f"{i}.png", picture(16, 16), "image/png")) for i in range(17)],
            {"prompt": "x"},
            "image",
            "At most 16",
        ),
        (
            [("image", ("a.png", picture(), "image/png"))],
            {"prompt": "x", "n": "two"},
            "n",
            "number",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_calls_nothing(
    service, fake_ai, files, fields, param, words
):
    response = edit(service, files, **fields)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"]
    assert fake_ai.calls == []


def test_a_remote_image_url_is_refused(service, fake_ai):
    response = service.post(
        "/v1/images/edits",
        {"prompt": "x", "images": [{"image_url": "https://169.254.169.254/latest/meta-data"}]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_image_url"
    assert fake_ai.calls == []


def test_an_image_over_the_per_image_limit_is_a_400(service, fake_ai):
    noise = Image.frombytes("RGB", (2400, 1600), bytes(range(256)) * (2400 * 1600 * 3 // 256))
    out = io.BytesIO()
    noise.save(out, format="BMP")  # not even a format we take: sniffed first
    big = out.getvalue()
    response = edit(service, [("image", ("big.png", big, "image/png"))], prompt="x")
    assert response.status_code == 400
    assert fake_ai.calls == []


def test_an_upload_over_max_upload_mb_is_a_413_naming_it(start_service, fake_ai):
    service = start_service(MAX_UPLOAD_MB="1")
    files = [("image[]", (f"{i}.png", picture(), "image/png")) for i in range(2)]
    files.append(("padding", ("pad.bin", b"\0" * (1024 * 1024), "application/octet-stream")))
    response = edit(service, files, prompt="x")
    assert response.status_code == 413
    assert "MAX_UPLOAD_MB" in response.json()["error"]["message"]
    assert fake_ai.calls == []


def chat_with_images(service, text: str, *urls: str, **body) -> requests.Response:
    content = [{"type": "text", "text": text}]
    content += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return service.post(
        "/v1/chat/completions", {"messages": [{"role": "user", "content": content}], **body}
    )


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def test_a_chat_message_with_an_image_is_an_edit_of_it(service, fake_ai):
    response = chat_with_images(service, "make it blue", data_url(picture(800, 400)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert "🖼️ Reference Images: 1" in body["choices"][0]["message"]["content"]
    assert body["flux_api"]["input_images"] == 1 and body["flux_api"]["size"] == "1024x512"
    assert [ref[0] for ref in fake_ai.calls[0]["references"]] == ["input_image_0"]


def test_an_earlier_reply_s_image_is_taken_from_the_store_without_a_fetch(service, fake_ai):
    first = service.chat("a fox").json()
    url = first["flux_api"]["image_url"]
    response = chat_with_images(service, "the same fox in winter", url, stream=True)
    assert response.status_code == 200
    assert "Reference Images: 1" in response.text
    assert len(fake_ai.calls[1]["references"]) == 1


def test_a_chat_image_that_is_a_remote_url_is_a_400(service, fake_ai):
    response = chat_with_images(service, "make it blue", "https://example.com/fox.png")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_image_url"
    assert fake_ai.calls == []


def test_a_big_image_in_chat_is_within_max_upload_mb_but_text_alone_keeps_max_body_kb(
    service, fake_ai
):
    noise = Image.effect_noise((600, 600), 64).convert("RGB")
    out = io.BytesIO()
    noise.save(out, format="PNG")
    assert len(out.getvalue()) > 64 * 1024
    assert chat_with_images(service, "sharper", data_url(out.getvalue())).status_code == 200
    text_only = service.chat("x" * 100_000)
    assert text_only.status_code == 413 and "MAX_BODY_KB" in text_only.json()["error"]["message"]


def test_an_edit_in_the_format_asked_for(service, fake_ai):
    """LibreChat asks for png and labels the data PNG."""
    files = [("image[]", ("a.jpg", picture(fmt="JPEG"), "image/jpeg"))]
    response = edit(service, files, prompt="x", model="gpt-image-1", output_format="png")
    assert response.status_code == 200, response.text
    assert base64.b64decode(response.json()["data"][0]["b64_json"])[:4] == b"\x89PNG"
