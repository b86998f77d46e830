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

from flux_api.budget import Budget
from flux_api.conversation import followups
from flux_api.conversation.messages import text_of
from flux_api.generation.memory import ImageMemory
from flux_api.generation.pipeline import Pipeline, Plan
from flux_api.upstream.optimizer import OptimizerError
from flux_api.wire import edits

log = logging.getLogger(__name__)
_PROMPT_USED = re.compile(r"🌐 Prompt Used: (.*)")


@dataclass(frozen=True)
class ChatPlan:
    plan: Plan
    follow_up: dict | None = None  # facts for the reply: which earlier image, and what was done


def plan_chat(
    request,
    pipeline: Pipeline,
    base_url: str,
    memory: ImageMemory,
    budget: Budget,
    before_optimizer=lambda: None,
) -> ChatPlan:
    """The plan for a chat request (chat.ChatRequest) that asks for an image.
    `before_optimizer` runs before the optimizer is asked to judge a follow-up (a paid call:
    the view counts it against RATE_LIMIT there)."""
    settings, store = pipeline.settings, pipeline.store
    if request.image_urls:  # images in the message: an edit of them
        edit = edits.from_chat(request.prompt, request.image_urls, request.model, store, settings)
        return ChatPlan(edits.plan_edit(pipeline, edit, base_url, memory, budget))
    earlier = None
    if settings.chat_followup_edits and settings.default_edit_model is not None:
        earlier = followups.earlier_image(list(request.messages))
    plan = pipeline.plan(request.prompt, request.model, base_url, context=request.attached)
    if earlier is None:
        return ChatPlan(plan)
    opened = store.open(earlier.key)
    if opened is None:  # expired (or deleted): a new image, if the message asked for a change
        if not followups.asks_for_change(request.prompt):
            return ChatPlan(plan)
        return ChatPlan(plan, {"kind": "new", "earlier_image": earlier.url, "expired": True})
    with opened.file:  # read only if it is an edit, and then once
        is_edit, prompt, source = _judged(request, pipeline, earlier, plan, before_optimizer)
        if not is_edit:
            return ChatPlan(replace(plan, prompt=prompt, prompt_source=source) if source else plan)
        stored = opened.file.read()
    edit = edits.edit_of(prompt, [stored], request.model)
    edited = edits.plan_edit(pipeline, edit, base_url, memory, budget)
    if source:  # the optimizer wrote the edit: it is not rewritten, and the person's words show
        edited = replace(edited, original_prompt=request.prompt, prompt_source=source)
    return ChatPlan(edited, {"kind": "edit", "edited_image": earlier.url})


def _judged(request, pipeline: Pipeline, earlier, plan: Plan, before_optimizer):
    """(is it an edit of the earlier image, the prompt to use, who wrote it or None). The
    optimizer decides when it is on; the documented cues when it is off, or fails."""
    optimizer = pipeline.optimizer
    if optimizer is not None:
        before_optimizer()
        try:
            is_edit, written = optimizer.follow_up(
                _earlier_prompt(request.messages, earlier.key),
                request.prompt,
                plan.model.prompt_limit,
            )
        except OptimizerError as exc:
            log.warning("optimizer could not judge a follow-up (%s); using the cues", exc)
        else:
            if written.strip():
                return is_edit, written, optimizer.model
    return followups.asks_for_change(request.prompt), request.prompt, None


def _earlier_prompt(messages, key: str) -> str:
    """The prompt our earlier reply says it used, from the message that links the image."""
    for message in reversed(messages):
        content = text_of(message.get("content")) if isinstance(message, dict) else None
        if content is not None and key in content[-100_000:]:
            found = _PROMPT_USED.search(content[-100_000:])
            return found[1].strip() if found else ""
    return ""
