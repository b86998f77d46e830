"""The shipped nginx site (deploy/nginx/flux-api.conf) run for real, with ports and paths
substituted, in front of a gunicorn on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "deploy" / "nginx" / "flux-api.conf"


def require_program(name: str, package: str) -> str:
    """A program from Debian's packages. Missing: the test is skipped with the reason, except in
    CI (where .ci/run installs it), where it fails rather than pass silently."""
    candidates = (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}")
    binary = next((c for c in candidates if c and Path(c).exists()), None)
    if binary is None:
        message = f"{name} is not installed (apt-get install {package}); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def render_site(
    upstream_port: int,
    http_port: int,
    https_port: int,
    workdir: Path,
    tls: bool = True,
    extra: str = "",
) -> str:
    """The shipped site with loopback ports and temporary paths; `tls=False` serves the main
    server block over plain HTTP (for benchmarks); `extra` adds locations to it."""
    site = SITE.read_text()
    replacements = {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen [::]:443 ssl http2;": "",
        "server_name api.example.com;": "server_name localhost 127.0.0.1;",
        "/var/cache/nginx/flux-api": str(workdir / "cache"),
        "root /var/www/html;": f"root {workdir};",
    }
    if tls:
        cert, key = workdir / "cert.pem", workdir / "key.pem"
        replacements["listen 443 ssl http2;"] = f"listen 127.0.0.1:{https_port} ssl http2;"
        replacements["/etc/letsencrypt/live/api.example.com/fullchain.pem"] = str(cert)
        replacements["/etc/letsencrypt/live/api.example.com/privkey.pem"] = str(key)
    else:
        replacements["listen 443 ssl http2;"] = f"listen 127.0.0.1:{https_port};"
    for old, new in replacements.items():
        assert old in site, f"the shipped site no longer contains {old!r}"
        site = site.replace(old, new)
    if not tls:
        site = "\n".join(line for line in site.splitlines() if "ssl_" not in line)
    if extra:
        marker = "    location @body_too_large {"
        site = site.replace(marker, extra + "\n" + marker)
    return site


class Nginx:
    def __init__(self, upstream_port: int, workdir: Path, tls: bool = True, extra: str = ""):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.http_port, self.https_port = _free_port(), _free_port()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://localhost:{self.https_port}"
        # requests checks the self-signed certificate: pass this as `verify`.
        self.cert = str(self_signed_cert(workdir)[0]) if tls else True
        site = workdir / "site.conf"
        site.write_text(
            render_site(upstream_port, self.http_port, self.https_port, workdir, tls, extra)
        )
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (workdir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        user = "user root;" if os.geteuid() == 0 else ""
        temp = " ".join(
            f"{kind}_temp_path {workdir}/tmp/{sub};"
            for kind, sub in (
                ("client_body", "body"),
                ("proxy", "proxy"),
                ("fastcgi", "fastcgi"),
                ("uwsgi", "uwsgi"),
                ("scgi", "scgi"),
            )
        )
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(
            f"{user}\nworker_processes 1;\npid {workdir}/nginx.pid;\n"
            f"error_log {workdir}/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n"
            f"  access_log off;\n  {temp}\n  include {site};\n}}\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> "Nginx":
        binary = require_program("nginx", "nginx")
        check = subprocess.run(
            [binary, "-t", "-p", str(self.workdir), "-c", str(self.conf)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(
            [binary, "-p", str(self.workdir), "-c", str(self.conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.https_port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError((self.workdir / "error.log").read_text())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
