"""The app factory: settings, services, blueprints and the image fast path, put together."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask_cors import CORS

from flux_api.config.environment import exit_cannot_start
from flux_api.config.settings import SettingsError, load_settings
from flux_api.events import GenerationsInFlight
from flux_api.services import build_services
from flux_api.web import admission, auth, handlers, logs, metrics_view, page_security, usage_views
from flux_api.web import image_views as images_api
from flux_api.web import views as api
from flux_api.web.image_files import ImageFiles


def create_app(
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    check_connections: bool = True,
) -> Flask:
    """Build the app from `environ` (default: .env, then the process environment). `clock`:
    wall-clock seconds, for tests of what happens at midnight UTC. `check_connections`: make
    sure Redis (REDIS_URL) answers now, stopping the start with one line if not; gunicorn's
    workers skip it (app.py): their master checked at its start, and a worker replaced while
    Redis is away must boot, answer 503 and recover, not stop the whole node."""
    logs.configure()
    settings = load_settings(environ)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_kb * 1024
    assert isinstance(app.json, DefaultJSONProvider)  # Flask's own
    app.json.ensure_ascii = False
    app.debug = False  # whatever FLASK_DEBUG says: a debug page would show code and tracebacks
    # `//` in a path is an answer (a JSON 404), not a redirect to a path with one slash.
    app.url_map.merge_slashes = False
    services = app.extensions["flux_api"] = build_services(settings, clock, check_connections)

    # Retry-After too: a browser client of a 429 or a shed 503 must read when to come back.
    CORS(
        app,
        origins=list(settings.cors_origins),
        max_age=86400,
        expose_headers=["X-Request-ID", "Retry-After"],
    )
    logs.init_app(app, services.events)  # first, so every later hook and error has a request id
    auth.init_app(app, services.api_keys, services.created_key_at, settings.metrics_key)
    handlers.init_app(app)
    page_security.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(images_api.bp)
    app.register_blueprint(usage_views.bp)
    app.register_blueprint(metrics_view.bp)
    # Generations beyond what a worker holds are shed, and stored images are answered, before
    # Flask's request machinery (see admission and image_files).
    capacity = settings.generation_capacity
    slots = admission.GenerationSlots(
        capacity,
        admission.key_limit(capacity, settings.key_share, len(services.api_keys)),
        lambda in_flight: services.events.announce(GenerationsInFlight(in_flight, capacity)),
    )
    admitted = admission.Admission(
        app.wsgi_app,
        slots,
        services.api_keys,
        services.events,
        settings.cors_origins,
        settings.admission_wait,
    )
    # Flask's documented way to wrap its WSGI app, which mypy takes for replacing a method.
    app.wsgi_app = ImageFiles(  # type: ignore[method-assign]
        admitted, services.store, settings.cors_origins, services.events
    )
    return app


def create_app_or_exit(check_connections: bool = True) -> Flask:
    """For servers: a bad setting prints one line naming it and stops the start. Exit code 3 is
    gunicorn's "worker failed to boot", which stops the master too instead of respawning."""
    try:
        return create_app(check_connections=check_connections)
    except SettingsError as exc:
        exit_cannot_start(exc, code=3)
