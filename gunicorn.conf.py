"""gunicorn settings for flux-api: `gunicorn -c gunicorn.conf.py app:app`.

A generation holds its request for seconds, so each worker is a thread pool (gthread) that
holds many at once. The values come from the same .env and environment as the app's settings
(flux_api/server_config.py), checked at start with one line naming a bad one.
"""

import os
import sys

# gunicorn reads this file before it puts the app's directory on the import path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from flux_api.server_config import load_server_config_or_exit  # noqa: E402

_config = load_server_config_or_exit()

# Loopback unless BIND says otherwise: the shipped nginx site and systemd unit reach it there,
# and a bare gunicorn is not meant to face the internet (nginx bounds slow clients far better).
bind = _config.bind
# gthread with bounded sockets: idle, half-sent and never-reading connections are closed in
# bounded time and do not stop a worker accepting (flux_api/server.py says how).
worker_class = "flux_api.server.GuardedThreadWorker"
workers = _config.workers
threads = _config.threads
# Most connections a worker holds, idle ones included: an idle or half-sent connection costs a
# descriptor, not a thread, so a worker keeps serving while it holds many. It stops accepting
# sooner, at threads + 32 connections being served, leaving the rest to idle workers.
worker_connections = max(1000, threads + 32)
# On restart (SIGHUP/SIGTERM) in-flight generations get this long to finish: by default the
# longest a request may take (UPSTREAM_TIMEOUT, + OPTIMIZER_TIMEOUT when the optimizer is on)
# plus 10 s, so no generation the service still waits for is cut off.
graceful_timeout = _config.graceful_timeout
# A worker whose main loop is silent this long is killed. Its threads wait on the network while
# the loop keeps beating, so this only catches a stuck worker; never below graceful_timeout.
timeout = _config.timeout
# Idle kept-alive connections close after this: longer than nginx's upstream keepalive_timeout
# (60 s), so nginx, not gunicorn, ends an idle upstream connection and never races a close.
keepalive = 75
# gunicorn 27's control socket is not used, and would be written under $HOME.
control_socket_disable = True
# The app logs one structured line per request (method, path, status, duration, model, request
# id); gunicorn's own access log would repeat it, so it is off unless asked for.
accesslog = _config.accesslog
errorlog = "-"
# X-Forwarded-Proto is trusted from these addresses (default: loopback, where the shipped nginx
# runs); set here so that FORWARDED_ALLOW_IPS in .env counts too.
forwarded_allow_ips = _config.forwarded_allow_ips
loglevel = _config.loglevel


def on_starting(server):
    """Build the app once in the master, before any worker starts, so a bad setting or an
    unusable DATA_DIR stops the start with one line naming it (a worker's boot error would
    come wrapped in gunicorn's traceback)."""
    from flux_api import create_app_or_exit

    create_app_or_exit().extensions["flux_api"].store.close()
