"""Browser protections for the playground and usage pages: they keep the API key in localStorage
and the playground's Generate button spends quota, so no other site may frame them and they run
only their own files."""

from __future__ import annotations

from flask import Flask, Response, request

# Everything the pages use is their own: static/*.js and .css, images under image/, fetches to
# v1/ (the usage page inserts v1/usage/view's SVG, which has no style attribute). No inline
# script or style (the pages have none), no plugins, no <base>.
PAGES = frozenset({"/", "/usage", "/v1/usage/view"})
POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
}


def _protect(response: Response) -> Response:
    if request.path in PAGES or request.path.startswith("/static/"):
        response.headers.update(HEADERS)
    return response


def init_app(app: Flask) -> None:
    """Send the headers with the page and its files, whoever serves them (gunicorn bare too)."""
    app.after_request(_protect)
