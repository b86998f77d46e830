"""The container commands the docs give are the ones tests/system/test_container.py runs: the
same run flags, stop timeout and build secret, and compose.yaml's grace period to match."""

import yaml

from tests.support import ROOT
from tests.support.containers import CA_SECRET, STOP_TIMEOUT

README = (ROOT / "README.md").read_text()
GUIDE = (ROOT / "docs" / "container.md").read_text()


def commands(text: str, start: str) -> list[str]:
    """The command lines of `text` that begin with `start`."""
    return [line.strip() for line in text.splitlines() if line.strip().startswith(start)]


def test_the_run_command_is_the_tested_one_in_readme_and_guide():
    run = "--env-file .env -p 8000:8000 -v flux-api-data:/data --stop-timeout"
    for text in (README, GUIDE):
        (command,) = commands(text, "docker run -d --name flux-api ")
        assert f"{run} {STOP_TIMEOUT} flux-api" in command


def test_the_build_secret_is_the_one_the_dockerfile_reads():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count(f"--mount=type=secret,id={CA_SECRET} ") == 3
    (command,) = commands(GUIDE, "docker build --secret")
    assert f"--secret id={CA_SECRET},src=" in command


def test_compose_gives_stops_the_same_time_as_the_commands():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert compose["services"]["flux-api"]["stop_grace_period"] == f"{STOP_TIMEOUT}s"
    assert compose["services"]["flux-api"]["volumes"] == ["flux-api-data:/data"]
