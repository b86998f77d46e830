"""gunicorn settings for flux-api: `gunicorn -c gunicorn.conf.py app:app`.

A generation holds its request for seconds, so each worker is a thread pool (gthread) that
holds many at once. The values come from the same .env and environment as the app's settings
(flux_api/config/server.py), checked at start with one line naming a bad one.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# gunicorn reads this file before it puts the app's directory on the import path.
sys.path.insert(0, HERE)
# A reload (SIGHUP) reads this file again in the master, whose forks become the new workers:
# forget the code imported so far, so that they run the code now on disk.
for _name in [name for name in sys.modules if name == "app" or name.split(".")[0] == "flux_api"]:
    del sys.modules[_name]

from flux_api.config.server import load_server_config_or_exit  # noqa: E402

_config = load_server_config_or_exit()

# Loopback unless BIND says otherwise: the shipped nginx site and systemd unit reach it there,
# and a bare gunicorn is not meant to face the internet (nginx bounds slow clients far better).
bind = _config.bind
# gthread with bounded sockets: idle, half-sent and never-reading connections are closed in
# bounded time and do not stop a worker accepting (flux_api/server/worker.py says how).
worker_class = "flux_api.server.worker.GuardedThreadWorker"
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
    """Make the workers' metrics directory, before anything imports prometheus_client
    (flux_api/server/metrics_dir.py). Build the app once in the master, before any worker
    starts, so a bad setting or an unusable DATA_DIR stops the start with one line naming it
    (a worker's boot error would come wrapped in gunicorn's traceback); it names a created key
    file once, for every worker (flux_api/store/key_file.py). Then guard reloads (see
    refuse_bad_reload)."""
    from flux_api.server import metrics_dir

    metrics_dir.prepare()
    from flux_api import create_app_or_exit
    from flux_api.store.redis_link import without_password

    services = create_app_or_exit().extensions["flux_api"]
    settings = services.settings
    where = f"Redis ({without_password(settings.redis_url)})" if settings.redis_url else "DATA_DIR"
    server.log.info(
        "flux-api: images and shared state in %s; %d Cloudflare account(s)",
        where,
        len(settings.accounts),
    )
    services.close()  # workers open their own: SQLite files and sockets do not survive fork
    missing = services.settings.missing_cloudflare
    if missing:
        server.log.warning(
            "%s not set: the service runs, but generation answers 503 until they are",
            " and ".join(missing),
        )
    reload = server.reload

    def checked_reload():
        if not refuse_bad_reload(server):
            reload()

    server.reload = checked_reload


def on_reload(server):
    """Name the key file once for the workers about to be forked (they inherit that it was
    said), as on_starting did at the start; the new settings passed refuse_bad_reload."""
    from flux_api.config.settings import SettingsError, load_settings
    from flux_api.store.key_file import key_file, name_key_file

    try:
        settings = load_settings()
    except SettingsError:  # changed since it was checked: the workers will say what is wrong
        return
    if not settings.api_keys and not settings.redis_url:
        name_key_file(key_file(settings.data_dir))


def child_exit(server, worker):
    """A worker has exited (stopped, killed, replaced by a reload): its streams held leave
    the metrics, its counts stay in them."""
    from flux_api.server import metrics_dir

    metrics_dir.worker_exited(worker.pid)


def on_exit(server):
    """The metrics directory on_starting made goes with the master."""
    from flux_api.server import metrics_dir

    metrics_dir.remove()


def refuse_bad_reload(server) -> bool:
    """Check the new code and settings in a fresh process before reloading: new workers that
    cannot boot make gunicorn halt, old workers included. True (and one log line) if refused."""
    from flux_api.server.metrics_dir import DIRECTORY

    paths = [HERE, os.environ.get("PYTHONPATH", "")]
    # Not the workers' metrics directory: the check's own counts would stay in it.
    env = {
        **{name: value for name, value in os.environ.items() if name != DIRECTORY},
        "PYTHONPATH": os.pathsep.join(path for path in paths if path),
        "FLUX_API_RUNNING_BIND": ",".join(server.cfg.bind),
    }
    try:
        check = subprocess.run(
            [sys.executable, "-m", "flux_api.server.preflight"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        server.log.error("Reload refused: the new code did not start within 120 s; still serving")
        return True
    except Exception as exc:  # noqa: BLE001 (the check could not even run: do not reload blind)
        server.log.error("Reload refused, the running workers keep serving: %r", exc)
        return True
    if check.returncode == 0:
        return False
    lines = [line.strip() for line in check.stderr.splitlines() if line.strip()]
    reason = lines[-1] if lines else f"exit code {check.returncode}"
    server.log.error("Reload refused, the running workers keep serving: %s", reason)
    return True
