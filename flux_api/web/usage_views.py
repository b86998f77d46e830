"""GET /v1/usage: what each account and each key spent, today and the 30 days before; GET
/v1/usage/view: the same drawn, for the usage page (GET /usage, a shell with no number in it:
its script asks the view with the key saved in the browser, as the playground does)."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, render_template

from flux_api.errors import APIError
from flux_api.observe.usage_report import usage_report
from flux_api.store.usage import UsageUnavailable
from flux_api.web.auth import sees_everyone
from flux_api.web.requests_in import services
from flux_api.web.usage_panel import render_panel

bp = Blueprint("usage", __name__)


@bp.get("/v1/usage")
def usage():
    """METRICS_KEY (or any key when it is unset) sees every account and key; any other key
    sees only its own images and refusals."""
    response = jsonify(_report())
    response.headers["Cache-Control"] = "no-store"  # one key's usage, and changing
    return response


@bp.get("/v1/usage/view")
def usage_view():
    """/v1/usage as HTML with inline SVG, for the page to insert; who sees what is the same."""
    report = _report()
    response = Response(render_panel(report, services().ledger.now()), mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/usage")
def usage_page():
    """The page: no data in it, so it is open like the playground."""
    return render_template("usage.html")


def _report() -> dict:
    found = services()
    only_key = None if sees_everyone() else g.api_key.name
    try:
        return usage_report(
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
