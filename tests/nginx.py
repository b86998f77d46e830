"""The shipped nginx site (deploy/nginx/flux-api.conf) run for real, changed only where an
operator changes it (ports, server name, certificate paths), in front of a gunicorn on loopback."""

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
    cors_origins: tuple[str, ...] = (),
) -> str:
    """The shipped site with what an operator changes: ports (on loopback), server name,
    certificate paths and, given `cors_origins`, the CORS map as the site's comment says.
    `tls=False` serves the main server block over plain HTTP and `extra` adds locations to it
    (both for benchmarks only)."""
    site = SITE.read_text()
    replacements = {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen [::]:443 ssl;": "",
        "server_name api.example.com;": "server_name localhost 127.0.0.1;",
    }
    if tls:
        cert, key = workdir / "cert.pem", workdir / "key.pem"
        replacements["listen 443 ssl;"] = f"listen 127.0.0.1:{https_port} ssl;"
        replacements["/etc/letsencrypt/live/api.example.com/fullchain.pem"] = str(cert)
        replacements["/etc/letsencrypt/live/api.example.com/privkey.pem"] = str(key)
    else:
        replacements["listen 443 ssl;"] = f"listen 127.0.0.1:{https_port};"
    if cors_origins:
        lines = "".join(f'    "{origin}" $http_origin;\n' for origin in cors_origins)
        replacements["    default $http_origin;\n"] = '    default "";\n' + lines
    for old, new in replacements.items():
        assert old in site, f"the shipped site no longer contains {old!r}"
        site = site.replace(old, new)
    if not tls:
        site = "\n".join(line for line in site.splitlines() if "ssl_" not in line)
    if extra:
        marker = "    location @body_too_large {"
        site = site.replace(marker, extra + "\n" + marker)
    return site


def run_as_debian(workdir: Path) -> list[str]:
    """The command prefix that runs nginx as Debian's does, as root with /var/lib/nginx there,
    without touching this machine's own: a private mount namespace puts a directory of the
    test's at /var/lib/nginx (unprivileged, inside a user namespace). Without namespaces, root
    uses the real /var/lib/nginx, where the site's cache goes on a server too."""
    var_lib = workdir / "var-lib-nginx"
    var_lib.mkdir(exist_ok=True)
    user_ns = [] if os.geteuid() == 0 else ["--user", "--map-current-user", "--keep-caps"]
    prefix = ["unshare", *user_ns, "--mount", "--propagation", "private", "sh", "-c"]
    prefix += ['mount --bind "$0" /var/lib/nginx && exec "$@"', str(var_lib)]
    if shutil.which("unshare") and subprocess.run([*prefix, "true"]).returncode == 0:
        return prefix
    if os.geteuid() == 0:
        return []
    message = "nginx needs root or user namespaces here: the site caches under /var/lib/nginx"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Nginx:
    def __init__(
        self,
        upstream_port: int,
        workdir: Path,
        tls: bool = True,
        extra: str = "",
        cors_origins: tuple[str, ...] = (),
    ):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.http_port, self.https_port = _free_port(), _free_port()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://localhost:{self.https_port}"
        # requests checks the self-signed certificate: pass this as `verify`.
        self.cert = str(self_signed_cert(workdir)[0]) if tls else True
        self.site = workdir / "site.conf"
        self.site.write_text(
            render_site(
                upstream_port, self.http_port, self.https_port, workdir, tls, extra, cors_origins
            )
        )
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (workdir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        # Debian's nginx.conf would be here; this one keeps the pid, logs and temporary files
        # in the test's directory and allows the idle-socket floods' connections.
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
            f"  access_log off;\n  {temp}\n  include {self.site};\n}}\n"
        )
        self.process: subprocess.Popen | None = None
        self.check_output = ""

    def start(self) -> "Nginx":
        binary = require_program("nginx", "nginx")
        prefix = run_as_debian(self.workdir)
        args = [binary, "-p", str(self.workdir), "-c", str(self.conf)]
        check = subprocess.run([*prefix, *args, "-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        # Warnings do not fail `nginx -t`, so an operator could miss them: none are allowed.
        assert "[warn]" not in check.stderr, check.stderr
        self.check_output = check.stderr
        self.process = subprocess.Popen(
            [*prefix, *args, "-g", "daemon off;"],
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
