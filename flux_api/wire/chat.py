"""Chat completions on top of the pipeline: the prompt from the messages, the reply text, and
its two deliveries (one JSON object, or an SSE stream fed stage by stage)."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flux_api.budget import Budget
from flux_api.conversation import messages as conversation
from flux_api.errors import invalid_request
from flux_api.events import Events, StreamClosed, StreamOpened
from flux_api.generation.pipeline import Generated, Pipeline, Plan, PromptChoice
from flux_api.wire import openai as wire
from flux_api.wire.errors import api_error_for, log_unexpected
from flux_api.wire.fields import optional


@dataclass(frozen=True)
class ChatRequest:
    prompt: str | None  # the person's own words; None when there is no user message
    model: str | None
    stream: bool
    include_usage: bool
    image_urls: tuple[str, ...] = ()  # the last user message's images: then it is an edit
    attached: str = ""  # text of files attached to it (conversation.py)
    messages: tuple = ()
    response_format: object = None


def parse_request(body: dict) -> ChatRequest:
    """The fields this service reads; the others OpenAI clients send are ignored."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("`messages` must be a non-empty list of chat messages.", "messages")
    content = _last_user_message(messages)
    model = optional(body, "model", str, "a string")
    stream = optional(body, "stream", bool, "true or false")
    options = optional(body, "stream_options", dict, "an object")
    include_usage = optional(options or {}, "include_usage", bool, "true or false")
    said = None
    if content is not None:
        systems = [m["content"] for m in messages if _is_system_text(m)]
        said = conversation.read(_text_of(content.get("content")), systems)
    return ChatRequest(
        said.text if said else None,
        model,
        stream is True,
        include_usage is True,
        _image_urls_of(content.get("content")) if content else (),
        said.attached if said else "",
        tuple(messages),
        body.get("response_format"),
    )


def carries_images(body: dict) -> bool:
    """Whether the last user message has `image_url` parts (then its body may be larger), read
    before anything else of the message is."""
    messages = body.get("messages")
    last = _last_user_message(messages) if isinstance(messages, list) else None
    content = last.get("content") if last else None
    return isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") == "image_url" for part in content
    )


def require_prompt(request: ChatRequest) -> str:
    """The person's words, or the 400 for a chat without a user message."""
    if request.prompt is None:
        raise invalid_request(
            "No `user` message found: send the image prompt as a user message.", "messages"
        )
    return request.prompt


def _last_user_message(messages: list) -> dict | None:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message
    return None


def _is_system_text(message: object) -> bool:
    return (
        isinstance(message, dict)
        and message.get("role") == "system"
        and isinstance(message.get("content"), str)
    )


def _image_urls_of(content: object) -> tuple[str, ...]:
    """The `image_url` parts' URLs (`{"image_url": {"url": …}}`, or the bare string some send)."""
    if not isinstance(content, list):
        return ()
    urls = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            if not isinstance(url, str):
                raise invalid_request("An `image_url` part needs a `url`.", "messages")
            urls.append(url)
    return tuple(urls)


def _text_of(content: object) -> str:
    text = conversation.text_of(content)
    if text is not None:
        return text
    raise invalid_request(
        "The user message's `content` must be a string or a list of parts.", "messages"
    )


# The facts of a reply as data, beside its prose, in a field OpenAI clients ignore: pages and
# scripts read these instead of parsing the wording.
FACTS_FIELD = "flux_api"


class Reply:
    """The reply's lines, produced stage by stage, so a stream and a JSON answer say the same;
    and the same facts as data (`facts`)."""

    def __init__(self, plan: Plan, follow_up: dict | None = None):
        self.plan = plan
        self.follow_up = follow_up
        self.pieces: list[str] = []
        width, height = plan.size
        self.facts: dict = {"original_prompt": plan.original_prompt, "size": f"{width}x{height}"}
        if plan.images:
            self.facts["input_images"] = len(plan.images)
        if follow_up:
            self.facts["follow_up"] = follow_up

    def _add(self, *pieces: str) -> list[str]:
        self.pieces.extend(pieces)
        return list(pieces)

    def start(self) -> list[str]:
        lines = [f"🎨 Original Prompt: {self.plan.original_prompt}\n"]
        if self.follow_up and self.follow_up["kind"] == "edit":
            edited, model = self.follow_up["edited_image"], self.plan.model.short_name
            lines.append(f"✏️ Editing [the previous image]({edited}) with {model}\n")
        elif self.follow_up:
            lines.append("🆕 The previous image has expired, so this is a new image.\n")
        if self.plan.images:
            lines.append(f"🖼️ Reference Images: {len(self.plan.images)}\n")
        return self._add(*lines)

    def on(self, event: PromptChoice | Generated) -> list[str]:
        if isinstance(event, PromptChoice):
            self.facts.update(prompt=event.prompt, prompt_model=event.source)
            width, height = self.plan.size
            return self._add(
                f"💬 Prompt Generation Model: {event.source}\n",
                f"🌐 Prompt Used: {event.prompt}\n",
                f"📐 Image Specifications: {width}x{height}\n",
            )
        url = event.stored[0].url
        self.facts["image_url"] = url
        return self._add("🌟 Image generation successful!\n\n", f"![Generated image]({url})")

    @property
    def content(self) -> str:
        return "".join(self.pieces)


def complete(pipeline: Pipeline, plan: Plan, budget: Budget, follow_up: dict | None = None) -> dict:
    reply = Reply(plan, follow_up)
    reply.start()
    for event in pipeline.run(plan, budget=budget):
        reply.on(event)
    answer = wire.completion(
        wire.completion_id(), plan.model.id, reply.content, wire.usage(plan.prompt, reply.content)
    )
    return {**answer, FACTS_FIELD: reply.facts}


def stream(
    pipeline: Pipeline,
    plan: Plan,
    budget: Budget,
    *,
    include_usage: bool,
    heartbeat: float,
    follow_up: dict | None = None,
    generation_done: Callable[[], None] = lambda: None,
) -> Iterator[str]:
    """SSE frames: role, each stage's lines as they are ready, keep-alives while waiting,
    then finish (or an in-band error), optional usage, and [DONE]. `generation_done` is called
    when the generation behind them has ended, which may be after the stream was closed.

    A client that leaves is noticed at the next keep-alive at the latest (the write fails, or
    its socket shows it closed); the generation then stops before its next paid step. The
    stream is announced while it is held (events.StreamOpened, then StreamClosed)."""
    # Started now, in the request's context (its id goes along), not at the first frame.
    events = pipeline.run_in_background(plan, budget, generation_done)
    reply = Reply(plan, follow_up)
    held = _Held(pipeline.events, StreamOpened())  # made now, while the caller is known
    return _frames(reply, events, budget, include_usage, heartbeat, held)


@dataclass(frozen=True)
class _Held:
    """Where a stream is announced, and its opening (made while its request is served: the
    frames are written once Flask has let go of the request and its caller)."""

    events: Events
    opened: StreamOpened


def _frames(
    reply: Reply,
    events: queue.Queue,
    budget: Budget,
    include_usage: bool,
    heartbeat: float,
    held: _Held,
) -> Iterator[str]:
    plan = reply.plan
    cid, model = wire.completion_id(), plan.model.id
    finished = False
    held.events.announce(held.opened)
    try:
        yield wire.sse_json(wire.chunk(cid, model, {"role": "assistant", "content": ""}))
        for piece in reply.start():
            yield wire.sse_json(wire.chunk(cid, model, {"content": piece}))
        while True:
            try:
                event = events.get(timeout=heartbeat)
            except queue.Empty:
                if budget.client_left:
                    return
                yield wire.keep_alive()
                continue
            if isinstance(event, BaseException):
                error = api_error_for(event)
                if error.status == 500:  # a bug in the generation: logged here, once
                    log_unexpected(event)
                line = f"\n\n❌ Image generation failed: {error.message}"
                yield wire.sse_json(wire.chunk(cid, model, {"content": line}))
                yield wire.sse_json(error.body())
                yield wire.DONE
                finished = True
                return
            for piece in reply.on(event):
                yield wire.sse_json(wire.chunk(cid, model, {"content": piece}))
            if isinstance(event, Generated):
                break
        usage = wire.usage(plan.prompt, reply.content)
        yield from _closing(cid, model, usage, include_usage, facts=reply.facts)
        finished = True
    finally:
        if not finished:  # closed by the server because the client went away
            budget.leave()
        held.events.announce(StreamClosed(finished, held.opened.caller))


def text_completion(model: str, prompt: str, text: str) -> dict:
    """A plain text answer (no image), in the same shape as an image reply."""
    return wire.completion(wire.completion_id(), model, text, wire.usage(prompt, text))


def stream_text(model: str, prompt: str, text: str, *, include_usage: bool) -> Iterator[str]:
    cid = wire.completion_id()
    yield wire.sse_json(wire.chunk(cid, model, {"role": "assistant", "content": ""}))
    yield wire.sse_json(wire.chunk(cid, model, {"content": text}))
    yield from _closing(cid, model, wire.usage(prompt, text), include_usage)


def _closing(
    cid: str, model: str, usage: dict, include_usage: bool, facts: dict | None = None
) -> Iterator[str]:
    last = wire.chunk(cid, model, {}, finish_reason="stop")
    if facts is not None:
        last[FACTS_FIELD] = facts
    yield wire.sse_json(last)
    if include_usage:
        yield wire.sse_json(wire.usage_chunk(cid, model, usage))
    yield wire.DONE
