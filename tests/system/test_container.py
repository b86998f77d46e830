"""The container image (Dockerfile) and compose.yaml, built and run with podman as docs/container.md
says: generation through the container against the fake Workers AI, a non-root process, images
kept in the volume across a restart, the health check, SIGTERM finishing a generation, a bad
setting stopping the start with one line, the MCP server as the image's second command, and
compose bringing up flux-api.

Open WebUI's and Redis's images cannot be pulled here (no image registry is reachable), so
their services in compose.yaml are checked as definitions (what compose resolves them to), not
run. The base image is made from Debian's packages instead of pulled (tests/support/containers.py).
"""

from __future__ import annotations

import base64
import importlib.util
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

import anyio
import httpx2
import pytest
import requests
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support import ROOT
from tests.support.containers import (
    IMAGE,
    STOP_TIMEOUT,
    Containers,
    build_image,
    unusable,
    usable_podman,
)
from tests.support.fakes.workers_ai import ACCOUNT_ID, TOKEN
from tests.support.programs import free_port
from tests.support.service import API_KEY, cf_api_base

JPEG = b"\xff\xd8\xff"


@pytest.fixture(scope="session")
def podman():
    """podman with the image built once for the session (its base once per machine)."""
    podman = usable_podman()
    build_image(podman)
    return podman


@pytest.fixture
def containers(podman, tmp_path):
    started = Containers(podman, tmp_path)
    yield started
    started.remove_all()


@pytest.fixture
def container_env(fake_ai) -> dict:
    return {
        "API_KEY": API_KEY,
        "CF_ACCOUNT_ID": ACCOUNT_ID,
        "CF_API_TOKEN": TOKEN,
        "CF_API_BASE": cf_api_base(fake_ai),
        "UPSTREAM_RETRY_BACKOFF": "0.05",
        "WEB_CONCURRENCY": "1",
    }


def generate(url: str, prompt: str = "a lighthouse at dawn", **body) -> requests.Response:
    return requests.post(
        f"{url}/v1/images/generations",
        json={"prompt": prompt, **body},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    )


def test_the_image_serves_generations_as_a_user_other_than_root(containers, container_env):
    container = containers.container(container_env).start().wait_until_serving()

    answer = generate(container.url, response_format="b64_json")
    assert answer.status_code == 200, answer.text
    assert base64.b64decode(answer.json()["data"][0]["b64_json"]).startswith(JPEG)

    linked = generate(container.url).json()["data"][0]["url"]
    assert requests.get(linked, timeout=10).content.startswith(JPEG)
    # gunicorn (PID 1) and its workers, not only what `exec` starts, run as the image's user.
    uids = container.exec("sh", "-c", "grep -h '^Uid:' /proc/[0-9]*/status").split()
    assert uids and "0" not in [uid for uid in uids if uid != "Uid:"]
    assert container.exec("id", "-un").strip() == "flux-api"


def test_images_stay_in_the_volume_across_a_restart(containers, container_env, podman):
    container = containers.container(container_env).start().wait_until_serving()
    path = generate(container.url).json()["data"][0]["url"].split(container.url, 1)[1]
    before = requests.get(container.url + path, timeout=10).content

    podman("restart", "-t", STOP_TIMEOUT, container.name, timeout=200)
    container.wait_until_serving()

    assert requests.get(container.url + path, timeout=10).content == before
    assert container.exec("sh", "-c", "ls /data").strip()  # the images are in the volume


def test_the_health_check_turns_healthy(containers, container_env, podman):
    health = podman("image", "inspect", "--format", "{{json .HealthCheck.Test}}", IMAGE).stdout
    assert "healthcheck.py" in health  # kept by --format docker
    container = containers.container(container_env).start()

    # podman runs the check from a systemd timer, absent here: run it as the timer would.
    deadline = time.monotonic() + 60
    while podman("healthcheck", "run", container.name, check=False).returncode != 0:
        assert time.monotonic() < deadline, container.logs()
        time.sleep(0.5)
    status = podman("inspect", "--format", "{{.State.Health.Status}}", container.name).stdout
    assert status.strip() == "healthy"


def test_sigterm_during_a_generation_lets_it_finish(containers, container_env, fake_ai, podman):
    container = containers.container(container_env).start().wait_until_serving()
    fake_ai.latency = 3.0
    answers: list[requests.Response] = []
    request = threading.Thread(target=lambda: answers.append(generate(container.url)))
    request.start()
    deadline = time.monotonic() + 10
    while fake_ai.in_flight == 0:  # the generation has reached Workers AI
        assert time.monotonic() < deadline
        time.sleep(0.05)

    podman("stop", "-t", STOP_TIMEOUT, container.name, timeout=200)
    request.join(timeout=30)

    assert answers and answers[0].status_code == 200, answers and answers[0].text
    assert container.state() == "exited"
    assert container.exit_code() == 0
    assert "Shutting down: Master" in container.logs()


def test_a_bad_setting_stops_the_container_with_one_line(containers, container_env):
    container = containers.container({**container_env, "FLUX_NUM_STEPS": "lots"})

    result = container.run_in_foreground()

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert output.count("FLUX_NUM_STEPS must be a number, not 'lots'.") == 1
    assert "Traceback" not in output


def test_the_mcp_command_lists_its_tools(containers, container_env):
    gateway = containers.container(container_env).start().wait_until_serving()
    port = free_port()
    mcp_env = {"FLUX_API_URL": gateway.url, "MCP_HOST": "127.0.0.1", "MCP_PORT": str(port)}
    mcp = containers.container(mcp_env, command=("python", "-m", "flux_api.mcp", "--http"))
    mcp.podman("run", "-d", "--no-healthcheck", *mcp.run_arguments(), IMAGE, *mcp.command)

    async def list_tools():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
        async with Client(
            streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
        ) as client:
            return (await client.list_tools()).tools

    deadline = time.monotonic() + 30
    while not accepts_connections(port):  # uvicorn is up
        assert time.monotonic() < deadline and mcp.state() == "running", mcp.logs()
        time.sleep(0.2)
    tools = anyio.run(list_tools)
    assert {tool.name for tool in tools} == {"generate_image", "edit_image", "list_models"}


# compose.yaml, through podman-compose (pip), in a copy of the project directory holding the
# test's .env: the repository's own .env (a developer's settings) is never read or written.


def accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def podman_compose(
    podman, project, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("podman_compose") is None:  # tests/requirements.txt has it
        unusable("podman-compose is not installed (pip install -r tests/requirements.txt)")
    return subprocess.run(
        [sys.executable, "-m", "podman_compose", *args],
        cwd=project,
        env=podman.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def compose_project(tmp_path, container_env):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "compose.yaml", project / "compose.yaml")
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in container_env.items()))
    return project


def resolved(podman, project, *profiles: str) -> dict:
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    result = podman_compose(podman, project, *flags, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_brings_up_flux_api_with_its_volume(podman, compose_project, fake_ai):
    port = free_port()
    # Here: the image this session built, on the host's network (no other network works in
    # this sandbox) with BIND on a free port; everything else as compose.yaml says.
    (compose_project / "compose.test.yaml").write_text(
        yaml.safe_dump(
            {
                "services": {
                    "flux-api": {
                        "image": IMAGE,
                        "network_mode": "host",
                        "environment": {"BIND": f"127.0.0.1:{port}"},
                    }
                }
            }
        )
    )
    name = f"flux-api-test-{uuid.uuid4().hex[:8]}"
    files = ["-p", name, "-f", "compose.yaml", "-f", "compose.test.yaml"]
    try:
        up = podman_compose(podman, compose_project, *files, "up", "-d", "--no-build", "flux-api")
        assert up.returncode == 0, up.stdout + up.stderr
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url + "/healthz", timeout=1)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, up.stdout + up.stderr
                time.sleep(0.2)
        linked = generate(url).json()["data"][0]["url"]
        # compose.yaml's PUBLIC_BASE_URL default: the address a browser on this host uses.
        assert linked.startswith("http://localhost:8000/image/")
        mounts = podman("inspect", "--format", "{{json .Mounts}}", f"{name}_flux-api_1").stdout
        assert f"{name}_flux-api-data" in mounts and '"/data"' in mounts
    finally:
        podman_compose(podman, compose_project, *files, "down", "-v", "-t", "0", timeout=200)


def test_compose_wires_open_webui_to_flux_api(podman, compose_project):
    services = resolved(podman, compose_project)["services"]

    assert services["flux-api"]["stop_grace_period"] == "170s"
    assert "flux-api-data:/data" in str(services["flux-api"]["volumes"])
    webui = services["open-webui"]["environment"]
    for base in (
        "OPENAI_API_BASE_URL",
        "IMAGES_OPENAI_API_BASE_URL",
        "IMAGES_EDIT_OPENAI_API_BASE_URL",
    ):
        assert webui[base] == "http://flux-api:8000/v1"
    for key in ("OPENAI_API_KEY", "IMAGES_OPENAI_API_KEY", "IMAGES_EDIT_OPENAI_API_KEY"):
        assert webui[key] == API_KEY  # read from .env, as flux-api reads it
    assert webui["ENABLE_IMAGE_GENERATION"] == "true"
    assert webui["IMAGE_GENERATION_ENGINE"] == "openai"
    assert services["open-webui"]["depends_on"]["flux-api"]["condition"] == "service_healthy"
    assert set(services) == {"flux-api", "open-webui"}  # redis and mcp only with their profile


def test_compose_profiles_add_redis_and_the_mcp_server(podman, compose_project):
    services = resolved(podman, compose_project, "redis", "mcp")["services"]

    redis = services["redis"]["command"]
    assert redis[redis.index("--maxmemory-policy") + 1] == "noeviction"
    assert "ports" not in services["redis"]  # reached inside the compose network only
    mcp = services["mcp"]
    assert mcp["image"] == services["flux-api"]["image"]
    assert mcp["command"] == ["python", "-m", "flux_api.mcp", "--http"]
    assert mcp["environment"]["FLUX_API_URL"] == "http://flux-api:8000"


def test_compose_refuses_to_start_without_an_api_key(podman, compose_project):
    (compose_project / ".env").write_text("CF_ACCOUNT_ID=x\n")

    result = podman_compose(podman, compose_project, "config")

    assert result.returncode != 0
    assert "set API_KEY in .env" in result.stdout + result.stderr
