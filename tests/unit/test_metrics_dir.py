"""The workers' metrics directory, as gunicorn.conf.py's hooks handle it in the master
(flux_api/server/metrics_dir.py): made fresh or emptied at the start, a dead worker's live gauges
dropped and its counts kept, and removed at the exit only when the master made it (under the
real gunicorn: tests/system/test_metrics.py)."""

from __future__ import annotations

import os
import tempfile

import pytest

from flux_api.server import metrics_dir
from flux_api.server.metrics_dir import DIRECTORY, MADE


def test_without_a_directory_set_the_master_makes_one_and_removes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    environ: dict = {}
    made = metrics_dir.prepare(environ)
    assert os.path.isdir(made) and os.path.dirname(made) == str(tmp_path)
    assert environ == {DIRECTORY: made, MADE: made}
    metrics_dir.remove(environ)
    assert not os.path.exists(made)


def test_the_operators_directory_is_emptied_of_old_counts_and_kept(tmp_path):
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"an earlier run's counts")
    (given / "README").write_text("not ours")
    environ = {DIRECTORY: str(given)}
    assert metrics_dir.prepare(environ) == str(given)
    assert sorted(os.listdir(given)) == ["README"]
    assert environ == {DIRECTORY: str(given)}
    metrics_dir.remove(environ)
    assert given.is_dir()


def test_a_missing_operators_directory_is_made(tmp_path):
    given = tmp_path / "a" / "b"
    assert metrics_dir.prepare({DIRECTORY: str(given)}) == str(given)
    assert given.is_dir()


def test_an_unusable_directory_stops_the_start_with_one_line(tmp_path, capsys):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    with pytest.raises(SystemExit) as stopped:
        metrics_dir.prepare({DIRECTORY: str(not_a_directory / "metrics")})
    assert stopped.value.code == 3
    assert capsys.readouterr().err.startswith(
        f"flux-api cannot start: {DIRECTORY}: {not_a_directory / 'metrics'} cannot be used"
    )


def test_a_master_started_by_another_makes_its_own(tmp_path, monkeypatch):
    """SIGUSR2: the new master inherits the old one's environment, directory included."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    environ: dict = {}
    first = metrics_dir.prepare(environ)
    (tmp_path / first / "counter_1.db").write_bytes(b"the old master's workers' counts")
    second = metrics_dir.prepare(dict(environ))
    assert second != first
    assert os.listdir(first) == ["counter_1.db"]


def test_a_dead_workers_live_gauges_go_and_its_counts_stay(tmp_path):
    for name in ("counter_41.db", "histogram_41.db", "gauge_livesum_41.db", "gauge_livesum_42.db"):
        (tmp_path / name).write_bytes(b"")
    metrics_dir.worker_exited(41, {DIRECTORY: str(tmp_path)})
    assert sorted(os.listdir(tmp_path)) == [
        "counter_41.db",
        "gauge_livesum_42.db",
        "histogram_41.db",
    ]
