"""flux-api: an OpenAI-compatible image-generation gateway to Cloudflare Workers AI."""

from __future__ import annotations

import logging
import sys
from typing import Mapping

from flask import Flask
from flask_cors import CORS

from . import api, auth, handlers
from .auth import load_or_create_key
from .services import build_services
from .settings import SettingsError, load_settings

MAX_BODY_BYTES = 1024 * 1024


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """Build the app from `environ` (default: .env, then the process environment)."""
    _configure_logging()
    settings = load_settings(environ)
    api_keys = settings.api_keys or (load_or_create_key(settings.data_dir),)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.ensure_ascii = False
    app.extensions["flux_api"] = build_services(settings, api_keys)

    CORS(app, origins=list(settings.cors_origins), max_age=86400)
    auth.init_app(app, api_keys)
    handlers.init_app(app)
    app.register_blueprint(api.bp)
    return app


def create_app_or_exit() -> Flask:
    """For servers: a bad setting prints one line naming it and stops the start. Exit code 3 is
    gunicorn's "worker failed to boot", which stops the master too instead of respawning."""
    try:
        return create_app()
    except SettingsError as exc:
        print(f"flux-api cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(3) from None


def _configure_logging() -> None:
    """Give our loggers a handler unless the host (gunicorn, pytest) already set one up."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    logging.getLogger("flux_api").setLevel(logging.INFO)
