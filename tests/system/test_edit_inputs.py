"""Input images are bounded before they cost anything: counted before they are read, checked from
their headers before they are decoded; shown upright as a phone stores them; and every form
the JSON and multipart endpoints are sent in (issue 19, items 1, 2, 5, 6)."""

from __future__ import annotations

import base64
import io
import zlib

import requests
from PIL import Image

from tests.support.pictures import picture
from tests.support.service import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
IMG2IMG = "@cf/runwayml/stable-diffusion-v1-5-img2img"
INPAINTING = "@cf/runwayml/stable-diffusion-v1-5-inpainting"


def truncated_png(width: int, height: int) -> bytes:
    """A PNG whose header is sound and whose pixels are cut off: only decoding finds out."""
    data = picture(width, height)
    return data[: len(data) // 2]


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def chat_with_images(service, text: str, urls: list[str]) -> requests.Response:
    content = [{"type": "text", "text": text}]
    content += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return service.post(
        "/v1/chat/completions", {"messages": [{"role": "user", "content": content}]}
    )


# ---- 1. images in chat are counted before they are read ------------------------------------


def test_thousands_of_repeated_image_parts_are_refused_before_one_is_read(service, fake_ai):
    first = service.chat("a fox").json()["flux_api"]["image_url"]
    missing = first.rsplit("/", 1)[0] + "/" + "A" * 32
    # Read part by part, the second (an unknown key) would answer first: image_not_found.
    response = chat_with_images(service, "make it blue", [first] + [missing] * 2999)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "too_many_images"
    assert "3000" in response.json()["error"]["message"]
    assert len(fake_ai.calls) == 1  # the first generation only


def test_more_chat_images_than_any_model_takes_is_refused_before_they_are_read(service, fake_ai):
    first = service.chat("a fox").json()["flux_api"]["image_url"]
    missing = first.rsplit("/", 1)[0] + "/" + "A" * 32
    response = chat_with_images(service, "merge them", [first] * 4 + [missing])
    assert response.status_code == 400, response.text
    assert "at most 4" in response.json()["error"]["message"]
    assert len(fake_ai.calls) == 1


def test_chat_images_are_bounded_by_max_upload_mb_in_all(start_service, fake_ai):
    service = start_service(MAX_UPLOAD_MB="1")
    fake_ai.realistic = True  # photo-like images, as large as real ones
    made = service.post(
        "/v1/images/generations",
        {
            "prompt": "a fox",
            "model": "@cf/black-forest-labs/flux-2-dev",
            "size": "1920x1920",
            "n": 2,
            "response_format": "url",
        },
    )
    assert made.status_code == 200, made.text
    stored = [item["url"] for item in made.json()["data"]]
    sizes = [len(requests.get(url, timeout=10).content) for url in stored]
    assert max(sizes) < 1024 * 1024 < sum(sizes)  # each would do; together they are too much
    response = chat_with_images(service, "merge them", stored)
    assert response.status_code == 400, response.text
    assert "MAX_UPLOAD_MB" in response.json()["error"]["message"]
    assert len(fake_ai.calls) == 2


# ---- 2. too many images are refused before they are decoded -------------------------------


def test_too_many_images_for_the_model_are_refused_before_any_is_decoded(service, fake_ai):
    """Twelve images for a model that takes four: the four-image limit answers, not the cut
    pixels of the fifth, which only decoding would find."""
    files = [("image[]", (f"{i}.png", picture(64, 64), "image/png")) for i in range(4)]
    files += [("image[]", (f"{i}.png", truncated_png(6000, 6000), "image/png")) for i in range(8)]
    response = requests.post(
        service.url + "/v1/images/edits", files=files, data={"prompt": "x"}, headers=AUTH
    )
    assert response.status_code == 400, response.text
    assert "at most 4" in response.json()["error"]["message"]
    assert fake_ai.calls == []


def test_a_cut_image_is_still_found_before_any_call(service, fake_ai):
    files = [("image", ("cut.png", truncated_png(300, 300), "image/png"))]
    response = requests.post(
        service.url + "/v1/images/edits", files=files, data={"prompt": "x"}, headers=AUTH
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_image" and error["param"] == "image"
    assert fake_ai.calls == []


def deflate_bomb_png(width: int, height: int) -> bytes:
    """An RGBA PNG of one colour: a few hundred KB that decode to width*height*4 bytes."""
    import struct

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\0" + b"\x80" * (width * 4)
    pixels = zlib.compress(row * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_sixteen_large_pngs_for_a_four_image_model_are_refused_without_decoding(service, fake_ai):
    bomb = deflate_bomb_png(6300, 6300)
    assert len(bomb) < 400_000
    files = [("image[]", (f"{i}.png", bomb, "image/png")) for i in range(16)]
    response = requests.post(
        service.url + "/v1/images/edits", files=files, data={"prompt": "x"}, headers=AUTH
    )
    assert response.status_code == 400 and "at most 4" in response.json()["error"]["message"]
    assert fake_ai.calls == []


# ---- 5. EXIF orientation --------------------------------------------------------------------


def phone_photo(width: int = 1600, height: int = 1200, orientation: int = 6) -> bytes:
    """A JPEG stored landscape that a viewer shows turned (orientation 6: 90° clockwise)."""
    picture = Image.new("RGB", (width, height), (200, 120, 40))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    picture.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def edit(service, files, **fields) -> requests.Response:
    return requests.post(
        service.url + "/v1/images/edits", files=files, data=fields, headers=AUTH, timeout=30
    )


def test_a_turned_phone_photo_is_edited_upright_at_its_shown_shape(service, fake_ai):
    response = edit(
        service,
        [("image", ("photo.jpg", phone_photo(), "image/jpeg"))],
        prompt="add a hat",
        response_format="b64_json",
    )
    assert response.status_code == 200, response.text
    served = Image.open(io.BytesIO(base64.b64decode(response.json()["data"][0]["b64_json"])))
    assert served.size == (768, 1024)  # portrait, as the photo is shown
    ((_, width, height, _),) = fake_ai.calls[0]["references"]
    assert (width, height) == (384, 512)


def test_img2img_gets_the_turned_photo_upright_not_squashed(service, fake_ai):
    response = edit(
        service,
        [("image", ("photo.jpg", phone_photo(), "image/jpeg"))],
        prompt="in watercolour",
        model=IMG2IMG,
    )
    assert response.status_code == 200, response.text
    width, height = fake_ai.calls[0]["image"][:2]
    assert width < height


def test_a_mask_drawn_on_the_photo_as_shown_is_accepted(service, fake_ai):
    mask = Image.new("RGBA", (1200, 1600), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 600, 1600))
    out = io.BytesIO()
    mask.save(out, format="PNG")
    response = edit(
        service,
        [
            ("image", ("photo.jpg", phone_photo(), "image/jpeg")),
            ("mask", ("mask.png", out.getvalue(), "image/png")),
        ],
        prompt="a red sofa",
    )
    assert response.status_code == 200, response.text
    (call,) = fake_ai.calls
    assert call["model"] == INPAINTING
    assert call["image"][:2] == call["mask"] and call["mask"][0] < call["mask"][1]


# ---- 6. every form of the JSON endpoints ----------------------------------------------------


def test_a_json_mask_given_as_a_bare_data_url_goes_to_inpainting(service, fake_ai):
    mask = Image.new("RGBA", (640, 480), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 320, 480))
    out = io.BytesIO()
    mask.save(out, format="PNG")
    response = service.post(
        "/v1/images/edits",
        {
            "prompt": "a red sofa",
            "images": [{"image_url": data_url(picture(640, 480))}],
            "mask": data_url(out.getvalue()),
        },
    )
    assert response.status_code == 200, response.text
    assert fake_ai.calls[0]["model"] == INPAINTING


def test_a_json_mask_that_is_not_an_image_url_is_a_400(service, fake_ai):
    response = service.post(
        "/v1/images/edits",
        {"prompt": "x", "images": [{"image_url": data_url(picture(64, 64))}], "mask": 42},
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "mask"
    assert fake_ai.calls == []


def test_a_json_variation_needs_no_prompt(service, fake_ai):
    response = service.post(
        "/v1/images/variations", {"images": [{"image_url": data_url(picture(300, 200))}], "n": 2}
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2 and len(fake_ai.calls) == 2


def test_thousands_of_form_fields_name_the_form_limit_not_max_upload_mb(service, fake_ai):
    fields = [(f"field{i}", "x") for i in range(3000)]
    files = [("image", ("a.png", picture(64, 64), "image/png"))]
    response = requests.post(
        service.url + "/v1/images/edits",
        files=files,
        data=[("prompt", "x")] + fields,
        headers=AUTH,
        timeout=30,
    )
    assert response.status_code == 413, response.text
    message = response.json()["error"]["message"]
    assert "MAX_UPLOAD_MB" not in message and "1000" in message
    assert fake_ai.calls == []
