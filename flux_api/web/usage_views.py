"""GET /v1/usage: what each account and each key spent, today and the 30 days before."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from flux_api.errors import APIError
from flux_api.observe.usage_report import usage_report
from flux_api.store.usage import UsageUnavailable
from flux_api.web.auth import sees_everyone
from flux_api.web.requests_in import services

bp = Blueprint("usage", __name__)


@bp.get("/v1/usage")
def usage():
    """METRICS_KEY (or any key when it is unset) sees every account and key; any other key
    sees only its own images and refusals."""
    found = services()
    only_key = None if sees_everyone() else g.api_key.name
    try:
        report = usage_report(
            found.ledger.book,
            found.accounts.report() if only_key is None else [],  # not shown: not read
            found.settings.cf_daily_neurons,
            found.ledger.now(),
            only_key,
        )
    except UsageUnavailable as exc:
        raise APIError(
            503,
            f"The usage ledger cannot be read now ({exc}); try again shortly.",
            type="server_error",
            code="store_unavailable",
        ) from None
    response = jsonify(report)
    response.headers["Cache-Control"] = "no-store"  # one key's usage, and changing
    return response
