"""The page, health, models, chat completions and stored images: thin views that parse and bound
input, call the pipeline, shape replies (the Images API is in images_api.py)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import wrap_file

from flux_api.accounts.pool import usable_count
from flux_api.conversation import background
from flux_api.errors import APIError
from flux_api.generation.sizes import COMMON_RATIOS
from flux_api.web import admission, openapi
from flux_api.web import chat_plan as chat_edits
from flux_api.web.auth import presents_key
from flux_api.web.image_files import STORE_FAILED, image_headers
from flux_api.web.requests_in import (
    allow_uploads,
    json_body,
    may_spend,
    public_base_url,
    request_budget,
    services,
    spend,
    text_body_limit,
)
from flux_api.wire import chat
from flux_api.wire import openai as wire

bp = Blueprint("api", __name__)
_STARTED = int(time.time())


@bp.get("/")
def index():
    settings, store = services().settings, services().store
    store_state = store.health()
    accounts = services().accounts.report(read=store_state != store.UNHEALTHY)
    return render_template(
        "index.html",
        settings=settings,
        store_ok=store_state == "writable",
        store_full=store_state == "full",
        accounts=accounts,
        usable_accounts=usable_count(accounts),
        base_url=public_base_url(),
        optimizer_on=services().pipeline.optimizer is not None,
        ratios=COMMON_RATIOS,
    )


@bp.get("/favicon.ico")
def favicon():
    """The page's icon, for what asks for it the old way (an image or JSON opened on its own)."""
    return current_app.send_static_file("favicon.ico")


@bp.get("/healthz")
def healthz():
    """For load balancers and monitors, no secrets. 503 only when this node cannot keep an image
    (store unwritable, unreachable or full): another node may. No usable account is "degraded"
    but 200, as all nodes share the accounts: for a monitor to alert on, with a "reason"."""
    settings, store = services().settings, services().store
    store_state = store.health()  # "writable", "full" (Redis's maxmemory) or store.UNHEALTHY
    writable = store_state == "writable"
    accounts = services().accounts.report(read=store_state != store.UNHEALTHY)
    usable = usable_count(accounts)
    reason = None
    if not settings.cloudflare_configured:
        reason = "no Cloudflare credentials: set CF_ACCOUNT_ID and CF_API_TOKEN (or CF_ACCOUNTS)"
    elif accounts and not usable:
        reason = "no Cloudflare account is usable now (daily allocation used or token refused)"
    body: dict = {
        "status": ("degraded" if reason else "ok") if writable else "unavailable",
        **({"reason": reason} if reason else {}),
        "store": store_state,
        "cloudflare": "configured" if settings.cloudflare_configured else "missing",
        "accounts": accounts,
        "usable_accounts": usable,
        "prompt_optimization": "on" if settings.prompt_optimization else "off",
        "default_model": settings.flux_model,
    }
    if store_state != store.UNHEALTHY:  # the ledger lives with the store: do not wait on it
        share = services().ledger.pool_share_today()
        if share is not None:  # of the pool's daily allocation, for a monitor to alert on
            body["pool_share_today"] = share
    if writable and presents_key(services().api_keys):  # how busy it is: for the operator only
        body["images_stored"] = len(store)
    return jsonify(body), 200 if writable else 503


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(openapi.document(services().settings))


def model_object(model) -> dict:
    """OpenAI's model object, with what the model can do in a field clients ignore."""
    abilities = {
        "text_to_image": model.makes_from_text,
        "edits": model.edit_input is not None,
        "max_input_images": model.max_images,
    }
    return {**wire.model_object(model.id, model.owned_by, _STARTED), "flux_api": abilities}


@bp.get("/v1/models")
def list_models():
    return jsonify(wire.model_list([model_object(m) for m in services().settings.models]))


@bp.get("/v1/models/<path:model_id>")
def get_model(model_id: str):
    for model in services().settings.models:
        if model_id in (model.id, model.short_name):
            return jsonify(model_object(model))
    raise APIError(
        404,
        f"The model {model_id!r} does not exist; GET /v1/models lists them.",
        code="model_not_found",
    )


@bp.post("/v1/chat/completions")
def chat_completions():
    allow_uploads()  # a message may carry images, as data URLs…
    body = json_body()
    if not chat.carries_images(body) and g.body_size > services().settings.max_body_kb * 1024:
        text_body_limit()
        raise RequestEntityTooLarge()  # …but text alone keeps to MAX_BODY_KB
    request_ = chat.parse_request(body)
    pipeline, settings = services().pipeline, services().settings
    text = _text_answer(request_, pipeline, settings)
    if text is not None:
        return text
    chat.require_prompt(request_)
    budget = request_budget()

    def before_optimizer() -> None:  # it is paid too: counted, and only if an image can follow
        spend(1)
        pipeline.check_upstream()

    memory = services().image_memory
    chosen = chat_edits.plan_chat(
        request_, pipeline, public_base_url(), memory, budget, before_optimizer
    )
    plan = chosen.plan
    g.model = plan.model.short_name
    spend(1)
    pipeline.admit(plan)
    if not request_.stream:
        return jsonify(chat.complete(pipeline, plan, budget, chosen.follow_up))
    return event_stream(
        chat.stream(
            pipeline,
            plan,
            budget,
            include_usage=request_.include_usage,
            heartbeat=settings.stream_heartbeat,
            follow_up=chosen.follow_up,
            # Its admission slot stays taken until the generation ends, client gone or not.
            generation_done=admission.keep_slot(request.environ),
        )
    )


def _text_answer(request_, pipeline, settings) -> Response | None:
    """The answer to a chat request that asks for no image (background.py), or None."""
    # The client has made the image itself (Open WebUI's legacy mode):
    text = background.note(request_.messages, settings.chat_followup_edits)
    if text is None and settings.skip_task_prompts:
        # With the optimizer on, its LLM writes titles and summaries: a paid call, counted
        # against RATE_LIMIT; over it, they are made from the prompts for free.
        text = background.answer(
            request_.messages,
            request_.response_format,
            pipeline.optimizer,
            allow_optimizer=lambda: may_spend(1),
        )
    if text is None:
        return None
    model = pipeline.resolve_model(request_.model).id
    g.model = text.kind
    prompt = request_.prompt or ""
    if request_.stream:
        usage = request_.include_usage
        return event_stream(chat.stream_text(model, prompt, text.text, include_usage=usage))
    return jsonify(chat.text_completion(model, prompt, text.text))


def event_stream(frames) -> Response:
    return Response(
        frames,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@bp.delete("/image/<path:key>")
def delete_image(key: str):
    """Remove an image before it expires: anyone with its link can see it until then."""
    if not services().store.delete(key):
        raise APIError(
            404,
            "Image not found: it never existed, has expired or was deleted already.",
            code="image_not_found",
        )
    return jsonify({"id": key, "object": "image", "deleted": True})


@bp.get("/image/<path:key>")
def image(key: str):
    """What image_files.ImageFiles did not serve: an unknown or expired key (404), or a store
    that could not be read (StoreUnavailable: 503). Should the store answer this time, the
    image is served all the same, unless the store has just failed for this very request."""
    if request.environ.get(STORE_FAILED):
        raise request.environ[STORE_FAILED]
    opened = services().store.open(key)
    if opened is None:
        raise APIError(
            404,
            "Image not found: it never existed or has expired "
            f"(images are kept {services().settings.image_lifetime}).",
            code="image_not_found",
        )
    return Response(
        wrap_file(request.environ, opened.file),
        headers=image_headers(key, opened),
        direct_passthrough=True,
    )
