"""Background prompts of NextChat, LobeChat, ChatBox, LibreChat and Cherry Studio (the texts in
flux_api/conversation/client_prompts.json, read from each client's source) are answered in the
shape the client reads, from the chat's own prompts, and never reach Workers AI."""

from __future__ import annotations

import json

import pytest

from flux_api.conversation.client_prompts import all_prompts
from tests.support.service import content_of, read_sse

FIRST = "a red fox sleeping in deep snow 16:9"
SECOND = "a lighthouse at dawn"
REPLY = (
    "🎨 Original Prompt: …\n\n![Generated image](http://gw.example/image/AAAAAAAAAAAAAAAAAAAAAAAA)"
)


def history() -> list[dict]:
    return [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": REPLY},
        {"role": "user", "content": SECOND},
        {"role": "assistant", "content": REPLY},
    ]


def request_for(prompt) -> list[dict]:
    """The messages the client sends with this prompt, shaped as its source sends them."""
    if prompt.history == "tagged":  # LobeChat: the conversation in the user message
        conversation = f"<user>\n{FIRST}\n</user>\n<assistant>\n{REPLY}\n</assistant>"
        return [
            {"role": "system", "content": prompt.text + "\nRules:\n- Maximum 15 words"},
            {
                "role": "user",
                "content": f"<task>\n…\n</task>\n\n<conversation>\n{conversation}\n</conversation>",
            },
        ]
    if prompt.history == "labelled":  # LibreChat: "User: …\nAI: …"
        convo = f"Conversation:\nUser: {FIRST}\nAI: {REPLY}"
        if prompt.role == "system":
            return [
                {"role": "system", "content": f"{prompt.text} Title in 5 Words or Less.\n{convo}"},
                {"role": "user", "content": "Language: English"},
            ]
        return [{"role": "user", "content": f"{prompt.text}\n\n{convo}"}]
    if prompt.history == "fenced":  # ChatBox: messages in a fence, split by dashes
        chunks = "\n\n---------\n\n".join([FIRST, REPLY[:100], SECOND])
        return [
            {
                "role": "user",
                "content": f"{prompt.text}\nThe conversation:\n```\n{chunks}\n```\nThe name is:",
            }
        ]
    if prompt.history == "json":  # Cherry Studio: a JSON array of the last messages
        items = [{"role": "user", "mainText": FIRST}, {"role": "assistant", "mainText": "…"}]
        return [
            {"role": "system", "content": prompt.text.replace("{{language}}", "English")},
            {"role": "user", "content": json.dumps(items, ensure_ascii=False)},
        ]
    instruction = {"role": prompt.role, "content": prompt.text}
    if prompt.role == "system" and prompt.where == "any":  # first, before the conversation
        return [instruction, *history(), {"role": "user", "content": SECOND}]
    return [*history(), instruction]  # after the history (NextChat puts it last)


def ask(service, messages, **body):
    response = service.post("/v1/chat/completions", {"messages": messages, **body})
    assert response.status_code == 200, response.text
    if body.get("stream"):
        return content_of(read_sse(response, 0.0))
    return response.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    "prompt", all_prompts(), ids=lambda p: f"{p.client}-{p.kind}-{p.locale or p.text[:20]}"
)
def test_every_client_prompt_is_answered_without_an_image(service, fake_ai, prompt):
    answer = ask(service, request_for(prompt), stream=prompt.kind == "summary")
    assert fake_ai.calls == []
    assert answer and "/image/" not in answer
    if prompt.kind == "title":
        assert "red fox" in answer and "16:9" not in answer
    if prompt.kind == "summary" and prompt.history == "messages":
        assert "a red fox sleeping in deep snow" in answer and SECOND in answer


def test_nextchat_title_is_a_few_words_of_the_first_prompt(service, fake_ai):
    topic = next(p for p in all_prompts() if p.client == "NextChat" and p.kind == "title")
    assert ask(service, request_for(topic)) == "a red fox sleeping"


def test_nextchat_summary_comes_after_a_real_prompt_and_is_still_no_image(service, fake_ai):
    """Its instruction is a system message after the history: the last user message is a real
    prompt, which must not be generated again."""
    summary = next(p for p in all_prompts() if p.client == "NextChat" and p.kind == "summary")
    messages = [
        *history(),
        {"role": "user", "content": "a castle"},
        {"role": "system", "content": summary.text},
    ]
    answer = ask(service, messages, stream=True)
    assert "a castle" in answer and fake_ai.calls == []


def test_a_summary_recap_in_a_normal_request_still_makes_the_image(service, fake_ai):
    recap = "This is a summary of the chat history as a recap: Images made: a fox."
    ask(service, [{"role": "system", "content": recap}, {"role": "user", "content": "a castle"}])
    assert len(fake_ai.calls) == 1


def test_a_title_prompt_earlier_in_the_chat_does_not_make_the_next_prompt_a_title(service, fake_ai):
    topic = next(p for p in all_prompts() if p.client == "NextChat" and p.kind == "title")
    messages = [{"role": "user", "content": topic.text}, {"role": "assistant", "content": "Fox"}]
    ask(service, [*messages, {"role": "user", "content": "a castle"}])
    assert len(fake_ai.calls) == 1


def test_lobechat_structured_title_follows_its_json_schema(service, fake_ai):
    title = next(p for p in all_prompts() if p.client == "LobeChat" and p.kind == "title")
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "required": ["title"],
        "additionalProperties": False,
    }
    answer = ask(
        service,
        request_for(title),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "topic_title", "schema": schema},
        },
    )
    assert json.loads(answer) == {"title": "a red fox sleeping"}
    assert fake_ai.calls == []


def test_librechat_structured_title_gives_language_and_title(service, fake_ai):
    title = next(p for p in all_prompts() if p.text.startswith("Analyze this conversation"))
    schema = {
        "type": "object",
        "properties": {"language": {"type": "string"}, "title": {"type": "string"}},
    }
    answer = ask(
        service,
        request_for(title),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "extract", "schema": schema},
        },
    )
    assert json.loads(answer) == {"language": "English", "title": "a red fox sleeping"}


def test_chatbox_search_routing_proceeds_without_searching(service, fake_ai):
    route = next(p for p in all_prompts() if p.kind == "search")
    assert json.loads(ask(service, request_for(route))) == {"action": "proceed"}


def test_open_webui_function_calling_chooses_no_tool(service, fake_ai):
    tools = next(p for p in all_prompts() if p.kind == "tools")
    messages = [
        {
            "role": "system",
            "content": tools.text + "[]\n\nYour task is to choose and return the correct tool(s)",
        },
        {"role": "user", "content": "Query: a castle"},
    ]
    assert json.loads(ask(service, messages)) == {"tool_calls": []}
    assert fake_ai.calls == []


def test_a_system_message_alone_is_answered_when_it_is_a_client_prompt(service, fake_ai):
    cherry = next(p for p in all_prompts() if p.client == "Cherry Studio" and p.kind == "title")
    assert ask(service, [{"role": "system", "content": cherry.text}]) == "Image generation"
    unknown = service.post(
        "/v1/chat/completions", {"messages": [{"role": "system", "content": "hi"}]}
    )
    assert unknown.status_code == 400 and "user" in unknown.json()["error"]["message"]


def test_client_prompts_are_generated_when_skipping_is_off(start_service, fake_ai):
    service = start_service(SKIP_TASK_PROMPTS="false")
    topic = next(p for p in all_prompts() if p.client == "NextChat" and p.kind == "title")
    ask(service, request_for(topic))
    assert len(fake_ai.calls) == 1


def test_with_the_optimizer_its_llm_writes_the_title(
    start_service, fake_ai, fake_optimizer, optimizer_env
):
    service = start_service(**optimizer_env)
    fake_optimizer.answer = "Fox In Snow"
    topic = next(p for p in all_prompts() if p.client == "NextChat" and p.kind == "title")
    assert ask(service, request_for(topic)) == "Fox In Snow"
    (call,) = fake_optimizer.calls
    sent = call["body"]["messages"][-1]["content"]
    assert "a red fox sleeping in deep snow" in sent and SECOND in sent
    assert fake_ai.calls == []


def test_with_the_optimizer_its_llm_writes_the_summary(
    start_service, fake_ai, fake_optimizer, optimizer_env
):
    service = start_service(**optimizer_env)
    fake_optimizer.answer = "A fox in snow, then a lighthouse at dawn."
    summary = next(p for p in all_prompts() if p.client == "NextChat" and p.kind == "summary")
    assert ask(service, request_for(summary), stream=True) == fake_optimizer.answer
    assert fake_ai.calls == []


def test_an_optimizer_that_fails_still_gets_a_title_from_the_prompts(
    start_service, fake_ai, fake_optimizer, optimizer_env
):
    service = start_service(**optimizer_env)
    fake_optimizer.mode = "error"
    topic = next(p for p in all_prompts() if p.client == "NextChat" and p.kind == "title")
    assert ask(service, request_for(topic)) == "a red fox sleeping"
