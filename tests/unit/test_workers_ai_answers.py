"""Reading a Workers AI success envelope: the image's base64 is cut out of the JSON rather than
parsed with it; every shape of answer gives the same image, or the same error, either way."""

from __future__ import annotations

import base64
import json

import pytest

from flux_api.config.models import find_model
from flux_api.imaging.pictures import image_size
from flux_api.upstream.workers_ai.answers import decode
from flux_api.upstream.workers_ai.errors import BadResponse, WorkersAIError
from tests.support.fakes.workers_ai import render_image

SCHNELL = find_model("flux-1-schnell")
IMAGE = render_image(64, 48, "JPEG")
B64 = base64.b64encode(IMAGE).decode()


def read(body: bytes, status: int = 200) -> bytes:
    return decode(SCHNELL, status, body, None, lambda text: text)


def envelope(result: object, **fields) -> dict:
    return {"result": result, "success": True, "errors": [], "messages": [], **fields}


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(envelope({"image": B64})).encode(),  # spaces after the colons
        json.dumps(envelope({"image": B64}), separators=(",", ":")).encode(),  # compact
        json.dumps({"success": True, "result": {"image": B64}}, indent=2).encode(),
        # JSON may escape "/": the string is then read by the JSON parser, as before
        json.dumps(envelope({"image": B64})).replace("/", "\\/").encode(),
        # another "image" key before the result's
        json.dumps(
            {"errors": [{"image": "x"}], "result": {"image": B64}, "success": True}
        ).encode(),
        json.dumps(envelope({"image": B64, "seed": 7})).encode(),
    ],
    ids=["spaced", "compact", "indented", "escaped-slashes", "image-key-elsewhere", "more-fields"],
)
def test_every_shape_of_a_success_gives_the_image(body):
    assert read(body) == IMAGE
    assert image_size(read(body)) == (64, 48)


@pytest.mark.parametrize(
    "body, message",
    [
        (json.dumps(envelope({"image": "not base64!"})).encode(), "not valid base64"),
        (json.dumps(envelope({"image": 5})).encode(), "holds no image"),
        (json.dumps(envelope({"other": B64})).encode(), "holds no image"),
        (json.dumps(envelope({"image": base64.b64encode(b"x" * 40).decode()})).encode(), "not a"),
        (json.dumps(envelope({"image": base64.b64encode(IMAGE[:-40]).decode()})).encode(), "cut"),
        (b'{"result": {"image": "' + B64.encode(), "unreadable"),  # cut off in the string
        (json.dumps(envelope({"image": B64}))[:-1].encode(), "unreadable"),  # cut off after it
        # an image nested before an empty result's: the nested one is not the answer's
        (json.dumps(envelope({"meta": {"image": B64}, "image": ""})).encode(), "not a"),
    ],
    ids=[
        "bad-base64",
        "not-a-string",
        "no-image",
        "not-an-image",
        "cut-image",
        "cut-in",
        "cut",
        "nested-image",
    ],
)
def test_a_bad_success_is_a_bad_response(body, message):
    with pytest.raises(BadResponse, match=message):
        read(body)


def test_an_error_envelope_with_an_image_field_is_still_the_error():
    body = json.dumps(
        {"success": False, "errors": [{"code": 3040, "message": "busy"}], "result": {"image": ""}}
    ).encode()
    with pytest.raises(WorkersAIError) as raised:
        read(body, status=200)
    assert not isinstance(raised.value, BadResponse)
    assert "busy" in str(raised.value)
