"""podman for tests/system/test_container.py: the Dockerfile built and run as docs/container.md
says, on the host's network (so a container reaches the fake Workers AI on 127.0.0.1).

No image registry is reachable here, so the base image is made the way Debian's own is: a
minimal bookworm from Debian's packages (debootstrap), trimmed like the official slim image and
imported under its name, once per machine. apt and pip inside the build reach their registries;
the machine's CA bundle goes in as the build secret the Dockerfile reads."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.support import ROOT
from tests.support.programs import free_port, require_program

IMAGE = "localhost/flux-api:test"
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
# default_ulimits = []: podman's default ulimits cannot be set in a sandbox like this one.
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
# As compose.yaml's stop_grace_period and docs/container.md's `--stop-timeout`.
STOP_TIMEOUT = "170"
# The Dockerfile's build secret: certificates apt and pip trust (a TLS-inspecting proxy's).
CA_SECRET = "ca-certificates"
# What the official bookworm-slim leaves out of every package it installs (docs, manuals,
# translations): the image built here is then the size it is on the real base.
SLIM_DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""


def unusable(message: str) -> None:
    """podman cannot run the tests: skipped with the reason, but a failure in CI (.ci/run
    installs podman, runc and debootstrap), where a silent skip would hide it."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Podman:
    def __init__(self, binary: str):
        self.binary = binary
        self.env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
        if os.environ.get("CONTAINERS_CONF"):  # the operator's own settings win
            self.env["CONTAINERS_CONF"] = os.environ["CONTAINERS_CONF"]

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:2])}: {result.stderr.strip()}")
        return result

    def exists(self, image: str) -> bool:
        return self("image", "exists", image, check=False).returncode == 0


def usable_podman() -> Podman:
    podman = Podman(require_program("podman", "podman"))
    info = podman("info", check=False)
    if info.returncode != 0:
        unusable(f"podman cannot run here: {info.stderr.strip().splitlines()[-1:]}")
    if not podman.exists(BASE_IMAGE):
        make_base_image(podman)
    trial = podman("run", "--rm", "--network", "host", BASE_IMAGE, "true", check=False)
    if trial.returncode != 0:
        unusable(f"podman cannot start a container here: {trial.stderr.strip()[-300:]}")
    return podman


def make_base_image(podman: Podman) -> None:
    """debian:bookworm-slim from Debian's packages (about 40 s), kept for every later run."""
    debootstrap = require_program("debootstrap", "debootstrap")
    if os.geteuid() != 0:
        unusable(f"{BASE_IMAGE} is missing and debootstrap needs root to make it")
    with tempfile.TemporaryDirectory(prefix="flux-api-base-") as workdir:
        root = Path(workdir) / "rootfs"
        made = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                "bookworm",
                str(root),
                "http://deb.debian.org/debian",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if made.returncode != 0:
            unusable(f"debootstrap failed: {(made.stdout + made.stderr).strip()[-300:]}")
        _slim(root)
        archive = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [podman.binary, "import", "--change", 'CMD ["bash"]', "-", BASE_IMAGE],
            stdin=archive.stdout,
            env=podman.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        archive.wait()
        if imported.returncode != 0:
            unusable(f"podman import failed: {imported.stderr.strip()[-300:]}")


def _slim(root: Path) -> None:
    """As the official slim image: no package caches, lists, docs, manuals or translations."""
    for folder in (
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/man",
        "usr/share/info",
    ):
        for entry in (root / folder).glob("*"):
            if entry.is_file():
                entry.unlink()
            elif entry.name != "partial":
                shutil.rmtree(entry)
    shutil.rmtree(root / "usr/share/locale", ignore_errors=True)
    (root / "usr/share/locale").mkdir()
    for entry in sorted((root / "usr/share/doc").rglob("*"), reverse=True):
        if entry.is_file() or entry.is_symlink():
            if entry.name != "copyright":
                entry.unlink()
        elif not any(entry.iterdir()):
            entry.rmdir()
    (root / "etc/dpkg/dpkg.cfg.d/docker").write_text(SLIM_DPKG_EXCLUDES)
    (root / "etc/apt/apt.conf.d/docker-clean").write_text(
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n'
    )


def build_image(podman: Podman) -> None:
    """The command docs/container.md gives, with the machine's CA bundle as the secret (this
    network inspects TLS) and --format docker (podman's default OCI format drops HEALTHCHECK)."""
    ca_bundle = ssl.get_default_verify_paths().cafile
    secret = ["--secret", f"id={CA_SECRET},src={ca_bundle}"] if ca_bundle else []
    old = podman("image", "inspect", "--format", "{{.Id}}", IMAGE, check=False).stdout.strip()
    built = podman(
        "build", "--format", "docker", "--pull=never", "--network", "host", *secret,
        "-t", IMAGE, str(ROOT),
        timeout=1200,
        check=False,
    )  # fmt: skip
    if built.returncode != 0:
        raise AssertionError(f"podman build failed:\n{(built.stdout + built.stderr)[-3000:]}")
    new = podman("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip()
    if old and old != new:  # the last session's build, now untagged
        podman("rmi", old, check=False)


class Container:
    """One container of IMAGE started with docs/container.md's `run` command, on the host's
    network with BIND on a free loopback port (instead of `-p 8000:8000`)."""

    def __init__(self, podman: Podman, env_file: Path, volume: str, command: tuple = ()):
        self.podman = podman
        self.name = f"flux-api-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env_file, self.volume, self.command = env_file, volume, command

    def run_arguments(self) -> list[str]:
        return [
            "--name", self.name, "--env-file", str(self.env_file), "-e", f"BIND=127.0.0.1:{self.port}",
            "-v", f"{self.volume}:/data", "--stop-timeout", STOP_TIMEOUT, "--network", "host",
        ]  # fmt: skip

    def start(self) -> Container:
        self.podman("run", "-d", *self.run_arguments(), IMAGE, *self.command)
        return self

    def run_in_foreground(self) -> subprocess.CompletedProcess:
        """For starts that must fail: its exit code and output."""
        return self.podman("run", *self.run_arguments(), IMAGE, *self.command, check=False)

    def wait_until_serving(self, timeout: float = 60) -> Container:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/healthz", timeout=1)
                return self
            except requests.RequestException:
                if self.state() not in ("running", "created", "configured", "initialized"):
                    break
                time.sleep(0.2)
        raise AssertionError(f"{self.name} is not serving ({self.state()}):\n{self.logs()}")

    def state(self) -> str:
        inspected = self.podman("inspect", "--format", "{{.State.Status}}", self.name, check=False)
        return inspected.stdout.strip() or "gone"

    def exit_code(self) -> int:
        return int(self.podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout)

    def logs(self) -> str:
        logs = self.podman("logs", self.name, check=False)
        return logs.stdout + logs.stderr

    def exec(self, *command: str) -> str:
        return self.podman("exec", self.name, *command).stdout

    def remove(self) -> None:
        self.podman("rm", "-f", "-t", "0", self.name, check=False)


class Containers:
    """Starts containers for one test and removes them, and their volumes, after it (failed or
    not)."""

    def __init__(self, podman: Podman, workdir: Path):
        self.podman, self.workdir = podman, workdir
        self.started: list[Container] = []
        self.volumes: set[str] = set()

    def env_file(self, env: dict) -> Path:
        path = self.workdir / f"flux-api-{uuid.uuid4().hex[:8]}.env"
        path.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
        return path

    def container(self, env: dict, volume: str | None = None, command: tuple = ()) -> Container:
        volume = volume or f"flux-api-test-{uuid.uuid4().hex[:8]}"
        self.volumes.add(volume)
        container = Container(self.podman, self.env_file(env), volume, command)
        self.started.append(container)
        return container

    def remove_all(self) -> None:
        for container in self.started:
            container.remove()
        for volume in self.volumes:
            self.podman("volume", "rm", "-f", volume, check=False)
