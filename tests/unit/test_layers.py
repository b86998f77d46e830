"""The floor plan holds: each layer of flux_api imports only the layers below it (the contract
in pyproject.toml, checked by import-linter)."""

import os
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_no_layer_imports_one_above_it():
    linter = Path(sys.executable).with_name("lint-imports")
    checked = subprocess.run(
        [str(linter)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert "1 kept, 0 broken" in checked.stdout
