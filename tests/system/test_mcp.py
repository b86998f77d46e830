"""The MCP server (python -m flux_api.mcp), driven by the official SDK's own client over both
transports, against the gateway running with the fake Workers AI: tools listed, images made and
edited (URL, resource link, inline preview), progress, gateway errors as tool errors, the bearer
check over HTTP, and nginx passing /mcp on as a stream."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time

import anyio
import httpx2
import pytest
import requests
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

from tests.support import ROOT
from tests.support.fakes.workers_ai import Scripted
from tests.support.nginx import Nginx
from tests.support.programs import free_port, require_program
from tests.support.service import API_KEY


def mcp_env(gateway_url: str, **more) -> dict:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "FLUX_API_URL": gateway_url,
        "FLUX_API_KEY": API_KEY,
        **more,
    }


def stdio_client(gateway_url: str, cwd) -> Client:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "flux_api.mcp"], env=mcp_env(gateway_url), cwd=cwd
    )
    return Client(params)


def call(client_factory, tool: str, arguments: dict, **options):
    """Run one tool call in a fresh session; (result, progress messages)."""
    progress: list[str] = []

    async def on_progress(value, total, message):
        progress.append(message or "")

    async def run():
        async with client_factory() as client:
            return await client.call_tool(tool, arguments, progress_callback=on_progress, **options)

    return anyio.run(run), progress


def blocks(result, kind: str) -> list:
    return [block for block in result.content if block.type == kind]


@pytest.fixture
def gateway(start_service):
    return start_service()


def test_stdio_lists_the_tools_with_their_schemas(gateway, tmp_path):
    async def run():
        async with stdio_client(gateway.url, tmp_path) as client:
            return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in anyio.run(run)}
    assert set(tools) == {"generate_image", "edit_image", "list_models"}
    schema = tools["generate_image"].input_schema
    assert schema["required"] == ["prompt"]
    assert schema["properties"]["n"]["maximum"] == 4
    assert "16:9" in schema["properties"]["aspect_ratio"]["description"]
    assert tools["edit_image"].input_schema["properties"]["images"]["maxItems"] == 4


def test_stdio_generate_image_gives_the_url_a_link_and_a_preview(gateway, fake_ai, tmp_path):
    result, _ = call(
        lambda: stdio_client(gateway.url, tmp_path),
        "generate_image",
        {"prompt": "a lighthouse at dawn", "aspect_ratio": "16:9"},
    )
    assert not result.is_error, result.content
    text = blocks(result, "text")[0].text
    url = text.split("Image 1: ")[1].split()[0]
    assert url.startswith(gateway.url + "/image/")
    assert "Size: 1024x576" in text
    assert blocks(result, "resource_link")[0].uri == url
    served = Image.open(io.BytesIO(requests.get(url, timeout=10).content))
    assert served.size == (1024, 576)
    preview = base64.b64decode(blocks(result, "image")[0].data)
    assert len(preview) < 200_000
    small = Image.open(io.BytesIO(preview))
    assert small.format == "JPEG" and small.size == (512, 288)
    assert fake_ai.calls[0]["fields"]["prompt"] == "a lighthouse at dawn"  # --ar was read


def test_edit_image_takes_an_image_of_this_service_by_url(gateway, fake_ai, tmp_path):
    made, _ = call(
        lambda: stdio_client(gateway.url, tmp_path), "generate_image", {"prompt": "a fox"}
    )
    url = blocks(made, "resource_link")[0].uri
    edited, _ = call(
        lambda: stdio_client(gateway.url, tmp_path),
        "edit_image",
        {"prompt": "make it blue", "images": [url]},
    )
    assert not edited.is_error, edited.content
    assert blocks(edited, "resource_link")[0].uri != url
    assert fake_ai.calls[-1]["model"].endswith("flux-2-klein-4b")
    assert len(fake_ai.calls[-1]["references"]) == 1


def test_an_image_elsewhere_is_never_fetched(gateway, fake_ai, tmp_path):
    result, _ = call(
        lambda: stdio_client(gateway.url, tmp_path),
        "edit_image",
        {"prompt": "blue", "images": ["http://169.254.169.254/latest/meta-data"]},
    )
    assert result.is_error
    assert "only images of this service" in blocks(result, "text")[0].text
    assert fake_ai.calls == []


@pytest.mark.parametrize(
    "scripted, words",
    [
        (Scripted(429, 4006, "AiError: daily free allocation used"), "daily free allocation"),
        (Scripted(400, 3030, "AiError: Your output has been flagged (r-1)"), "content filter"),
    ],
)
def test_gateway_errors_are_tool_errors_with_its_message(
    gateway, fake_ai, tmp_path, scripted, words
):
    fake_ai.script(scripted)
    result, _ = call(
        lambda: stdio_client(gateway.url, tmp_path), "generate_image", {"prompt": "a fox"}
    )
    assert result.is_error
    assert words in blocks(result, "text")[0].text


def test_list_models_says_which_edit(gateway, tmp_path):
    result, _ = call(lambda: stdio_client(gateway.url, tmp_path), "list_models", {})
    models = {m["id"]: m for m in json.loads(blocks(result, "text")[0].text)}
    assert models["@cf/black-forest-labs/flux-1-schnell"]["edits"] is False
    assert models["@cf/black-forest-labs/flux-2-dev"]["max_input_images"] == 4


def test_progress_is_reported_while_the_image_is_made(gateway, fake_ai, tmp_path):
    fake_ai.latency = 2.5
    result, progress = call(
        lambda: stdio_client(gateway.url, tmp_path), "generate_image", {"prompt": "a fox"}
    )
    assert not result.is_error
    assert len(progress) >= 2 and progress[0].startswith("Making the image")


# Streamable HTTP: its own process, as the systemd unit runs it.


class MCPHttp:
    def __init__(self, gateway_url: str, workdir, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.log = workdir / f"mcp-{self.port}.log"
        environ = mcp_env(gateway_url, MCP_PORT=str(self.port), **env)
        environ.pop("FLUX_API_KEY")  # over HTTP, each caller sends its own key
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flux_api.mcp", "--http"],
            cwd=workdir,
            env=environ,
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(self.log.read_text())

    def client(self, key: str = API_KEY, url: str | None = None) -> Client:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
        return Client(streamable_http_client(url or self.url, http_client=http))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def mcp_http(gateway, tmp_path):
    servers = []

    def start(**env) -> MCPHttp:
        server = MCPHttp(gateway.url, tmp_path, **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_http_generate_image_with_the_callers_key(mcp_http, fake_ai):
    server = mcp_http()
    result, _ = call(server.client, "generate_image", {"prompt": "a fox", "n": 2})
    assert not result.is_error, result.content
    assert len(blocks(result, "resource_link")) == 2 and len(blocks(result, "image")) == 2
    assert len(fake_ai.calls) == 2


def test_http_refuses_a_wrong_or_missing_key(mcp_http, fake_ai):
    server = mcp_http()
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}
    for headers in ({}, {"Authorization": "Bearer sk-wrong-SECRET"}):
        response = requests.post(server.url, json=hello, headers={**accept, **headers}, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(Exception):
        call(lambda: server.client(key="sk-wrong-SECRET"), "list_models", {})
    assert "sk-wrong-SECRET" not in server.log.read_text()


def test_nginx_passes_mcp_on_as_a_stream(gateway, mcp_http, fake_ai, tmp_path):
    nginx = Nginx(int(gateway.url.rsplit(":", 1)[1]), tmp_path / "nginx", tls=False)
    public = f"http://localhost:{nginx.https_port}"
    server = mcp_http(PUBLIC_BASE_URL=public)
    nginx.site.write_text(
        nginx.site.read_text().replace("server 127.0.0.1:8001;", f"server 127.0.0.1:{server.port};")
    )
    nginx.start()
    try:
        fake_ai.latency = 2.5
        started = time.monotonic()
        seen: list[float] = []

        async def on_progress(value, total, message):
            seen.append(time.monotonic() - started)

        async def run():
            async with server.client(url=f"{public}/mcp") as client:
                return await client.call_tool(
                    "generate_image", {"prompt": "a fox"}, progress_callback=on_progress
                )

        result = anyio.run(run)
        done = time.monotonic() - started
        assert not result.is_error, result.content
        # Progress arrived while the image was being made, not all at the end: not buffered.
        assert seen and seen[0] < done - 1.5
    finally:
        nginx.stop()


def test_the_systemd_unit_verifies(tmp_path):
    analyze = require_program("systemd-analyze", "systemd")
    unit = (ROOT / "deploy" / "systemd" / "flux-api-mcp.service").read_text()
    path = tmp_path / "flux-api-mcp.service"
    path.write_text(unit.replace("/opt/flux-api/.venv/bin/python", sys.executable))
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "flux-api-mcp.service" not in result.stderr, result.stderr
    assert "ExecStart=/opt/flux-api/.venv/bin/python -m flux_api.mcp --http" in unit
    assert "Environment=MCP_PORT=8001" in unit
    site = (ROOT / "deploy" / "nginx" / "flux-api.conf").read_text()
    assert "server 127.0.0.1:8001;" in site  # where the unit listens


# From a review.


def raw_post(server: MCPHttp, headers: list[tuple[str, str]]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
    connection.putrequest("POST", "/mcp")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    for name, value in [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("Content-Length", str(len(body))),
        *headers,
    ]:
        connection.putheader(name, value)
    connection.endheaders(body)
    status = connection.getresponse().status
    connection.close()
    return status


def test_http_takes_exactly_one_bearer_key_and_never_flux_api_key(mcp_http, fake_ai):
    server = mcp_http(FLUX_API_KEY=API_KEY)  # in a shared .env: must not be used over HTTP
    two = [("Authorization", "Basic eDp5"), ("Authorization", f"Bearer {API_KEY}")]
    assert raw_post(server, two) == 401
    assert raw_post(server, [("Authorization", "Bearer caf\u00e9")]) == 401  # not a 500
    assert raw_post(server, [("Authorization", f"Bearer {API_KEY}")]) == 200


def test_a_gateway_that_cannot_answer_is_a_503_not_a_wrong_key(tmp_path):
    server = MCPHttp(f"http://127.0.0.1:{free_port()}", tmp_path)  # nothing listens there
    try:
        assert raw_post(server, [("Authorization", f"Bearer {API_KEY}")]) == 503
    finally:
        server.stop()


def test_base64_as_tools_print_it_is_accepted(gateway, fake_ai, tmp_path):
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(picture, format="PNG")
    wrapped = base64.encodebytes(picture.getvalue()).decode()  # lines of 76 characters
    result, _ = call(
        lambda: stdio_client(gateway.url, tmp_path),
        "edit_image",
        {"prompt": "make it blue", "images": [wrapped]},
    )
    assert not result.is_error, result.content


def test_an_image_pillow_refuses_is_the_gateways_clear_error(gateway, fake_ai, tmp_path):
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, format="PNG")  # a few KB, 400 Mpixels
    result, _ = call(
        lambda: stdio_client(gateway.url, tmp_path),
        "edit_image",
        {"prompt": "blue", "images": [base64.b64encode(bomb.getvalue()).decode()]},
    )
    assert result.is_error
    assert "more pixels than" in blocks(result, "text")[0].text  # the gateway's own words
    assert fake_ai.calls == []


def test_url_safe_base64_without_padding_is_accepted(gateway, fake_ai, tmp_path):
    picture = io.BytesIO()
    Image.frombytes("RGB", (32, 32), os.urandom(32 * 32 * 3)).save(picture, format="PNG")
    encoded = base64.urlsafe_b64encode(picture.getvalue()).decode().rstrip("=")
    assert {"-", "_"} <= set(encoded) and len(encoded) % 4  # both URL-safe letters, no padding
    lines = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    result, _ = call(
        lambda: stdio_client(gateway.url, tmp_path),
        "edit_image",
        {"prompt": "make it blue", "images": [lines, "data:image/png;base64," + encoded]},
    )
    assert not result.is_error, result.content
    assert len(fake_ai.calls[-1]["references"]) == 2


@pytest.mark.parametrize(
    "value, words",
    [
        ("iVBORw0KGgo$AAAA", "'$' at character 12 is not a base64 character"),
        ("iVBORw0KGgoAA", "cut short"),
        ("data:image/png;base64,", "no data"),
    ],
)
def test_a_bad_base64_value_is_a_tool_error_saying_what_is_wrong(
    gateway, fake_ai, tmp_path, value, words
):
    result, _ = call(
        lambda: stdio_client(gateway.url, tmp_path),
        "edit_image",
        {"prompt": "blue", "images": [value]},
    )
    assert result.is_error
    text = blocks(result, "text")[0].text
    assert "images[0]" in text and words in text, text
    assert fake_ai.calls == []
