"""POST /v1/chat/completions without streaming, against the fake Workers AI."""

import io
import re
import time

import pytest
from PIL import Image

from tests.support.fakes.workers_ai import Scripted
from tests.support.service import content_of, read_sse

IMAGE_URL = re.compile(r"!\[Generated image\]\((?P<url>[^)]+)\)$")


def image_url(content: str) -> str:
    match = IMAGE_URL.search(content)
    assert match, content
    return match.group("url")


def test_reply_has_the_six_lines_and_a_served_image(service, fake_ai):
    response = service.chat("a lighthouse at dawn")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "@cf/black-forest-labs/flux-1-schnell"
    assert body["choices"][0]["finish_reason"] == "stop"
    content = body["choices"][0]["message"]["content"]
    lines = content.split("\n")
    assert lines[0] == "🎨 Original Prompt: a lighthouse at dawn"
    assert lines[1] == "💬 Prompt Generation Model: Original Prompt"
    assert lines[2] == "🌐 Prompt Used: a lighthouse at dawn"
    assert lines[3] == "📐 Image Specifications: 1024x1024"
    assert lines[4] == "🌟 Image generation successful!"
    url = image_url(content)
    assert url.startswith(service.url + "/image/")
    image = service.get(url[len(service.url) :], key=None)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).size == (1024, 1024)
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_schnell_gets_only_prompt_and_steps(service, fake_ai):
    assert service.chat("a castle 16:9").status_code == 200
    assert fake_ai.calls[-1]["fields"] == {"prompt": "a castle", "steps": 4}


def test_flux_num_steps_is_sent_and_clamped_to_the_model_limit(start_service, fake_ai):
    service = start_service(FLUX_NUM_STEPS="30")
    assert service.chat("a castle").status_code == 200
    assert fake_ai.calls[-1]["fields"]["steps"] == 8


def test_content_as_a_list_of_parts_joins_the_text_parts(service, fake_ai):
    parts = [
        {"type": "text", "text": "a tabby cat"},
        {"type": "text", "text": "on a windowsill 3:2"},
    ]  # image parts make it an edit: tests/system/test_edits.py
    response = service.chat(parts)
    assert response.status_code == 200
    assert fake_ai.calls[-1]["fields"]["prompt"] == "a tabby cat\non a windowsill"
    assert "📐 Image Specifications: 768x512" in response.json()["choices"][0]["message"]["content"]


def test_only_the_last_user_message_counts(service, fake_ai):
    messages = [
        {"role": "system", "content": "You are helpful"},
        {"role": "user", "content": "an old prompt"},
        {"role": "assistant", "content": "an old answer"},
        {"role": "user", "content": "a new prompt"},
        {"role": "system", "content": "late system note"},
    ]
    response = service.post("/v1/chat/completions", {"messages": messages})
    assert response.status_code == 200
    assert fake_ai.calls[-1]["fields"]["prompt"] == "a new prompt"


@pytest.mark.parametrize("name", ["@cf/black-forest-labs/flux-2-klein-4b", "flux-2-klein-4b"])
def test_request_model_picks_a_listed_model(service, fake_ai, name):
    response = service.chat("a boat", model=name)
    assert response.json()["model"] == "@cf/black-forest-labs/flux-2-klein-4b"
    assert fake_ai.calls[-1]["model"] == "@cf/black-forest-labs/flux-2-klein-4b"


@pytest.mark.parametrize("name", ["gpt-4o", "dall-e-3", "", None])
def test_unknown_model_names_mean_the_default(start_service, fake_ai, name):
    service = start_service(FLUX_MODEL="@cf/black-forest-labs/flux-2-dev")
    response = service.chat("a boat", model=name)
    assert response.status_code == 200
    assert fake_ai.calls[-1]["model"] == "@cf/black-forest-labs/flux-2-dev"


@pytest.mark.parametrize(
    "field, value", [("model", 42), ("stream", "yes"), ("stream_options", [1])]
)
def test_fields_of_the_wrong_type_are_a_400_naming_them(service, fake_ai, field, value):
    response = service.chat("a boat", **{field: value})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field
    assert fake_ai.calls == []


def test_a_model_left_out_of_image_models_is_not_used(start_service, fake_ai):
    service = start_service(IMAGE_MODELS="@cf/black-forest-labs/flux-1-schnell")
    service.chat("a boat", model="@cf/leonardo/phoenix-1.0")
    assert fake_ai.calls[-1]["model"] == "@cf/black-forest-labs/flux-1-schnell"


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "user"),
        ({"messages": [{"role": "user", "content": {"text": "x"}}]}, "content"),
        ({"messages": [{"role": "user", "content": "   "}]}, "empty"),
        ({"messages": [{"role": "user", "content": "16:9"}]}, "empty"),
        ({"messages": [{"role": "user", "content": "a fox 9:1"}]}, "1:4 to 4:1"),
    ],
)
def test_bad_requests_get_a_400_that_says_what_is_wrong(service, fake_ai, body, fragment):
    response = service.post("/v1/chat/completions", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]
    assert fake_ai.calls == []


def test_body_that_is_not_json_is_a_400(service):
    response = service.post(
        "/v1/chat/completions", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]["message"]


def test_prompt_over_the_model_limit_is_a_400_saying_the_limit(service, fake_ai):
    response = service.chat("x" * 2049)
    assert response.status_code == 400
    assert "2048" in response.json()["error"]["message"]
    assert fake_ai.calls == []


def test_missing_cloudflare_credentials_answer_503_with_advice(start_service, fake_ai):
    service = start_service(CF_API_TOKEN=None)
    response = service.chat("a boat")
    assert response.status_code == 503
    assert "CF_API_TOKEN" in response.json()["error"]["message"]
    assert "CF_API_TOKEN" in service.get("/", key=None).text
    assert fake_ai.calls == []


def test_upstream_error_in_a_plain_reply_is_an_http_error(service, fake_ai):
    fake_ai.script(
        Scripted(
            429, 4006, "AiError: you have used up your daily free allocation of 10,000 neurons"
        )
    )
    response = service.chat("a boat")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "insufficient_quota"


def test_oversized_body_is_a_json_413(service, fake_ai):
    response = service.chat("a fox " * 200_000)  # about 1.2 MB
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert fake_ai.calls == []


def test_reply_facts_come_as_data_beside_the_prose(service, fake_ai):
    """A prompt that looks like the reply's own wording cannot confuse a reader of the facts."""
    prompt = (
        "a poster saying /image/sale ![x](http://evil.example/image/x) 🌐 Prompt Used: lies 3:2"
    )
    body = service.chat(prompt).json()
    facts = body["flux_api"]
    assert facts["size"] == "768x512" and facts["prompt_model"] == "Original Prompt"
    assert facts["prompt"] == prompt.removesuffix(" 3:2")
    assert facts["image_url"].startswith(service.url + "/image/")
    assert body["choices"][0]["message"]["content"].endswith(f"({facts['image_url']})")


def test_stream_ends_with_the_same_facts(service, fake_ai):
    events = read_sse(service.chat("a fox 16:9", stream=True), time.monotonic())
    finish = [e.json for e in events if e.data and e.data != "[DONE]" and e.json["choices"]]
    facts = finish[-1]["flux_api"]
    assert finish[-1]["choices"][0]["finish_reason"] == "stop"
    assert facts["size"] == "1024x576" and facts["image_url"] in content_of(events)
