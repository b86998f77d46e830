"""GET /metrics as Prometheus reads it (parsed by prometheus_client's own parser): a scripted run
with faults across 4 gunicorn workers counted exactly; a worker killed or replaced by a reload
neither loses nor doubles a count, and its streams leave the gauge; who may read them; the store
read on disk and in Redis (the metrics as code: tests/unit/test_metrics.py)."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable

import pytest
import requests

from flux_api.config.accounts import short_id
from tests.support.accounts import B_ID, B_TOKEN
from tests.support.fakes.optimizer import OPTIMIZER_KEY
from tests.support.fakes.workers_ai import ACCOUNT_ID, QUOTA_MESSAGE, TOKEN, Scripted
from tests.support.metrics import Scrape
from tests.support.programs import free_port
from tests.support.redis_server import RedisServer
from tests.support.service import API_KEY

METRICS_KEY = "metrics-SECRET-key-0123456789"
ALICE = "alice-SECRET-key-0123456789"
BOB = "bob-SECRET-key-0123456789"
KEYS = f"{API_KEY},alice:{ALICE},bob:{BOB}:3/hour"  # bob: 3 images an hour
SECRETS = (API_KEY, ALICE, BOB, METRICS_KEY, TOKEN, B_TOKEN, OPTIMIZER_KEY)
MODEL = "flux-1-schnell"
A_LABEL, B_LABEL = short_id(ACCOUNT_ID), short_id(B_ID)
# Requests the harness makes on its own: the scrapes, and gunicorn's start-up check of "/".
HARNESS = ("/metrics", "/")


def scrape(url: str, key: str = METRICS_KEY) -> Scrape:
    response = requests.get(f"{url}/metrics", headers=auth(key), timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return Scrape(response.text)


def eventually(url: str, check: Callable[[Scrape], bool], seconds: float = 15) -> Scrape:
    """The first scrape `check` accepts: a request is counted once its body has been sent,
    which may be just after its client has read it."""
    deadline = time.monotonic() + seconds
    while True:
        got = scrape(url)
        if check(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def auth(key: str | None) -> dict:
    return {"Authorization": f"Bearer {key}"} if key else {}


def chat(url: str, key: str | None, prompt: str = "a fox", **kwargs) -> requests.Response:
    stream = kwargs.pop("stream", False)
    body = {"messages": [{"role": "user", "content": prompt}], "stream": stream}
    headers = {**auth(key), **kwargs.pop("headers", {})}
    return requests.post(
        f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30, stream=stream
    )


def image_url(response: requests.Response) -> str:
    return re.search(r"\((http[^)]+)\)$", response.json()["choices"][0]["message"]["content"])[1]


@pytest.fixture
def env(service_env, optimizer_env, fake_ai) -> dict:
    """Named keys (bob with a limit), METRICS_KEY, the optimizer, two accounts (A and B)."""
    fake_ai.add_account(B_ID, B_TOKEN)
    fake_ai.neurons = 10
    return {
        **service_env,
        **optimizer_env,
        "API_KEY": KEYS,
        "METRICS_KEY": METRICS_KEY,
        "CF_ACCOUNTS": f"{B_ID}:{B_TOKEN}",
        "CF_DAILY_NEURONS": "1000",
    }


def test_a_scripted_run_with_faults_across_four_workers_is_counted_exactly(
    gunicorn, env, tmp_path, fake_ai, fake_optimizer
):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = gunicorn({**env, "TMPDIR": str(temporary)}, workers=4)
    url = server.url
    [made] = temporary.glob("flux-api-metrics-*")  # gunicorn.conf.py's directory
    ok = 0  # chats answered 200

    for i in range(4):
        assert chat(url, ALICE, f"a fox {i}").status_code == 200
    images = {"prompt": "two foxes", "n": 2}
    generated = requests.post(
        f"{url}/v1/images/generations", json=images, headers=auth(BOB), timeout=30
    )
    assert generated.status_code == 200
    assert chat(url, BOB).status_code == 200  # bob's third image of three
    assert chat(url, BOB).status_code == 429  # refused before any paid call
    ok += 5

    # B's daily allocation runs out on its next call: parked, the chat goes to A at once.
    fake_ai.script(Scripted(429, 4006, QUOTA_MESSAGE), account=B_ID)
    calls_to_b = len(fake_ai.calls_to(B_ID))
    quota_chats = 0
    while len(fake_ai.calls_to(B_ID)) == calls_to_b and quota_chats < 5:
        assert chat(url, ALICE, "a quota fox").status_code == 200
        quota_chats += 1
    assert len(fake_ai.calls_to(B_ID)) == calls_to_b + 1
    # Only A is left: out of capacity once, then a broken answer once, each tried again on A.
    fake_ai.script(Scripted(429, 3040, "AiError: Capacity temporarily exceeded"))
    assert chat(url, ALICE, "a busy fox").status_code == 200
    fake_ai.script(Scripted(502, mode="raw_text"))
    assert chat(url, ALICE, "a broken fox").status_code == 200
    fake_ai.script(Scripted(400, 3030, "AiError: Your output has been flagged (r-1)"))
    assert chat(url, ALICE, "a flagged fox").status_code == 400
    fake_optimizer.mode = "error"  # the prompt is used as written
    assert chat(url, ALICE, "an unoptimized fox").status_code == 200
    fake_optimizer.mode = "ok"
    ok += quota_chats + 3

    # A stream whose client leaves while the optimizer works: held while it streams, then a
    # 499, and Workers AI is never called for it.
    fake_optimizer.latency = 0.5
    with chat(url, ALICE, "a fox nobody waits for", stream=True) as stream:
        lines = stream.iter_lines()  # kept: dropping it would close the connection
        assert next(lines).startswith(b"data: ")
        assert scrape(url)("streams_held") == 1
    left = eventually(url, lambda got: got("generations_total", model=MODEL, outcome="client_left"))
    assert left("streams_held") == 0
    fake_optimizer.latency = 0.0

    last = chat(url, ALICE, "a last fox")
    assert requests.get(image_url(last), timeout=10).status_code == 200  # served before Flask
    assert requests.get(f"{url}/image/{'A' * 32}", timeout=10).status_code == 404
    assert requests.get(f"{url}/nope/{'x' * 40}", timeout=10).status_code == 404
    assert requests.post(f"{url}/v1/models", headers=auth(ALICE), timeout=10).status_code == 405
    assert requests.get(f"{url}/v1/models", headers=auth(ALICE), timeout=10).status_code == 200
    assert chat(url, None).status_code == 401
    ok += 1

    chats = ("/v1/chat/completions", "POST")
    requests_by = {
        (*chats, "200"): ok,
        (*chats, "429"): 1,
        (*chats, "400"): 1,
        (*chats, "499"): 1,
        (*chats, "401"): 1,
        ("/v1/images/generations", "POST", "200"): 1,
        ("/image/{key}", "GET", "200"): 1,
        ("/image/{key}", "GET", "404"): 1,
        ("other", "GET", "404"): 1,
        ("other", "POST", "405"): 1,
        ("/v1/models", "GET", "200"): 1,
    }
    generations = ok + 1  # each chat answered 200, and the Images API's one (of 2 images)
    expected = {
        **{
            ("requests_total", (("endpoint", e), ("method", m), ("status", s))): count
            for (e, m, s), count in requests_by.items()
        },
        ("generations_total", (("model", MODEL), ("outcome", "ok"))): generations,
        ("generations_total", (("model", MODEL), ("outcome", "failed"))): 1,
        ("generations_total", (("model", MODEL), ("outcome", "client_left"))): 1,
        ("generation_seconds_count", (("model", MODEL),)): generations,
        ("images_total", (("key", "alice"),)): ok - 1,  # all but bob's chat
        ("images_total", (("key", "bob"),)): 2 + 1,
        # One try that gave an image per chat answered 200, two for the Images API's.
        ("upstream_seconds_count", (("model", MODEL),)): generations + 1,
        # Every generation reached the optimizer, the failed and the left ones too.
        ("optimizer_calls_total", (("outcome", "ok"), ("purpose", "prompt"))): generations + 1,
        ("optimizer_calls_total", (("outcome", "fallback"), ("purpose", "prompt"))): 1,
        ("rate_limited_total", (("key", "bob"),)): 1,
    }
    got = eventually(url, lambda got: got.sum("requests_total") >= sum(requests_by.values()))
    counted = {
        (name.removeprefix("flux_api_"), labels): value
        for (name, labels), value in got.counts(leave_out_endpoints=HARNESS).items()
        if name != "flux_api_upstream_calls_total"  # below: which account took which is chance
    }
    assert counted == expected

    by_outcome = {
        outcome: got.sum("upstream_calls_total", outcome=outcome)
        for outcome in ("ok", "quota", "capacity", "error", "rejected", "refused", "rate_limited")
    }
    assert by_outcome == {
        "ok": generations + 1,
        "quota": 1,
        "capacity": 1,
        "error": 1,
        "rejected": 1,
        "refused": 0,
        "rate_limited": 0,
    }
    assert got.sum("upstream_calls_total", outcome="quota", account=B_LABEL) == 1
    for account, label in ((ACCOUNT_ID, A_LABEL), (B_ID, B_LABEL)):
        assert got.sum("upstream_calls_total", account=label) == len(fake_ai.calls_to(account))
        answered = got.sum("upstream_calls_total", account=label, outcome="ok")
        assert got("account_neurons_today", account=label) == 10 * answered
        assert got("account_neurons_used_ratio", account=label) == pytest.approx(answered / 100)

    accounts = {dict(labels)["state"]: value for labels, value in got.labels_of("accounts").items()}
    assert accounts == {
        "ok": 1,
        "quota_exhausted": 1,
        "busy": 0,
        "rejected_token": 0,
        "unknown": 0,
    }
    assert got("account_neurons_daily_limit") == 1000
    stored = ok + 2  # the images of the chats answered 200 and of the Images API
    assert got("store_images") == stored
    health = requests.get(f"{url}/healthz", headers=auth(ALICE), timeout=10).json()
    assert health["images_stored"] == stored
    assert got("streams_held") == 0 and got("store_evicted_images_total") == 0

    # Nothing secret, nothing a client wrote.
    for secret in (*SECRETS, ACCOUNT_ID, B_ID, "fox", "/nope/"):
        assert secret not in got.text, secret
    served_by = set(re.findall(r"pid=(\d+) \S+ request method=POST", server.log))
    assert len(served_by) >= 2, served_by  # the counts of several workers were added up

    assert made.is_dir() and list(made.glob("counter_*.db"))
    server.stop()
    assert not made.exists()  # removed with the master


def held_by(server, request_id: str) -> int:
    """The pid of the worker serving `request_id`, from the line the optimizer call logs."""
    pattern = re.compile(rf"pid=(\d+) \[{request_id}\] optimizer model=")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = pattern.search(server.log)
        if found:
            return int(found[1])
        time.sleep(0.05)
    raise AssertionError(f"no optimizer line for {request_id}:\n{server.log}")


def test_a_killed_worker_keeps_its_counts_and_takes_its_streams_along(
    gunicorn, env, fake_ai, fake_optimizer
):
    server = gunicorn(env, workers=4)
    for i in range(8):
        assert chat(server.url, ALICE, f"a fox {i}").status_code == 200
    fake_ai.latency = 10.0  # the stream is held while its image is made
    headers = {"X-Request-ID": "held-stream"}
    with chat(server.url, ALICE, "a held fox", stream=True, headers=headers) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith(b"data: ")
        pid = held_by(server, "held-stream")
        before = eventually(server.url, lambda got: got.sum("requests_total") >= 8)
        assert before("streams_held") == 1
        # Its optimizer call was counted by the worker about to die.
        assert before("optimizer_calls_total", purpose="prompt", outcome="ok") == 9
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(requests.RequestException):
            for _ in lines:  # cut off
                pass
    after = eventually(server.url, lambda got: got("streams_held") == 0)
    assert after("streams_held") == 0  # gunicorn's child_exit dropped the dead worker's
    assert after.counts(HARNESS) == before.counts(HARNESS)  # nothing lost, nothing doubled
    assert f"Worker (pid:{pid}) was sent SIGKILL" in server.log

    fake_ai.latency = 0.0
    assert chat(server.url, ALICE, "one more fox").status_code == 200
    more = eventually(server.url, lambda got: got.sum("requests_total", status="200") > 8 + 1)
    assert more("generations_total", model=MODEL, outcome="ok") == 9
    assert more("images_total", key="alice") == 9


def test_a_reload_keeps_the_counts_in_the_operators_directory(gunicorn, env, tmp_path, fake_ai):
    """PROMETHEUS_MULTIPROC_DIR set by the operator: emptied at the start, kept at the stop; a
    reload's old workers leave their counts, not their gauges, and its check leaves nothing."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"an earlier run's counts, not even a valid file")
    env = {k: v for k, v in env.items() if k not in ("PROMPT_OPTIMIZATION",)}
    server = gunicorn({**env, "PROMETHEUS_MULTIPROC_DIR": str(directory)}, workers=2)
    for i in range(4):
        assert chat(server.url, ALICE, f"a fox {i}").status_code == 200
    # The chats' own counts: each is made once its answer has been sent, so the last may come
    # after the client has it (the scrapes, counted too, must not stand in for it).
    before = eventually(
        server.url,
        lambda got: got.sum("requests_total", endpoint="/v1/chat/completions", status="200") >= 4,
    )
    old_workers = set(re.findall(r"Booting worker with pid: (\d+)", server.log))

    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        booted = set(re.findall(r"Booting worker with pid: (\d+)", server.log))
        exited = set(re.findall(r"Worker exiting \(pid: (\d+)\)", server.log))
        if len(booted - old_workers) == 2 and old_workers <= exited:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the reload did not replace the workers:\n{server.log}")
    # Once the master has reaped them (child_exit), the old workers' live gauges are gone.
    gauges = [directory / f"gauge_livesum_{pid}.db" for pid in old_workers]
    deadline = time.monotonic() + 10
    while any(path.exists() for path in gauges) and time.monotonic() < deadline:
        time.sleep(0.05)
    after = scrape(server.url)
    assert after.counts(HARNESS) == before.counts(HARNESS)
    assert chat(server.url, ALICE, "a fox after the reload").status_code == 200
    more = eventually(server.url, lambda got: got("images_total", key="alice") == 5)
    assert more("generations_total", model=MODEL, outcome="ok") == 5

    processes = {str(server.process.pid)} | booted  # no file of the reload's check
    files = {path.name for path in directory.iterdir()}
    assert {name.split("_")[-1].removesuffix(".db") for name in files} <= processes
    assert {f"counter_{pid}.db" for pid in old_workers} <= files  # their counts stay
    assert not any(f"gauge_livesum_{pid}.db" in files for pid in old_workers)
    assert "counter_1.db" not in files
    server.stop()
    assert directory.is_dir() and list(directory.iterdir())  # the operator's: kept


@pytest.mark.parametrize("metrics_key", [METRICS_KEY, None])
def test_who_may_read_the_metrics(start_service, metrics_key):
    service = start_service(API_KEY=KEYS, METRICS_KEY=metrics_key)
    url = f"{service.url}/metrics"
    missing = requests.get(url, timeout=10)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    for key in (API_KEY, ALICE, BOB):
        answer = requests.get(url, headers=auth(key), timeout=10)
        if metrics_key is None:
            assert answer.status_code == 200, key  # any API key, while METRICS_KEY is unset
            continue
        assert answer.status_code == 403
        assert answer.json()["error"] == {
            "message": "This key may not read the metrics; METRICS_KEY may.",
            "type": "invalid_request_error",
            "param": None,
            "code": "permission_denied",
        }
        assert answer.headers["x-should-retry"] == "false"
    reader = requests.get(url, headers=auth(METRICS_KEY), timeout=10)
    assert reader.status_code == (200 if metrics_key else 401)
    if metrics_key:
        assert requests.head(url, headers=auth(METRICS_KEY), timeout=10).status_code == 200
        # METRICS_KEY opens nothing else.
        models = requests.get(f"{service.url}/v1/models", headers=auth(METRICS_KEY), timeout=10)
        assert models.status_code == 401


@pytest.fixture
def redis_url(tmp_path):
    server = RedisServer(tmp_path / "redis", free_port()).start()
    yield server.url
    server.stop()


@pytest.mark.parametrize("where", ["disk", "redis"])
def test_the_store_and_its_evictions(start_service, fake_ai, where, request):
    """STORE_SIZE_LIMIT_MB=1 holds five of the fake's photo-like images: eight evict three."""
    shared = {"REDIS_URL": request.getfixturevalue("redis_url")} if where == "redis" else {}
    service = start_service(STORE_SIZE_LIMIT_MB="1", METRICS_KEY=METRICS_KEY, **shared)
    fake_ai.realistic = True
    urls = [image_url(chat(service.url, API_KEY, f"a fox {i}")) for i in range(8)]
    fetched = [requests.get(url, timeout=10) for url in urls]
    kept = [response.content for response in fetched if response.status_code == 200]
    evicted = [response for response in fetched if response.status_code == 404]
    assert kept and evicted and len(kept) + len(evicted) == 8
    got = scrape(service.url)
    assert got("store_images") == len(kept)
    assert got("store_evicted_images_total") == len(evicted)
    assert got("store_limit_bytes") == 1024 * 1024
    size = len(kept[0])  # the fake makes the same picture every time
    if where == "redis":  # the service's own count, to the byte
        assert got("store_bytes") == len(kept) * size
        assert got("store_evicted_bytes_total") == len(evicted) * size
    else:  # diskcache's volume: the files and its index
        assert len(kept) * size < got("store_bytes") <= 1024 * 1024
        assert got("store_evicted_bytes_total") >= len(evicted) * size
