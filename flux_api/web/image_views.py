"""The Images API endpoints: generations, edits and variations (thin views over images.py and
edits.py)."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from flux_api.web.requests_in import (
    allow_uploads,
    json_body,
    public_base_url,
    request_budget,
    services,
    spend,
)
from flux_api.wire import edits, images

bp = Blueprint("images", __name__)
JSON = "application/json"


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


def _edit(variation: bool):
    """Multipart (the clients' form) or JSON with data URLs."""
    settings, pipeline = services().settings, services().pipeline
    allow_uploads()
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        edit = edits.parse_form(request.form, request.files, settings.images_max_n, variation)
    else:
        edit = edits.parse_json(json_body(), settings.images_max_n, variation)
    budget, memory = request_budget(), services().image_memory
    plan = edits.plan_edit(pipeline, edit, public_base_url(), memory, budget)
    g.model = plan.model.short_name
    spend(edit.n)
    answer = images.deliver(
        pipeline, plan, edit.n, edit.response_format, budget, memory, edit.output_format
    )
    return jsonify(answer) if isinstance(answer, dict) else Response(answer, mimetype=JSON)
