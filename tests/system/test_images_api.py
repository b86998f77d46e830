"""POST /v1/images/generations against the fake Workers AI, through the service's real port."""

import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image

from tests.support.fakes.workers_ai import Scripted
from tests.support.service import API_KEY

SCHNELL = "@cf/black-forest-labs/flux-1-schnell"
FLUX2_DEV = "@cf/black-forest-labs/flux-2-dev"
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"


def generate(service, **body):
    return service.post("/v1/images/generations", {"prompt": "a lighthouse at dawn", **body})


def pictures(service, response) -> list[tuple[Image.Image, str]]:
    """Every image of an answer, fetched or decoded, with its content type."""
    out = []
    for item in response.json()["data"]:
        if "url" in item:
            fetched = service.get(item["url"][len(service.url) :], key=None)
            out.append((Image.open(io.BytesIO(fetched.content)), fetched.headers["Content-Type"]))
        else:
            data = base64.b64decode(item["b64_json"])
            out.append(
                (Image.open(io.BytesIO(data)), Image.MIME[Image.open(io.BytesIO(data)).format])
            )
    return out


def stored_count(service) -> int:
    return len(service.app.extensions["flux_api"].store)


@pytest.mark.parametrize("response_format, key", [("url", "url"), ("b64_json", "b64_json")])
def test_each_response_format(service, fake_ai, response_format, key):
    response = generate(service, response_format=response_format)
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["created"], int)
    (item,) = body["data"]
    assert set(item) == {key, "revised_prompt"}
    assert item["revised_prompt"] == "a lighthouse at dawn"
    [(image, mime)] = pictures(service, response)
    assert image.size == (1024, 1024) and mime == "image/jpeg"


def test_b64_json_stores_nothing_and_url_stores_each_image(service, fake_ai):
    generate(service, response_format="b64_json", n=2)
    assert stored_count(service) == 0
    generate(service, n=2)
    assert stored_count(service) == 2


@pytest.mark.parametrize("model", [SCHNELL, FLUX2_DEV, SDXL])
@pytest.mark.parametrize(
    "size, expected",
    [
        ("512x512", (512, 512)),
        ("1024x576", (1024, 576)),
        ("300x700", (300, 700)),
        ("2048x2048", (2048, 2048)),
        ("256x2048", (256, 2048)),
        ("auto", (1024, 1024)),
        (None, (1024, 1024)),
    ],
)
def test_the_image_has_exactly_the_requested_size(service, fake_ai, model, size, expected):
    body = {"model": model, "response_format": "b64_json"}
    if size:
        body["size"] = size
    response = generate(service, **body)
    assert response.status_code == 200, response.text
    [(image, _)] = pictures(service, response)
    assert image.size == expected
    assert response.json()["size"] == f"{expected[0]}x{expected[1]}"


def test_native_models_are_asked_for_the_nearest_size_they_allow(service, fake_ai):
    generate(service, model=FLUX2_DEV, size="2048x1024", response_format="b64_json")
    fields = fake_ai.calls[-1]["fields"]
    assert (fields["width"], fields["height"]) == (1920, 960)  # FLUX.2 stops at 1920
    generate(service, model=SDXL, size="1024x576", response_format="b64_json")
    fields = fake_ai.calls[-1]["fields"]
    assert (fields["width"], fields["height"]) == (1024, 576)


def test_auto_size_reads_a_ratio_at_the_end_of_the_prompt(service, fake_ai):
    response = generate(service, prompt="a lighthouse 16:9", size="auto")
    [(image, _)] = pictures(service, response)
    assert image.size == (1024, 576)
    assert response.json()["data"][0]["revised_prompt"] == "a lighthouse"


def test_n_images_are_generated_concurrently(service, fake_ai):
    fake_ai.latency = 1.5
    started = time.monotonic()
    response = generate(service, n=3)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert len(response.json()["data"]) == 3
    assert len({item["url"] for item in response.json()["data"]}) == 3
    assert len(fake_ai.calls) == 3
    assert elapsed < 3.0  # three 1.5 s calls at once, not 4.5 s one after another


def test_one_failure_fails_the_request_and_stores_nothing(service, fake_ai):
    fake_ai.script(Scripted(400, 3030, "AiError: Your output has been flagged (x)"))
    response = generate(service, n=3)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "content_policy_violation"
    assert stored_count(service) == 0


@pytest.mark.parametrize("name", ["dall-e-2", "dall-e-3", "gpt-image-1", "whatever", None])
def test_unknown_model_names_use_the_default(service, fake_ai, name):
    assert generate(service, model=name).status_code == 200
    assert fake_ai.calls[-1]["model"] == SCHNELL


def test_gpt_image_models_default_to_b64_json(service, fake_ai):
    assert "b64_json" in generate(service, model="gpt-image-1").json()["data"][0]
    assert "url" in generate(service, model="dall-e-3").json()["data"][0]


def test_extensions_reach_models_that_take_them(service, fake_ai):
    generate(service, model=SDXL, seed=42, negative_prompt="blurry", steps=50)
    assert fake_ai.calls[-1]["fields"] == {
        "prompt": "a lighthouse at dawn",
        "seed": 42,
        "negative_prompt": "blurry",
        "num_steps": 20,  # clamped to the model's limit
        "width": 1024,
        "height": 1024,
    }


def test_extensions_never_reach_models_that_reject_them(service, fake_ai):
    response = generate(service, seed=42, negative_prompt="blurry", steps=6)
    assert response.status_code == 200
    assert fake_ai.calls[-1]["fields"] == {"prompt": "a lighthouse at dawn", "steps": 6}


def test_openai_only_fields_are_accepted_and_ignored(service, fake_ai):
    response = generate(
        service,
        quality="hd",
        style="vivid",
        user="u-1",
        background="transparent",
        output_format="png",
        output_compression=80,
        moderation="low",
    )
    assert response.status_code == 200
    assert fake_ai.calls[-1]["fields"] == {"prompt": "a lighthouse at dawn", "steps": 4}


@pytest.mark.parametrize(
    "body, param",
    [
        ({"prompt": None}, "prompt"),
        ({"prompt": "  "}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"size": "1024"}, "size"),
        ({"size": "4096x4096"}, "size"),
        ({"size": "100x100"}, "size"),
        ({"size": 1024}, "size"),
        ({"n": 0}, "n"),
        ({"n": 5}, "n"),
        ({"n": "2"}, "n"),
        ({"n": True}, "n"),
        ({"response_format": "png"}, "response_format"),
        ({"seed": -1}, "seed"),
        ({"steps": 0}, "steps"),
        ({"negative_prompt": ["x"]}, "negative_prompt"),
        ({"prompt": "x" * 2049}, "prompt"),
    ],
)
def test_bad_fields_are_a_400_naming_the_field(service, fake_ai, body, param):
    response = generate(service, **body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert fake_ai.calls == []


def test_the_size_error_names_the_allowed_range(service):
    message = generate(service, size="9000x10").json()["error"]["message"]
    assert "256" in message and "2048" in message and "auto" in message


def test_images_max_n_is_a_setting(start_service, fake_ai):
    service = start_service(IMAGES_MAX_N="6")
    assert len(generate(service, n=6, response_format="b64_json").json()["data"]) == 6
    assert generate(service, n=7).json()["error"]["param"] == "n"


def test_optimizer_rewrites_the_prompt_once_for_all_images(
    start_service, optimizer_env, fake_ai, fake_optimizer
):
    service = start_service(**optimizer_env)
    response = generate(service, n=2, response_format="b64_json")
    revised = {item["revised_prompt"] for item in response.json()["data"]}
    assert revised == {
        "A cinematic, detailed rendering of a lighthouse at dawn, soft golden light, calm mood"
    }
    assert len(fake_optimizer.calls) == 1
    assert fake_ai.calls[-1]["fields"]["prompt"] == revised.pop()


# Four 2048x2048 PNGs as base64: 48 MB estimated, the largest request the tests make.
FOUR_LARGE_PNGS = {
    "prompt": "a fox",
    "model": "@cf/stabilityai/stable-diffusion-xl-base-1.0",
    "n": 4,
    "size": "2048x2048",
    "response_format": "b64_json",
}


def test_memory_bound_runs_large_requests_one_after_another(start_service, fake_ai):
    """IMAGE_MEMORY_MB=16 holds one request of four 2048x2048 images (48 MB estimated, capped
    at the whole bound): three such requests run in turn, never twelve upstream calls at once."""
    service = start_service(IMAGE_MEMORY_MB="16")
    fake_ai.latency = 0.3
    body = FOUR_LARGE_PNGS
    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda _: service.post("/v1/images/generations", body), range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all(len(r.json()["data"]) == 4 for r in responses)
    assert fake_ai.most_in_flight == 4
    memory = service.app.extensions["flux_api"].image_memory
    deadline = time.monotonic() + 5  # given back when the server closes each answer
    while memory.in_use and time.monotonic() < deadline:
        time.sleep(0.05)
    assert memory.in_use == 0


def test_b64_answer_left_unread_gives_its_memory_back(gunicorn, service_env, fake_ai):
    """Through gunicorn (werkzeug's test server skips closing an answer whose client reset).
    IMAGE_MEMORY_MB=16 holds one such request at a time: had the abandoned answer kept its
    reservation, the next request would wait for room until its deadline."""
    server = gunicorn({**service_env, "IMAGE_MEMORY_MB": "16", "UPSTREAM_TIMEOUT": "5"}, 1)
    body = FOUR_LARGE_PNGS
    headers = {"Authorization": f"Bearer {API_KEY}"}
    url = server.url + "/v1/images/generations"
    response = requests.post(url, json=body, headers=headers, stream=True, timeout=30)
    assert response.status_code == 200
    response.raw.read(100)
    response.close()  # the client goes away with most of the answer unread
    whole = requests.post(url, json=body, headers=headers, timeout=30)
    assert whole.status_code == 200  # and answers stay valid JSON
    assert [base64.b64decode(item["b64_json"])[:4] for item in whole.json()["data"]] == [
        b"\x89PNG"
    ] * 4


@pytest.mark.parametrize(
    "fmt, magic", [("png", b"\x89PNG"), ("webp", b"RIFF"), ("jpeg", b"\xff\xd8")]
)
def test_output_format_is_honoured(service, fake_ai, fmt, magic):
    body = {"prompt": "a fox", "response_format": "b64_json", "output_format": fmt}
    answer = service.post("/v1/images/generations", body).json()
    assert base64.b64decode(answer["data"][0]["b64_json"]).startswith(magic)
    assert answer["output_format"] == fmt


def test_without_output_format_the_model_s_bytes_are_served_untouched(service, fake_ai):
    answer = service.post("/v1/images/generations", {"prompt": "a fox", "size": "1024x1024"})
    image = service.get(answer.json()["data"][0]["url"].removeprefix(service.url), key=None)
    assert image.headers["Content-Type"] == "image/jpeg"


def test_an_unknown_output_format_is_a_400(service, fake_ai):
    response = service.post("/v1/images/generations", {"prompt": "a fox", "output_format": "gif"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "output_format"
    assert fake_ai.calls == []
