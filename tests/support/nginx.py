"""The shipped nginx site (deploy/nginx/flux-api.conf) run for real, changed only where an
operator changes it (ports, server name, certificate paths), in front of a gunicorn on loopback."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.programs import free_port, require_program

SITE = ROOT / "deploy" / "nginx" / "flux-api.conf"


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
    replacements = {"server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};"}
    if cors_origins:
        lines = "".join(f'    "{origin}" $http_origin;\n' for origin in cors_origins)
        replacements["    default $http_origin;\n"] = '    default "";\n' + lines
    site = SITE.read_text()
    return _as_operator(site, replacements, http_port, https_port, workdir, tls, extra)


def _as_operator(
    site: str,
    replacements: dict,
    http_port: int,
    https_port: int,
    workdir: Path,
    tls: bool,
    extra: str,
) -> str:
    """What an operator changes in either shipped site (ports on loopback, server name,
    certificate paths), plus `replacements`; `tls=False` and `extra` for benchmarks only."""
    replacements = {
        **replacements,
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen [::]:443 ssl;": "",
        "server_name api.example.com;": "server_name localhost 127.0.0.1;",
    }
    if tls:
        replacements["listen 443 ssl;"] = f"listen 127.0.0.1:{https_port} ssl;"
        replacements["/etc/letsencrypt/live/api.example.com/fullchain.pem"] = str(
            workdir / "cert.pem"
        )
        replacements["/etc/letsencrypt/live/api.example.com/privkey.pem"] = str(workdir / "key.pem")
    else:
        replacements["listen 443 ssl;"] = f"listen 127.0.0.1:{https_port};"
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
        self.http_port, self.https_port = free_port(), free_port()
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

    def start(self) -> Nginx:
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


# The multi-node recipe: the same site with an upstream of several nodes (README: "Several nodes
# on Redis").
NODES_SITE = ROOT / "deploy" / "nginx" / "flux-api-nodes.conf"
_NODE_LINE = re.compile(r"^    server 10\.0\.0\.\d+:8000( [^;]*);\n", re.M)


def render_nodes_site(
    upstream_ports: list[int],
    http_port: int,
    https_port: int,
    workdir: Path,
    tls: bool = True,
    extra: str = "",
) -> str:
    """The shipped multi-node site with what an operator changes: the nodes' addresses (here
    loopback ports, one `server` line each with the shipped parameters), ports, server name and
    certificate paths. `tls=False` and `extra` as in render_site (benchmarks only)."""
    site = NODES_SITE.read_text()
    shipped = _NODE_LINE.findall(site)
    assert len(shipped) >= 2, "the multi-node site no longer lists its nodes"
    params = shipped[0]
    nodes = "".join(f"    server 127.0.0.1:{port}{params};\n" for port in upstream_ports)
    first = _NODE_LINE.search(site)
    site = site[: first.start()] + nodes + _NODE_LINE.sub("", site[first.start() :])
    # The nodes' MCP servers: one on loopback, as in the single-node site (no test runs one).
    mcp = re.compile(r"^    server 10\.0\.0\.\d+:8001( [^;]*);\n", re.M)
    first = mcp.search(site)
    if first:
        line = f"    server 127.0.0.1:8001{first.group(1)};\n"
        site = site[: first.start()] + line + mcp.sub("", site[first.start() :])
    return _as_operator(site, {}, http_port, https_port, workdir, tls, extra)


class NodesNginx(Nginx):
    """nginx with the shipped multi-node site in front of gunicorn nodes on loopback ports. Its
    access log (`access_lines()`) records, per request, the status and the node(s) it went to
    ($upstream_addr: "127.0.0.1:A, 127.0.0.1:B" when nginx moved on to the next node)."""

    def __init__(
        self,
        upstream_ports: list[int],
        workdir: Path,
        tls: bool = True,
        extra: str = "",
        access_log: bool = True,
    ):
        """`access_log=False`: no access log, as Nginx (benchmarks)."""
        super().__init__(upstream_ports[0], workdir, tls, extra)
        self.upstream_ports = list(upstream_ports)
        self.site.write_text(
            render_nodes_site(
                self.upstream_ports, self.http_port, self.https_port, workdir, tls, extra
            )
        )
        self.access_log = workdir / "access.log"
        if not access_log:
            return
        log_format = (
            "  log_format nodes '$request_method $uri $status upstream=$upstream_addr "
            "upstream_status=$upstream_status';\n"
            f"  access_log {self.access_log} nodes;\n"
        )
        self.conf.write_text(self.conf.read_text().replace("  access_log off;\n", log_format))

    def access_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def take_out(self, port: int) -> None:
        """What an operator does before stopping a node: mark it `down` in the site and reload
        nginx (`nginx -s reload`: SIGHUP to the master; requests in flight finish on the old
        workers, new ones go to the nodes left)."""
        site = self.site.read_text()
        line = re.search(rf"^    server 127\.0\.0\.1:{port}( [^;]*)?;$", site, re.M)
        assert line, f"no node on port {port} in the site"
        site = site.replace(line.group(0), line.group(0)[:-1] + " down;")
        self.site.write_text(site)
        os.kill(int((self.workdir / "nginx.pid").read_text()), signal.SIGHUP)
        time.sleep(1)  # the new workers start; the old ones stop taking connections
