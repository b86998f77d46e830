"""Follow-ups edit the chat's previous image: "make it blue" after a barn is the barn, blue; a new
description is a new image. In each history shape clients send (Open WebUI's captures, NextChat,
LibreChat), counting Workers AI calls and the reference images sent."""

from __future__ import annotations

import json

import requests

from tests.support.captures import capture, with_own_keys
from tests.support.service import API_KEY, content_of, read_sse

EDIT_MODEL = "@cf/black-forest-labs/flux-2-klein-4b"


def ask(service, messages: list, stream: bool = False, **body):
    response = service.post(
        "/v1/chat/completions", {"messages": messages, "stream": stream, **body}
    )
    assert response.status_code == 200, response.text
    if stream:
        events = read_sse(response, 0.0)
        facts = next(e.json["flux_api"] for e in events if e.data and "flux_api" in e.data)
        return content_of(events), facts
    answer = response.json()
    return answer["choices"][0]["message"]["content"], answer["flux_api"]


def first_reply(service) -> tuple[str, str]:
    """A barn, as the service answered it: (the reply's content, its image URL)."""
    content, facts = ask(service, [{"role": "user", "content": "a red barn in a wheat field"}])
    return content, facts["image_url"]


def open_webui_history(content: str, follow_up: str) -> list:
    return [
        {"role": "user", "content": "a red barn in a wheat field"},
        {"role": "assistant", "content": content},
        {"role": "user", "content": follow_up},
    ]


def test_open_webui_follow_ups_edit_the_barn(service, fake_ai):
    for name in ("chat-follow-up-edit-legacy.json", "chat-follow-up-edit-native.json"):
        body = with_own_keys(capture(name), service)
        fake_ai.calls.clear()
        response = service.post("/v1/chat/completions", body)
        content = content_of(read_sse(response, 0.0))
        (call,) = fake_ai.calls
        assert call["model"] == EDIT_MODEL and len(call["references"]) == 1
        assert call["fields"]["prompt"] == "make it blue"
        assert "✏️ Editing [the previous image](http" in content and EDIT_MODEL[-14:] in content


def test_a_follow_up_says_which_image_it_edits(service, fake_ai):
    content, url = first_reply(service)
    reply, facts = ask(service, open_webui_history(content, "make the sky purple"))
    assert facts["follow_up"] == {"kind": "edit", "edited_image": url}
    assert f"✏️ Editing [the previous image]({url}) with flux-2-klein-4b" in reply
    assert len(fake_ai.calls) == 2 and len(fake_ai.calls[1]["references"]) == 1


def test_a_new_description_is_a_new_image(service, fake_ai):
    content, _ = first_reply(service)
    reply, facts = ask(service, open_webui_history(content, "a lighthouse on a cliff"))
    assert "follow_up" not in facts and "Editing" not in reply
    assert "references" not in fake_ai.calls[1]


def test_an_expired_earlier_image_gives_a_new_image_and_says_so(service, fake_ai):
    content, url = first_reply(service)
    requests.delete(url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    reply, facts = ask(service, open_webui_history(content, "make it blue"), stream=True)
    assert facts["follow_up"] == {"kind": "new", "earlier_image": url, "expired": True}
    assert "The previous image has expired" in reply
    assert "references" not in fake_ai.calls[1]


def test_an_image_attached_this_turn_is_edited_not_the_earlier_one(service, fake_ai):
    content, _ = first_reply(service)
    attached = capture("chat-image-attached.json")["messages"][-1]["content"]
    history = open_webui_history(content, "x")[:2] + [{"role": "user", "content": attached}]
    _, facts = ask(service, history)
    assert "follow_up" not in facts
    ((_, width, height, _),) = fake_ai.calls[1]["references"]
    assert (width, height) == (512, 384)  # sun.png, 800x600, fitted to 512: not the barn


def test_follow_up_edits_can_be_turned_off(start_service, fake_ai):
    service = start_service(CHAT_FOLLOWUP_EDITS="false")
    content, _ = first_reply(service)
    _, facts = ask(service, open_webui_history(content, "make it blue"))
    assert "follow_up" not in facts and "references" not in fake_ai.calls[1]


def test_nextchat_history_shape(service, fake_ai):
    """NextChat sends its own system prompt first and each reply as the string it showed."""
    content, url = first_reply(service)
    messages = [
        {
            "role": "system",
            "content": "\nYou are ChatGPT, a large language model trained by OpenAI.",
        },
        *open_webui_history(content, "add a hat"),
    ]
    _, facts = ask(service, messages, stream=True)
    assert facts["follow_up"]["edited_image"] == url
    assert len(fake_ai.calls[1]["references"]) == 1


def test_librechat_history_shape(service, fake_ai):
    """LibreChat's OpenAI endpoint sends each message as text parts."""
    content, url = first_reply(service)
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a red barn in a wheat field"}]},
        {"role": "assistant", "content": [{"type": "text", "text": content}]},
        {"role": "user", "content": [{"type": "text", "text": "now at night"}]},
    ]
    _, facts = ask(service, messages)
    assert facts["follow_up"]["edited_image"] == url


def test_with_the_optimizer_it_decides_and_writes_the_edit(
    start_service, fake_ai, fake_optimizer, optimizer_env
):
    service = start_service(**optimizer_env)
    content, url = first_reply(service)
    fake_optimizer.answer = json.dumps({"edit": True, "prompt": "Repaint the barn in deep blue."})
    fake_optimizer.calls.clear()
    reply, facts = ask(service, open_webui_history(content, "hmm, blue would be nicer"))
    assert facts["follow_up"]["edited_image"] == url
    assert fake_ai.calls[1]["fields"]["prompt"] == "Repaint the barn in deep blue."
    assert len(fake_optimizer.calls) == 1  # the edit prompt it wrote is not rewritten again
    assert "Original Prompt: hmm, blue would be nicer" in reply


def test_with_the_optimizer_a_new_picture_stays_new(
    start_service, fake_ai, fake_optimizer, optimizer_env
):
    service = start_service(**optimizer_env)
    content, _ = first_reply(service)
    fake_optimizer.answer = json.dumps({"edit": False, "prompt": "A lighthouse."})
    _, facts = ask(service, open_webui_history(content, "make it blue"))
    assert "follow_up" not in facts and "references" not in fake_ai.calls[1]


def test_an_optimizer_that_fails_leaves_the_decision_to_the_cues(
    start_service, fake_ai, fake_optimizer, optimizer_env
):
    service = start_service(**optimizer_env)
    content, _ = first_reply(service)
    fake_optimizer.mode = "error"
    _, facts = ask(service, open_webui_history(content, "make it blue"))
    assert facts["follow_up"]["kind"] == "edit"


def legacy_chat(follow_up: str) -> list:
    """Open WebUI in legacy mode made the image itself and keeps it: the history has only the
    text of its notes' answers (as captured through a proxy by the real Open WebUI)."""
    from flux_api.conversation.background import _NOTE_REPLIES

    return [
        {"role": "user", "content": "a blue boat on a lake"},
        {"role": "assistant", "content": _NOTE_REPLIES["created"]},
        {"role": "user", "content": follow_up},
    ]


def test_a_change_of_an_image_open_webui_keeps_is_not_a_new_billed_image(service, fake_ai):
    response = service.post("/v1/chat/completions", {"messages": legacy_chat("make it green")})
    assert response.status_code == 200
    assert "turn the Image button on" in response.json()["choices"][0]["message"]["content"]
    assert fake_ai.calls == []


def test_a_new_picture_after_open_webui_made_one_is_made(service, fake_ai):
    _reply, facts = ask(service, legacy_chat("a cat sleeping on a sofa"))
    assert len(fake_ai.calls) == 1 and "image_url" in facts
