"""The multi-node recipe run for real: a redis-server, two gunicorn nodes (the shipped
gunicorn.conf.py) sharing it through REDIS_URL, each with a DATA_DIR of its own, and the shipped
multi-node nginx site (deploy/nginx/flux-api-nodes.conf, over TLS on loopback) in front of them.
PUBLIC_BASE_URL is nginx's address on both nodes, as the site's comment says. The shipped Redis
settings (deploy/redis/flux-api.conf) are loaded into a redis-server too."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import redis
import requests

from tests.support import ROOT
from tests.support.fakes.workers_ai import ACCOUNT_ID
from tests.support.nginx import NodesNginx
from tests.support.programs import Gunicorn, free_port, require_program
from tests.support.redis_server import RedisServer
from tests.support.service import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
PASSWORD = "redis-SECRET-nodes-7"
REDIS_SNIPPET = ROOT / "deploy" / "redis" / "flux-api.conf"
# One line per request the app answered, in each node's log.
SERVED = re.compile(r"flux_api\.access pid=(\d+) \S+ request method=POST path=(\S+) status=(\d+)")


@dataclass
class Cluster:
    redis: RedisServer
    nodes: list[Gunicorn]
    nginx: NodesNginx

    def served(self, node: Gunicorn) -> list[tuple[str, str, str]]:
        """(pid, path, status) of each POST `node` answered."""
        return SERVED.findall(node.log)


@pytest.fixture
def cluster(tmp_path, service_env):
    """Start Redis, the nodes (`workers` processes each) and nginx in front of them."""
    started = []

    def start(nodes: int = 2, workers: int = 2, **env) -> Cluster:
        store = RedisServer(tmp_path / "redis", free_port(), PASSWORD).start()
        started.append(store)
        shared = {**service_env, "REDIS_URL": store.url, **env}
        servers = [
            Gunicorn({**shared, "DATA_DIR": str(tmp_path / f"node-{i}")}, tmp_path, workers)
            for i in range(nodes)
        ]
        nginx = NodesNginx([server.port for server in servers], tmp_path / "nginx")
        for server in servers:  # set once, the same on every node: nginx's public address
            server.env["PUBLIC_BASE_URL"] = nginx.url
            started.append(server.start())
        started.append(nginx.start())
        return Cluster(store, servers, nginx)

    yield start
    for process in reversed(started):
        process.stop()


def chat(url: str, content: str = "a fox", verify=True) -> requests.Response:
    return requests.post(
        f"{url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": content}]},
        headers=AUTH,
        verify=verify,
        timeout=30,
    )


def generate(url: str, prompt: str, verify=True) -> requests.Response:
    return requests.post(
        f"{url}/v1/images/generations",
        json={"prompt": prompt},
        headers=AUTH,
        verify=verify,
        timeout=30,
    )


def image_url(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    content = response.json()["choices"][0]["message"]["content"]
    return re.search(r"\((https?://[^)]+/image/[A-Za-z0-9_-]+)\)", content).group(1)


IMAGE_HEADERS = ("Content-Type", "Content-Length", "ETag", "Expires", "X-Content-Type-Options")


def test_an_image_made_on_one_node_is_the_same_from_the_other_and_through_nginx(
    cluster, fake_ai, tmp_path
):
    c = cluster()
    a, b = c.nodes
    url = image_url(chat(a.url))  # made through node A, directly
    # PUBLIC_BASE_URL: the address is nginx's, whichever node made it.
    assert url.startswith(f"{c.nginx.url}/image/")
    path = url[len(c.nginx.url) :]
    from_a = requests.get(a.url + path, timeout=10)
    from_b = requests.get(b.url + path, timeout=10)
    through = requests.get(url, verify=c.nginx.cert, timeout=10)
    again = requests.get(url, verify=c.nginx.cert, timeout=10)
    for response in (from_a, from_b, through, again):
        assert response.status_code == 200
        assert response.content == from_a.content
        for header in IMAGE_HEADERS:
            assert response.headers[header] == from_a.headers[header], header
    assert from_a.headers["Content-Type"] == "image/jpeg"
    assert from_b.headers["Cache-Control"] == from_a.headers["Cache-Control"]
    assert from_b.headers["Cache-Control"].startswith("public, max-age=")
    # nginx: its cache, the site's headers (no max-age, HSTS), the second fetch from its cache.
    assert (through.headers["X-Cache-Status"], again.headers["X-Cache-Status"]) == ("MISS", "HIT")
    assert through.headers["Cache-Control"] == "public"
    assert through.headers["Strict-Transport-Security"] == "max-age=31536000"
    # B revalidates what A made; nothing shared was written under either DATA_DIR.
    etag = {"If-None-Match": from_a.headers["ETag"]}
    assert requests.get(b.url + path, headers=etag, timeout=10).status_code == 304
    assert not (tmp_path / "node-0" / "images").exists()
    assert not (tmp_path / "node-1" / "images").exists()


def test_the_rate_limit_is_one_count_for_both_nodes_behind_nginx(cluster, fake_ai):
    c = cluster(RATE_LIMIT="4/minute")
    if time.time() % 60 > 50:  # keep all eight requests inside one minute's window
        time.sleep(60 - time.time() % 60 + 0.1)
    fake_ai.latency = 0.3  # the eight overlap
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: chat(c.nginx.url, f"fox {i}", c.nginx.cert), range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 4 + [429] * 4
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)
    assert len(fake_ai.calls) == 4
    time.sleep(0.3)  # the access lines are written by a logging thread
    per_node = [[status for _, _, status in c.served(node)] for node in c.nodes]
    print(f"statuses per node: {per_node}")
    assert all(per_node), "nginx sent every request to one node"
    assert sorted(sum(per_node, [])) == ["200"] * 4 + ["429"] * 4


def test_an_account_parked_by_one_node_is_skipped_by_the_other(cluster, fake_ai):
    other_id, other_token = "bbbbbb0123456789abcdef0123456789", "cf-token-B-SECRET-77aa"
    fake_ai.add_account(other_id, other_token)
    c = cluster(CF_ACCOUNTS=f"{other_id}:{other_token}")
    a, b = c.nodes
    fake_ai.exhausted.add(ACCOUNT_ID)
    # Node A spreads over both accounts: within two generations it calls ACCOUNT_ID, which
    # answers 4006, and parks it (the generation goes on to the other account).
    for _ in range(2):
        assert chat(a.url).status_code == 200
    assert len(fake_ai.calls_to(ACCOUNT_ID)) == 1
    fake_ai.calls.clear()
    for _ in range(4):
        assert chat(b.url).status_code == 200
    assert fake_ai.calls_to(ACCOUNT_ID) == []
    assert len(fake_ai.calls_to(other_id)) == 4
    for node in (a, b):
        health = requests.get(node.url + "/healthz", timeout=10).json()
        assert [acc["state"] for acc in health["accounts"]] == ["quota_exhausted", "ok"]
        assert health["usable_accounts"] == 1


@dataclass
class Drain:
    answers: list[tuple[float, int]]  # (when, status) of every generation sent through nginx
    direct: requests.Response  # the one in flight on node A when it was told to stop
    terminated: float
    exited: float
    nginx_before: list[str]  # nginx's access lines before the SIGTERM
    nginx_after: list[str]


def drain_node_a(c: Cluster, fake_ai, before_sigterm=lambda: None) -> Drain:
    """Three clients send generations back to back through nginx (0.3 s each at the fake); after
    2 s, one more goes to node A directly, and once it is at the fake, A gets SIGTERM. The
    clients go on for 3 s after A has exited."""
    a, _ = c.nodes
    fake_ai.latency = 0.3
    answers: list[tuple[float, int]] = []
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            response = generate(c.nginx.url, f"stream {n} {i}", c.nginx.cert)
            answers.append((time.monotonic(), response.status_code))
            i += 1

    def at_the_fake(prompt: str) -> bool:
        return any(call.get("fields", {}).get("prompt") == prompt for call in fake_ai.calls)

    clients = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for thread in clients:
        thread.start()
    direct: list[requests.Response] = []
    try:
        time.sleep(2)
        before_sigterm()
        sent = threading.Thread(target=lambda: direct.append(generate(a.url, "direct on A")))
        sent.start()
        deadline = time.monotonic() + 5
        while not at_the_fake("direct on A"):
            assert time.monotonic() < deadline, "the direct generation never reached the fake"
            time.sleep(0.01)
        nginx_before = c.nginx.access_lines()
        terminated = time.monotonic()
        a.process.send_signal(signal.SIGTERM)
        sent.join(timeout=30)
        a.process.wait(timeout=30)
        exited = time.monotonic()
        time.sleep(3)  # B alone serves the stream
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
    print(f"{len(answers)} generations; A exited {exited - terminated:.1f} s after SIGTERM")
    print(f"nginx's error log:\n{(c.nginx.workdir / 'error.log').read_text()}")
    after = c.nginx.access_lines()[len(nginx_before) :]
    return Drain(answers, direct[0], terminated, exited, nginx_before, after)


def check_drained(c: Cluster, drain: Drain) -> None:
    a, b = c.nodes
    assert a.process.returncode == 0
    # What A was doing when told to stop finished: the direct call (and nginx's, below).
    assert drain.direct.status_code == 200
    assert len([at for at, _ in drain.answers if at > drain.exited]) >= 6  # the stream went on
    a_port, b_port = (f"127.0.0.1:{node.port}" for node in (a, b))
    assert any(f"upstream={a_port}" in line for line in drain.nginx_before)
    # The last requests went to B alone (after A had refused them, if it was tried at all).
    assert drain.nginx_after[-1].endswith(f"upstream={b_port} upstream_status=200")
    # No client saw an error: every generation through nginx answered 200.
    statuses = [status for _, status in drain.answers]
    assert statuses.count(200) == len(statuses), sorted(set(statuses))


def test_sigterm_drains_a_node_and_no_client_sees_an_error(cluster, fake_ai):
    """A stopping worker closes its listening socket at once (flux_api/server/worker.py): nginx gets
    "connection refused", which is safe to retry elsewhere, instead of a connection reset after
    its POST was sent, which it would answer 502."""
    c = cluster()
    check_drained(c, drain_node_a(c, fake_ai))


def test_a_node_taken_out_of_nginx_then_stopped_drains_without_an_error(cluster, fake_ai):
    """The drain the README gives: mark the node `down`, reload nginx, then stop the node."""
    c = cluster()
    drain = drain_node_a(c, fake_ai, lambda: c.nginx.take_out(c.nodes[0].port))
    check_drained(c, drain)
    a_port = f"127.0.0.1:{c.nodes[0].port}"
    assert not any(a_port in line for line in drain.nginx_after)  # nginx no longer tried A


def test_the_shipped_redis_settings_load_in_redis_server(tmp_path):
    """deploy/redis/flux-api.conf, included as its comment says, gives Redis the settings the
    README asks for (only the address, port and password changed, as an operator does)."""
    binary = require_program("redis-server", "redis-server")
    snippet = REDIS_SNIPPET.read_text()
    for line in ("maxmemory-policy noeviction", 'save ""', "appendonly no", "protected-mode yes"):
        assert re.search(rf"^{re.escape(line)}$", snippet, re.M), line
    port = free_port()
    local = snippet.replace("bind 127.0.0.1 10.0.0.10", "bind 127.0.0.1")
    local = local.replace("port 6379", f"port {port}")
    local = local.replace("CHANGE-ME-a-long-random-password", PASSWORD)
    assert local.count(str(port)) == 1 and PASSWORD in local
    (tmp_path / "flux-api.conf").write_text(local)
    main = tmp_path / "redis.conf"  # Debian's redis.conf would come first; the include is last
    main.write_text(f"dir {tmp_path}\nsave 3600 1\ninclude {tmp_path / 'flux-api.conf'}\n")
    process = subprocess.Popen([binary, str(main)], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, password=PASSWORD)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None, "no redis-server"
                time.sleep(0.05)
        settings = {
            name: client.config_get(name)[name]
            for name in ("maxmemory", "maxmemory-policy", "save", "appendonly", "bind")
        }
        limit = int(re.search(r"^maxmemory (\d+)mb$", snippet, re.M).group(1))
        assert limit >= 1024 * 1.2  # STORE_SIZE_LIMIT_MB's default plus 20 %
        assert settings == {
            "maxmemory": str(limit * 1024 * 1024),
            "maxmemory-policy": "noeviction",
            "save": "",
            "appendonly": "no",
            "bind": "127.0.0.1",
        }
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="wrong").ping()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_multinode_site_differs_from_the_single_node_one_only_where_it_must():
    """The same protections as deploy/nginx/flux-api.conf: every directive of the single-node
    site's server blocks is in the multi-node one too."""
    single = (ROOT / "deploy" / "nginx" / "flux-api.conf").read_text()
    nodes = (ROOT / "deploy" / "nginx" / "flux-api-nodes.conf").read_text()

    def directives(text: str) -> set[str]:
        lines = (line.split("#")[0].strip() for line in text.splitlines())
        return {line for line in lines if line and not line.startswith("server ")}

    missing = directives(single) - directives(nodes)
    # The generations' limit is the sum over the nodes: the two nodes' 960, not one's 480.
    assert missing == {"limit_conn flux_generations 480;"}, missing
    assert "limit_conn flux_generations 960;" in nodes
    assert "proxy_next_upstream error timeout;" in nodes
    assert "non_idempotent" not in nodes.split("proxy_next_upstream error timeout;")[1]
    assert len(re.findall(r"^    server \S+ max_fails=\d+ fail_timeout=\d+s;$", nodes, re.M)) >= 2
