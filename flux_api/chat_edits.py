"""What a chat message makes: an edit of the images it carries; an edit of the chat's previous
image, when it is a follow-up that asks for a change (followups.py has the rule); or a new image.

A follow-up edit bills an edit the person may not have meant, so the reply says at once which
image was edited (`follow_up` in its facts, and a line); an earlier image that has expired
gives a new image, and the reply says that too. CHAT_FOLLOWUP_EDITS=false turns it off.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

from . import edits, followups
from .budget import Budget
from .memory import ImageMemory
from .optimizer import OptimizerError
from .pipeline import Pipeline, Plan

log = logging.getLogger(__name__)
_PROMPT_USED = re.compile(r"🌐 Prompt Used: (.*)")


@dataclass(frozen=True)
class ChatPlan:
    plan: Plan
    follow_up: dict | None = None  # facts for the reply: which earlier image, and what was done


def plan_chat(request, pipeline: Pipeline, base_url: str, memory: ImageMemory, budget: Budget):
    """The plan for a chat request (chat.ChatRequest) that asks for an image."""
    settings, store = pipeline.settings, pipeline.store
    if request.image_urls:  # images in the message: an edit of them
        edit = edits.from_chat(request.prompt, request.image_urls, request.model, store, settings)
        return ChatPlan(edits.plan_edit(pipeline, edit, base_url, memory, budget))
    earlier = None
    if settings.chat_followup_edits:
        earlier = followups.earlier_image(list(request.messages))
    if earlier is not None:
        follow_up = _follow_up(request, pipeline, earlier)
        if follow_up is not None:
            return _edit_of_earlier(request, pipeline, base_url, memory, budget, *follow_up)
    plan = pipeline.plan(request.prompt, request.model, base_url, context=request.attached)
    return ChatPlan(plan)


def _follow_up(request, pipeline: Pipeline, earlier: followups.EarlierImage):
    """(the earlier image, the edit's prompt) when the message asks to change it, else None.
    The optimizer decides when it is on; the documented cues when it is off, or fails."""
    prompt = request.prompt
    optimizer = pipeline.optimizer
    if optimizer is not None:
        model = pipeline.resolve_model(request.model)
        try:
            is_edit, written = optimizer.follow_up(
                _earlier_prompt(request.messages, earlier.key), prompt, model.prompt_limit
            )
        except OptimizerError as exc:
            log.warning("optimizer could not judge a follow-up (%s); using the cues", exc)
        else:
            return (earlier, written) if is_edit and written.strip() else None
    return (earlier, prompt) if followups.asks_for_change(prompt) else None


def _edit_of_earlier(request, pipeline, base_url, memory, budget, earlier, prompt) -> ChatPlan:
    own_url = f"/image/{earlier.key}"
    opened = pipeline.store.open(earlier.key)
    if opened is None:  # expired (or deleted): a new image, and the reply says so
        plan = pipeline.plan(request.prompt, request.model, base_url, context=request.attached)
        return ChatPlan(plan, {"kind": "new", "earlier_image": earlier.url, "expired": True})
    opened.file.close()
    edit = edits.from_chat(prompt, (own_url,), request.model, pipeline.store, pipeline.settings)
    plan = edits.plan_edit(pipeline, edit, base_url, memory, budget)
    if pipeline.optimizer is not None and prompt != request.prompt:  # the optimizer wrote it
        plan = replace(plan, original_prompt=request.prompt, prompt_source=pipeline.optimizer.model)
    return ChatPlan(plan, {"kind": "edit", "edited_image": earlier.url})


def _earlier_prompt(messages, key: str) -> str:
    """The prompt our earlier reply says it used, from the message that links the image."""
    for message in reversed(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if isinstance(content, str) and key in content[-100_000:]:
            found = _PROMPT_USED.search(content[-100_000:])
            return found[1].strip() if found else ""
    return ""
