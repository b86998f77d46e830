"""Browser protections for the playground page: it keeps the API key in localStorage and its
Generate button spends quota, so no other site may frame it and it runs only its own files."""

from __future__ import annotations

from flask import Flask, Response, request

# Everything the page uses is its own: static/playground.js and .css, images under image/,
# fetches to v1/. No inline script or style (the page has none), no plugins, no <base>.
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
    if request.path == "/" or request.path.startswith("/static/"):
        response.headers.update(HEADERS)
    return response


def init_app(app: Flask) -> None:
    """Send the headers with the page and its files, whoever serves them (gunicorn bare too)."""
    app.after_request(_protect)
