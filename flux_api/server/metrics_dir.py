"""Where gunicorn's workers keep their metrics: prometheus_client's multiprocess mode, one file
per worker and kind in PROMETHEUS_MULTIPROC_DIR, added up by whichever worker is scraped
(observe/metrics.py). gunicorn.conf.py's hooks call these in the master.

prometheus_client chooses the mode when it is first imported, so `prepare` runs before the app
is (on_starting), and nothing here imports prometheus_client before that.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import MutableMapping

from flux_api.config.environment import SettingsError, exit_cannot_start

DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# The directory a master made itself (not the operator's): removed when it exits. In the
# environment, so that it survives a reload's re-import, and so that a master started by
# another one (SIGUSR2) makes its own rather than emptying its parent's.
MADE = "FLUX_API_METRICS_DIR_MADE"


def prepare(environ: MutableMapping[str, str] = os.environ) -> str:
    """The directory the workers will count in, fresh: the operator's PROMETHEUS_MULTIPROC_DIR
    (made if missing, emptied of what an earlier run left, never removed), else a new
    temporary one. A directory that cannot be used stops the start with one line."""
    given = environ.get(DIRECTORY, "")
    if given and given != environ.get(MADE):
        try:
            os.makedirs(given, exist_ok=True)
            for name in os.listdir(given):
                if name.endswith(".db"):  # prometheus_client's files; nothing else is touched
                    os.remove(os.path.join(given, name))
        except OSError as exc:
            problem = f"{DIRECTORY}: {given} cannot be used ({exc.strerror or exc})."
            exit_cannot_start(SettingsError(problem), code=3)
        return given
    made = tempfile.mkdtemp(prefix="flux-api-metrics-")
    environ[DIRECTORY] = environ[MADE] = made
    return made


def worker_exited(pid: int, environ: MutableMapping[str, str] = os.environ) -> None:
    """A worker is gone (it exited, was killed or replaced by a reload): its live gauges
    (streams held) are dropped; its counters stay counted."""
    directory = environ.get(DIRECTORY)
    if directory:
        from prometheus_client.multiprocess import mark_process_dead  # the app imported it

        mark_process_dead(pid, directory)


def remove(environ: MutableMapping[str, str] = os.environ) -> None:
    """At the master's exit: the directory it made goes (the operator's stays)."""
    made = environ.get(MADE)
    if made and made == environ.get(DIRECTORY):
        shutil.rmtree(made, ignore_errors=True)
