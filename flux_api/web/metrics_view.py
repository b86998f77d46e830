"""GET /metrics: the service's metrics in Prometheus's text format (observe/metrics.py keeps
them; docs/metrics.md lists them). Behind a key like the API (web/auth.py): METRICS_KEY, or
any API key while METRICS_KEY is not set."""

from __future__ import annotations

from flask import Blueprint, Response

from flux_api.errors import APIError
from flux_api.observe.metrics import CONTENT_TYPE
from flux_api.web.auth import sees_everyone
from flux_api.web.requests_in import services

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    if not sees_everyone():
        raise APIError(
            403,
            "This key may not read the metrics; METRICS_KEY may.",
            code="permission_denied",
            should_retry=False,
        )
    return Response(
        services().metrics.exposition(),
        content_type=CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )
