"""The one place where exceptions become HTTP responses, all in OpenAI's error shape."""

from __future__ import annotations

from flask import Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from flux_api.errors import APIError
from flux_api.wire.errors import api_error_for, log_unexpected


def _from_http(exc: HTTPException) -> APIError:
    code = exc.code or 500
    if code == 404:
        return APIError(
            404,
            f"Unknown path {request.path[:200]}: this service answers /v1/chat/completions, "
            "/v1/images/generations, /v1/images/edits, /v1/images/variations, /v1/models, "
            "/v1/usage, /image/<key>, /metrics and the pages / and /usage.",
            code="not_found",
        )
    if code == 405:
        allowed = ", ".join(sorted(getattr(exc, "valid_methods", None) or []))
        return APIError(
            405,
            f"{request.method} is not allowed on {request.path[:200]}"
            + (f"; use {allowed}." if allowed else "."),
            code="method_not_allowed",
            extra_headers={"Allow": allowed} if allowed else None,  # required by RFC 9110
        )
    if code == 413:
        if _within_body_limit():  # werkzeug's own bounds on a form, not the body's size
            config = current_app.config
            return APIError(
                413,
                f"The form has more than {config['MAX_FORM_PARTS']} parts, or a text field "
                f"larger than {config['MAX_FORM_MEMORY_SIZE'] // 1000} KB. Send the images as "
                "`image[]` parts and only the fields the API defines.",
                code="request_too_large",
                should_retry=False,
            )
        limit_kb = (current_app.config.get("MAX_CONTENT_LENGTH") or 0) // 1024
        setting, limit = g.get("body_limit", ("MAX_BODY_KB", f"{limit_kb} KB"))
        return APIError(
            413,
            f"The request body is larger than this service accepts ({limit}, set by "
            f"{setting}). Send less.",
            code="request_too_large",
            should_retry=False,
        )
    error_type = "server_error" if code >= 500 else "invalid_request_error"
    return APIError(
        code, exc.description or exc.name, type=error_type, code=exc.name.lower().replace(" ", "_")
    )


def _within_body_limit() -> bool:
    """Whether the body announced a length within the limit that applies to it: a 413 then
    came from parsing the form, not from its size."""
    if request.mimetype != "multipart/form-data":
        return False
    length, limit = request.content_length, request.max_content_length
    return length is not None and limit is not None and length <= limit


def to_response(error: APIError):
    g.error_code = error.code or error.type  # for the request's announcement (web/logs.py)
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers.update(error.headers())
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(Exception)
    def handle_any(exc: Exception):
        if isinstance(exc, HTTPException):
            return to_response(_from_http(exc))
        error = api_error_for(exc)
        if error.status == 500:
            log_unexpected(exc)
        return to_response(error)
