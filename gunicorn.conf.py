"""gunicorn settings for flux-api: `gunicorn -c gunicorn.conf.py app:app`.

A generation holds its request for seconds, so each worker is a thread pool (gthread) that
holds many at once; timeouts are longer than the slowest generation.
"""

import multiprocessing
import os

bind = os.environ.get("BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2)))
threads = int(os.environ.get("GUNICORN_THREADS", 128))
# A gthread worker accepts connections until it holds worker_connections, whether or not a
# thread is free; close to `threads`, a busy worker leaves new connections to idle ones instead
# of queueing them behind its own (the rest is room for idle keep-alive connections).
worker_connections = threads + 32
# A worker silent this long is killed; generations wait on the network, not the CPU, so the
# heartbeat keeps going, but keep this above UPSTREAM_TIMEOUT (default 120 s) all the same.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 180))
# On restart (SIGHUP/SIGTERM) in-flight generations get this long to finish.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 150))
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
