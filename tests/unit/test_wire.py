"""SSE frames and OpenAI shapes, tested directly."""

import json

from flux_api.wire import openai as wire


def test_data_frame_ends_with_a_blank_line():
    assert wire.SSEFrame(data="hello").encode() == "data: hello\n\n"


def test_multiline_data_is_split_into_data_lines():
    assert wire.SSEFrame(data="a\nb").encode() == "data: a\ndata: b\n\n"


def test_keep_alive_is_a_comment_clients_ignore():
    assert wire.keep_alive() == ": keep-alive\n\n"


def test_sse_json_keeps_unicode_readable_and_parses_back():
    frame = wire.sse_json({"content": "🎨 猫"})
    assert frame.startswith("data: ") and frame.endswith("\n\n")
    assert "🎨 猫" in frame
    assert json.loads(frame[len("data: ") :]) == {"content": "🎨 猫"}


def test_chunk_and_completion_have_openai_shapes():
    chunk = wire.chunk("id1", "m", {"role": "assistant"})
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["choices"][0] == {
        "index": 0,
        "delta": {"role": "assistant"},
        "finish_reason": None,
    }
    usage = wire.usage("abcd" * 3, "x" * 9)
    assert usage == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    done = wire.completion("id1", "m", "hi", usage)
    assert done["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    assert done["usage"] == usage


def test_model_ids_are_unique_and_prefixed():
    assert wire.completion_id() != wire.completion_id()
    assert wire.completion_id().startswith("chatcmpl-")
