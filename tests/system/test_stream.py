"""stream: true — progress as it happens, keep-alives while waiting, errors in-band."""

import itertools
import time
from concurrent.futures import ThreadPoolExecutor

from tests.support.fakes.workers_ai import Scripted
from tests.support.service import content_of, read_sse


def stream_chat(service, content, **body):
    started = time.monotonic()
    response = service.chat(content, stream=True, **body)
    return response, started


def test_stream_headers_say_event_stream_unbuffered(service, fake_ai):
    response, _ = stream_chat(service, "a fox")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_stream_sends_role_first_then_lines_then_stop_then_done(service, fake_ai):
    response, started = stream_chat(service, "a fox 16:9")
    events = [e for e in read_sse(response, started) if e.data]
    first = events[0].json
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert events[-1].data == "[DONE]"
    finish = events[-2].json["choices"][0]
    assert finish["finish_reason"] == "stop" and finish["delta"] == {}
    assert all(e.json["choices"][0]["finish_reason"] is None for e in events[:-2])
    assert len({e.json["id"] for e in events[:-1]}) == 1


def test_streamed_content_equals_the_plain_reply_apart_from_the_image_key(service, fake_ai):
    response, started = stream_chat(service, "a fox 16:9")
    streamed = content_of(read_sse(response, started))
    plain = service.chat("a fox 16:9").json()["choices"][0]["message"]["content"]
    assert streamed.rsplit("/image/", 1)[0] == plain.rsplit("/image/", 1)[0]
    assert "📐 Image Specifications: 1024x576" in streamed
    url = streamed.rsplit("(", 1)[1].rstrip(")")
    assert service.get(url[len(service.url) :], key=None).status_code == 200


def test_progress_arrives_before_the_slow_upstream_finishes(service, fake_ai):
    fake_ai.latency = 1.5
    response, started = stream_chat(service, "a fox")
    events = read_sse(response, started)
    by_text = {
        e.json["choices"][0]["delta"].get("content", ""): e.at
        for e in events
        if e.data and e.data != "[DONE]" and e.json.get("choices")
    }
    original = next(at for text, at in by_text.items() if text.startswith("🎨"))
    size = next(at for text, at in by_text.items() if text.startswith("📐"))
    done = next(at for text, at in by_text.items() if text.startswith("🌟"))
    assert original < 1.0 and size < 1.0
    assert done >= 1.5


def test_keep_alive_comments_while_waiting_on_the_upstream(service, fake_ai):
    fake_ai.latency = 1.5  # STREAM_HEARTBEAT is 0.3 s in the tests
    response, started = stream_chat(service, "a fox")
    events = read_sse(response, started)
    keep_alives = [e.at for e in events if e.comment == "keep-alive"]
    assert len(keep_alives) >= 3
    gaps = [b - a for a, b in itertools.pairwise(keep_alives)]
    assert max(gaps) < 0.3 * 2


def test_usage_chunk_only_when_asked(service, fake_ai):
    response, started = stream_chat(service, "a fox", stream_options={"include_usage": True})
    events = [e for e in read_sse(response, started) if e.data]
    usage_event = events[-2].json
    assert usage_event["choices"] == []
    assert usage_event["usage"]["total_tokens"] > 0
    assert events[-3].json["choices"][0]["finish_reason"] == "stop"

    response, started = stream_chat(service, "a fox")
    assert all(
        "usage" not in e.json for e in read_sse(response, started) if e.data and e.data != "[DONE]"
    )


def test_failure_after_the_first_byte_is_a_line_then_an_error_frame_then_done(service, fake_ai):
    fake_ai.script(
        Scripted(
            400, 3030, "AiError: Your output has been flagged for potential NSFW content (abc-123)"
        )
    )
    response, started = stream_chat(service, "a fox")
    assert response.status_code == 200
    events = [e for e in read_sse(response, started) if e.data]
    assert events[-1].data == "[DONE]"
    error = events[-2].json["error"]
    assert error["code"] == "content_policy_violation"
    assert error["type"] == "invalid_request_error"
    text = content_of(events)
    assert "❌ Image generation failed: " + error["message"] in text
    assert "🌟" not in text
    # the same body the HTTP error would have had
    fake_ai.script(
        Scripted(
            400, 3030, "AiError: Your output has been flagged for potential NSFW content (abc-123)"
        )
    )
    assert service.chat("a fox").json() == {"error": error}


def test_failure_before_the_first_byte_is_an_ordinary_http_error(service, fake_ai):
    response = service.chat("a fox 10:1", stream=True)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert "1:4 to 4:1" in response.json()["error"]["message"]


def test_stream_error_frame_for_an_unreachable_upstream(start_service, fake_ai):
    service = start_service(CF_API_BASE="http://127.0.0.1:9/client/v4/accounts/{account_id}/ai/run")
    response, started = stream_chat(service, "a fox")
    events = [e for e in read_sse(response, started) if e.data]
    assert events[-2].json["error"]["code"] == "upstream_unavailable"
    assert events[-1].data == "[DONE]"


def test_concurrent_streams_generate_at_the_same_time(service, fake_ai):
    fake_ai.latency = 1.0
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        texts = list(pool.map(lambda i: service.chat(f"fox {i}", stream=True).text, range(20)))
    assert time.monotonic() - started < 3.0  # twenty 1-second generations, not one after another
    assert all(text.endswith("data: [DONE]\n\n") and "🌟" in text for text in texts)
