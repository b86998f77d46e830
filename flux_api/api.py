"""The HTTP endpoints: thin views that parse and bound input, call the pipeline, shape replies."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import wrap_file

from . import chat, edits, hosts, images, openapi, tasks, wire
from .auth import presents_key
from .budget import Budget, peer_closed
from .errors import APIError, invalid_request
from .image_files import image_headers
from .services import Services
from .sizes import COMMON_RATIOS

bp = Blueprint("api", __name__)
JSON = "application/json"
_STARTED = int(time.time())


def services() -> Services:
    return current_app.extensions["flux_api"]


def public_base_url() -> str:
    """PUBLIC_BASE_URL when set; otherwise the URL this request came in on, whose Host must be
    a plain host[:port] (it goes into every image link of a billed reply)."""
    configured = services().settings.public_base_url
    if configured:
        return configured
    host = hosts.checked_host(request.host)
    return f"{request.scheme}://{host}"


def request_budget() -> Budget:
    """This request's deadline (UPSTREAM_TIMEOUT from its start) and a check that its client
    is still connected (the server's socket: gunicorn's, or werkzeug's in tests)."""
    environ = request.environ
    client = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    # From when the request began to arrive (flux_api/server.py records it on the socket),
    # waiting for a free thread included; else from when Flask began with it.
    started = getattr(client, "request_started", None) or g.started
    deadline = started + services().settings.upstream_timeout
    g.budget = Budget(deadline, client_closed=lambda: peer_closed(client))
    return g.budget


def spend(images: int) -> None:
    """Count `images` Workers AI calls against the key's RATE_LIMIT (a 429 if over it): called
    once a request is known to call Workers AI, so task prompts and bad requests cost nothing."""
    limiter = services().rate_limiter
    if limiter is not None:
        limiter.hit(g.api_key, images)


def json_body() -> dict:
    """The body as a JSON object, whatever its Content-Type says (clients differ)."""
    data = request.get_data(cache=False)
    g.body_size = len(data)
    if request.content_length is None and len(data) >= (request.max_content_length or 0):
        # A chunked body is cut at the limit without a word: reading on raises the 413.
        request.stream.read(1)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested absurdly deep
        body = None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    for name, value in body.items():
        if not _encodable(value):
            raise invalid_request(
                f"`{name}` holds text that is not valid Unicode (a lone surrogate such as "
                "\\ud800); send UTF-8 text.",
                param=name,
            )
    return body


def _encodable(value: object) -> bool:
    """JSON allows escapes of lone UTF-16 surrogates, which no answer or upstream body can
    carry as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


@bp.get("/")
def index():
    settings = services().settings
    return render_template(
        "index.html",
        settings=settings,
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
    """For load balancers and monitors: 200 while images can be stored, else 503. No secrets."""
    settings, store = services().settings, services().store
    writable = store.writable()
    body = {
        "status": "ok" if writable else "unavailable",
        "store": "writable" if writable else "not writable",
        "cloudflare": "configured" if settings.cloudflare_configured else "missing",
        "prompt_optimization": "on" if settings.prompt_optimization else "off",
        "default_model": settings.flux_model,
    }
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
    request_ = chat.parse_request(json_body())
    if not request_.image_urls and g.body_size > services().settings.max_body_kb * 1024:
        text_body_limit()
        raise RequestEntityTooLarge()  # …but text alone keeps to MAX_BODY_KB
    pipeline, settings = services().pipeline, services().settings
    prompt, include_usage = request_.prompt, request_.include_usage
    if settings.skip_task_prompts and tasks.is_task_prompt(prompt):
        model = pipeline.resolve_model(request_.model).id
        g.model = "task"
        answer = tasks.task_reply(prompt)
        if request_.stream:
            return event_stream(
                chat.stream_text(model, prompt, answer, include_usage=include_usage)
            )
        return jsonify(chat.text_completion(model, prompt, answer))
    if request_.image_urls:  # images in the message: an edit of them
        edit = edits.from_chat(prompt, request_.image_urls, request_.model, services().store)
        plan = edits.plan_edit(pipeline, edit, public_base_url())
    else:
        plan = pipeline.plan(prompt, request_.model, public_base_url())
    g.model = plan.model.short_name
    spend(1)
    budget = request_budget()
    if not request_.stream:
        return jsonify(chat.complete(pipeline, plan, budget))
    return event_stream(
        chat.stream(
            pipeline,
            plan,
            budget,
            include_usage=include_usage,
            heartbeat=settings.stream_heartbeat,
        )
    )


def event_stream(frames) -> Response:
    return Response(
        frames,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@bp.post("/v1/images/generations")
def images_generations():
    request_ = images.parse_request(json_body(), services().settings.images_max_n)
    g.model = services().pipeline.resolve_model(request_.model).short_name
    spend(request_.n)
    answer = images.generate(
        services().pipeline,
        request_,
        public_base_url(),
        request_budget(),
        services().image_memory,
    )
    return jsonify(answer) if isinstance(answer, dict) else Response(answer, mimetype=JSON)


@bp.post("/v1/images/edits")
def images_edits():
    return _edit(variation=False)


@bp.post("/v1/images/variations")
def images_variations():
    return _edit(variation=True)


def allow_uploads() -> None:
    """This request's body may reach MAX_UPLOAD_MB (it carries images), not MAX_BODY_KB."""
    limit = services().settings.max_upload_mb
    request.max_content_length = limit * 1024 * 1024
    g.body_limit = ("MAX_UPLOAD_MB", f"{limit} MB")


def text_body_limit() -> None:
    """The 413 for a body without images names MAX_BODY_KB again."""
    g.pop("body_limit", None)


def _edit(variation: bool):
    """Multipart (the clients' form) or JSON with data URLs."""
    settings, pipeline = services().settings, services().pipeline
    allow_uploads()
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        edit = edits.parse_form(request.form, request.files, settings.images_max_n, variation)
    else:
        edit = edits.parse_json(json_body(), settings.images_max_n)
    plan = edits.plan_edit(pipeline, edit, public_base_url())
    g.model = plan.model.short_name
    spend(edit.n)
    answer = images.deliver(
        pipeline,
        plan,
        edit.n,
        edit.response_format,
        request_budget(),
        services().image_memory,
        edit.output_format,
    )
    return jsonify(answer) if isinstance(answer, dict) else Response(answer, mimetype=JSON)


@bp.get("/image/<path:key>")
def image(key: str):
    """What image_files.ImageFiles did not serve: an unknown or expired key (404), or a store
    that could not be read (StoreUnavailable: 503). Should the store answer this time, the
    image is served all the same."""
    opened = services().store.open(key)
    if opened is None:
        raise APIError(
            404,
            "Image not found: it never existed or has expired "
            f"(images are kept {services().settings.image_expiration} seconds).",
            code="image_not_found",
        )
    return Response(
        wrap_file(request.environ, opened.file),
        headers=image_headers(key, opened),
        direct_passthrough=True,
    )
