"""gunicorn settings for flux-api: `gunicorn -c gunicorn.conf.py app:app`.

A generation holds its request for seconds, so each worker is a thread pool (gthread) that
holds many at once; timeouts are longer than the slowest generation.
"""

import multiprocessing
import os

# Loopback unless BIND says otherwise: the shipped nginx site and systemd unit reach it there,
# and a bare gunicorn is not meant to face the internet (nginx bounds slow clients far better).
bind = os.environ.get("BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"
# gthread with bounded sockets: idle, half-sent and never-reading connections are closed in
# bounded time and do not stop a worker accepting (flux_api/server.py says how).
worker_class = "flux_api.server.GuardedThreadWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2)))
threads = int(os.environ.get("GUNICORN_THREADS", 128))
# Most connections a worker holds, idle ones included: an idle or half-sent connection costs a
# descriptor, not a thread, so a worker keeps serving while it holds many. It stops accepting
# sooner, at threads + 32 connections being served, leaving the rest to idle workers.
worker_connections = max(1000, threads + 32)
# A worker silent this long is killed; generations wait on the network, not the CPU, so the
# heartbeat keeps going, but keep this above UPSTREAM_TIMEOUT (default 120 s) all the same.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 180))
# On restart (SIGHUP/SIGTERM) in-flight generations get this long to finish.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 150))
# Idle kept-alive connections close after this: longer than nginx's upstream keepalive_timeout
# (60 s), so nginx, not gunicorn, ends an idle upstream connection and never races a close.
keepalive = 75
# gunicorn 27's control socket is not used, and would be written under $HOME.
control_socket_disable = True
# The app logs one structured line per request (method, path, status, duration, model, request
# id); gunicorn's own access log would repeat it, so it is off unless asked for.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
# X-Forwarded-Proto is trusted from these addresses (gunicorn's default: loopback, where the
# shipped nginx runs); gunicorn reads FORWARDED_ALLOW_IPS itself.
loglevel = os.environ.get("LOG_LEVEL", "info")


def on_starting(server):
    """Build the app once in the master, before any worker starts, so a bad setting or an
    unusable DATA_DIR stops the start with one line naming it (a worker's boot error would
    come wrapped in gunicorn's traceback)."""
    from flux_api import create_app_or_exit

    create_app_or_exit().extensions["flux_api"].store.close()
