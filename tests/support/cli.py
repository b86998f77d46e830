"""The operator's commands (`python -m flux_api ...`) run as an operator runs them: a process of
their own, in a working directory, with only the settings given."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.support import ROOT


def run_command(
    args: Iterable[str], settings: Mapping[str, str], workdir: Path, secrets: Iterable[str] = ()
) -> subprocess.CompletedProcess:
    """`python -m flux_api *args`; none of `secrets` may appear in what it prints."""
    result = subprocess.run(
        [sys.executable, "-m", "flux_api", *args],
        cwd=workdir,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr
    return result
