"""The official openai SDK, and the exact bodies popular clients send, against the real
gunicorn (shipped gunicorn.conf.py) in front of the fake Workers AI."""

import base64
import io
import re
import time

import openai
import pytest
import requests
from PIL import Image

from tests.support.fakes.workers_ai import ACCOUNT_ID, TOKEN, Scripted
from tests.support.programs import Gunicorn
from tests.support.service import API_KEY, cf_api_base


@pytest.fixture(scope="module")
def server(tmp_path_factory, _fake_ai_server):
    gunicorn = start_gunicorn(tmp_path_factory, _fake_ai_server)
    yield gunicorn
    gunicorn.stop()


def start_gunicorn(tmp_path_factory, fake) -> Gunicorn:
    workdir = tmp_path_factory.mktemp("sdk")
    env = {
        "API_KEY": API_KEY,
        "CF_ACCOUNT_ID": ACCOUNT_ID,
        "CF_API_TOKEN": TOKEN,
        "CF_API_BASE": cf_api_base(fake),
        "DATA_DIR": str(workdir / "data"),
        "UPSTREAM_RETRY_BACKOFF": "0.05",
        "STREAM_HEARTBEAT": "0.3",
    }
    return Gunicorn(env, workdir).start()


@pytest.fixture
def client(server, fake_ai) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)


def fetch_image(url: str) -> tuple[Image.Image, str]:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content)), response.headers["Content-Type"]


def image_in(content: str) -> tuple[Image.Image, str]:
    return fetch_image(re.search(r"!\[Generated image\]\((http[^)]+)\)$", content).group(1))


def test_models_list(client):
    ids = [model.id for model in client.models.list()]
    assert ids[0] == "@cf/black-forest-labs/flux-1-schnell"
    assert "@cf/leonardo/phoenix-1.0" in ids
    assert client.models.retrieve("flux-2-dev").id == "@cf/black-forest-labs/flux-2-dev"


@pytest.mark.parametrize(
    "content",
    ["a lighthouse at dawn 16:9", [{"type": "text", "text": "a lighthouse at dawn 16:9"}]],
)
def test_chat_completion(client, content):
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": content}]
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0
    text = completion.choices[0].message.content
    assert "📐 Image Specifications: 1024x576" in text
    image, mime = image_in(text)
    assert image.size == (1024, 576) and mime == "image/jpeg"


def test_streamed_chat_completion(client, fake_ai):
    fake_ai.latency = 0.8
    stream = client.chat.completions.create(
        model="flux-2-dev",
        messages=[{"role": "user", "content": [{"type": "text", "text": "a fox --ar 9:16"}]}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.total_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    image, _ = image_in(text)
    assert image.size == (576, 1024)
    assert fake_ai.calls[-1]["model"] == "@cf/black-forest-labs/flux-2-dev"


@pytest.mark.parametrize(
    "size, expected", [("512x512", (512, 512)), ("1024x576", (1024, 576)), ("auto", (1024, 1024))]
)
@pytest.mark.parametrize("response_format", ["url", "b64_json"])
def test_images_generate(client, size, expected, response_format):
    result = client.images.generate(
        model="dall-e-3", prompt="a lighthouse at dawn", size=size, response_format=response_format
    )
    item = result.data[0]
    assert item.revised_prompt == "a lighthouse at dawn"
    if response_format == "url":
        image, mime = fetch_image(item.url)
    else:
        image = Image.open(io.BytesIO(base64.b64decode(item.b64_json)))
        mime = Image.MIME[image.format]
    assert image.size == expected and mime == "image/jpeg"


def test_images_generate_n3_runs_concurrently(client, fake_ai):
    fake_ai.latency = 1.5
    started = time.monotonic()
    result = client.images.generate(prompt="three foxes", n=3, size="512x512")
    elapsed = time.monotonic() - started
    assert len(result.data) == 3
    assert elapsed < 3.0  # well under 3 × 1.5 s
    for item in result.data:
        assert fetch_image(item.url)[0].size == (512, 512)


NEXTCHAT = {
    "model": "dall-e-3",
    "prompt": "a watercolor fox",
    "n": 1,
    "size": "1024x1024",
    "quality": "standard",
    "style": "vivid",
    "response_format": "b64_json",
}
OPEN_WEBUI = {
    "model": "dall-e-2",
    "prompt": "a watercolor fox",
    "n": 1,
    "size": "512x512",
    "response_format": "b64_json",
}
LIBRECHAT = {
    "model": "gpt-image-1",
    "prompt": "a watercolor fox",
    "n": 1,
    "size": "auto",
    "quality": "auto",
    "background": "auto",
    "output_format": "png",
}


@pytest.mark.parametrize(
    "path, body, size",
    [
        ("/v1/images/generations", NEXTCHAT, (1024, 1024)),
        (
            "/v1/images/generations",
            OPEN_WEBUI,
            (512, 512),
        ),  # Open WebUI posts to {base}/images/generations
        ("/v1/images/generations", LIBRECHAT, (1024, 1024)),
    ],
    ids=["nextchat", "open-webui", "librechat"],
)
def test_client_bodies(server, fake_ai, path, body, size):
    response = requests.post(
        server.url + path, json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]
    image = Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))
    assert image.size == size
    assert fake_ai.calls[-1]["fields"] == {"prompt": "a watercolor fox", "steps": 4}


def test_bad_request_error(client, fake_ai):
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(prompt="a fox", size="4096x4096")
    assert caught.value.body["param"] == "size"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="x", messages=[{"role": "user", "content": "a fox 9:1"}]
        )
    assert "1:4 to 4:1" in caught.value.message
    assert fake_ai.calls == []


def test_authentication_error(server):
    wrong = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_not_found_error(client):
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_rate_limit_error_is_not_retried_by_the_sdk(tmp_path_factory, fake_ai):
    server = start_gunicorn(tmp_path_factory, fake_ai)  # its only account ends up parked
    try:
        patient = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=2)
        fake_ai.script(Scripted(429, 4006, "AiError: daily free allocation of 10,000 neurons"))
        with pytest.raises(openai.RateLimitError) as caught:
            patient.images.generate(prompt="a fox")
        assert caught.value.code == "insufficient_quota"
        assert len(fake_ai.calls) == 1  # x-should-retry: false kept the SDK from repeating it
    finally:
        server.stop()


def test_upstream_outage_is_a_server_error(client, fake_ai):
    capacity = Scripted(429, 3040, "AiError: Capacity temporarily exceeded")
    fake_ai.script(capacity, capacity, capacity)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": "a fox"}])
    assert caught.value.status_code == 503


def test_error_mid_stream_raises_in_the_sdk(client, fake_ai):
    fake_ai.script(Scripted(400, 3030, "AiError: Your output has been flagged (r-9)"))
    stream = client.chat.completions.create(
        model="x", messages=[{"role": "user", "content": "a fox"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "content filter" in caught.value.message
    assert caught.value.body["code"] == "content_policy_violation"
    assert received[1].startswith("🎨 Original Prompt")  # progress arrived before the error
    assert "❌ Image generation failed" in "".join(received)
