"""`python -m flux_api accounts` beside the running service: an account parked by real requests
is listed with its until and its neurons as the fake reported them, and `accounts unpark`
makes every worker (gunicorn, 2 workers, DATA_DIR) and every node (2 nodes, one Redis) call it
again from their next request, without a restart. No token in anything it prints."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from flux_api.accounts.pool import RESET_GRACE, next_reset, utc
from flux_api.config.accounts import short_id
from tests.support.accounts import B_ID, B_TOKEN
from tests.support.cli import run_command
from tests.support.fakes.workers_ai import ACCOUNT_ID, TOKEN
from tests.support.programs import Gunicorn, free_port
from tests.support.redis_server import RedisServer
from tests.support.service import API_KEY

A_LABEL, B_LABEL = short_id(ACCOUNT_ID), short_id(B_ID)
NEURONS = 7.5  # what the fake reports for each good call


@pytest.fixture
def two_accounts(fake_ai) -> dict:
    fake_ai.add_account(B_ID, B_TOKEN)
    fake_ai.neurons = NEURONS
    return {"CF_ACCOUNTS": f"{B_ID}:{B_TOKEN}"}


def accounts_command(env: dict, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """The command as an operator runs it: its own process, the service's settings."""
    return run_command(("accounts", *args), env, workdir, (TOKEN, B_TOKEN, API_KEY))


def listed(env: dict, workdir: Path) -> dict:
    result = accounts_command(env, workdir, "--json")
    assert result.returncode == 0, result.stderr
    return {row["account"]: row for row in json.loads(result.stdout)["accounts"]}


def generate(url: str) -> requests.Response:
    return requests.post(
        f"{url}/v1/images/generations",
        json={"prompt": "a fox"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )


def served(server: Gunicorn, fake_ai) -> tuple[int, str, list[str]]:
    """One generation through `server`: its status, the pid of the worker that answered it and
    the accounts it called (requests are sent one at a time, so the fake's new calls are its)."""
    before = len(fake_ai.calls)
    response = generate(server.url)
    called = [call["account"] for call in fake_ai.calls[before:]]
    request_id = response.headers["X-Request-ID"]
    line = re.compile(rf"pid=(\d+) .*request method=POST .* id={re.escape(request_id)}\b")
    deadline = time.monotonic() + 5
    while not (found := line.search(server.log)):  # written by a logging thread
        assert time.monotonic() < deadline, f"no access line for {request_id}"
        time.sleep(0.02)
    return response.status_code, found.group(1), called


def expected_until() -> str | None:
    """Parked until the next 00:00 UTC, except just after it (then for a minute: pool.py)."""
    now = time.time()
    return None if now % 86400 < RESET_GRACE + 5 else utc(next_reset(now))


def park_a(server: Gunicorn, fake_ai) -> None:
    """A answers 4006 until lifted; within two generations (least recently used first) the
    service calls it once and parks it; the generation goes on to B."""
    fake_ai.exhausted.add(ACCOUNT_ID)
    for _ in range(2):
        assert generate(server.url).status_code == 200
    assert len(fake_ai.calls_to(ACCOUNT_ID)) == 1


def check_listed_parked(env: dict, workdir: Path, fake_ai) -> None:
    rows = listed(env, workdir)
    assert rows[A_LABEL]["state"] == "quota_exhausted"
    if (until := expected_until()) is not None:
        assert rows[A_LABEL]["until"] == until
    assert rows[A_LABEL]["seconds_left"] > 0
    assert rows[B_LABEL]["state"] == "ok"
    # Neurons today as the fake reported them: only B's good calls were billed.
    assert rows[B_LABEL]["neurons_today"] == NEURONS * len(fake_ai.calls_to(B_ID))
    assert (rows[B_LABEL]["neurons_estimated"], rows[A_LABEL]["neurons_today"]) == (0.0, 0.0)
    text = accounts_command(env, workdir).stdout
    assert re.search(rf"{re.escape(A_LABEL)}\s+quota_exhausted\s+0\s+0%\s+parked until ", text)


def test_unpark_reaches_both_workers_of_a_machine_without_a_restart(
    gunicorn, service_env, fake_ai, two_accounts, tmp_path
):
    env = {**service_env, **two_accounts}
    server = gunicorn(env, workers=2)
    park_a(server, fake_ai)
    check_listed_parked(env, tmp_path, fake_ai)
    for _ in range(4):  # parked for every worker: not called
        assert served(server, fake_ai)[2] == [B_ID]

    fake_ai.exhausted.discard(ACCOUNT_ID)  # the operator raised its plan, say
    result = accounts_command(env, tmp_path, "unpark", A_LABEL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{A_LABEL}: unparked (it was parked until ")
    assert listed(env, tmp_path)[A_LABEL]["state"] == "ok"

    # Least recently used first: A at once, then every other call; on each worker.
    first = served(server, fake_ai)
    assert first[0] == 200 and first[2] == [ACCOUNT_ID]
    calls_to_a: dict[str, int] = {}
    pids: set[str] = {first[1]}
    for _ in range(60):
        status, pid, called = served(server, fake_ai)
        assert status == 200 and len(called) == 1
        pids.add(pid)
        calls_to_a[pid] = calls_to_a.get(pid, 0) + (called == [ACCOUNT_ID])
        if len(calls_to_a) == 2 and all(calls_to_a.values()):
            break
    assert len(pids) == 2, "one worker answered every request"
    assert len(calls_to_a) == 2 and all(calls_to_a.values()), calls_to_a


def test_one_account_parked_is_a_429_on_both_workers_until_unparked(
    gunicorn, service_env, fake_ai, tmp_path
):
    """One account: the pool's read-only fast path, which reads the shared record each time."""
    server = gunicorn(service_env, workers=2)
    fake_ai.exhausted.add(ACCOUNT_ID)
    statuses: dict[str, set[int]] = {}
    for _ in range(40):
        status, pid, _ = served(server, fake_ai)
        statuses.setdefault(pid, set()).add(status)
        if len(statuses) == 2:
            break
    assert list(statuses.values()) == [{429}, {429}], statuses
    assert len(fake_ai.calls_to(ACCOUNT_ID)) == 1  # parked at once, by whichever called it

    fake_ai.exhausted.discard(ACCOUNT_ID)
    assert accounts_command(service_env, tmp_path, "unpark", ACCOUNT_ID).returncode == 0
    statuses.clear()
    for _ in range(40):
        status, pid, called = served(server, fake_ai)
        assert (status, called) == (200, [ACCOUNT_ID])
        statuses.setdefault(pid, set()).add(status)
        if len(statuses) == 2:
            break
    assert list(statuses.values()) == [{200}, {200}], statuses


def test_unpark_reaches_both_nodes_sharing_one_redis(service_env, fake_ai, two_accounts, tmp_path):
    store = RedisServer(tmp_path / "redis", free_port(), "redis-SECRET-cli-3").start()
    shared = {**service_env, **two_accounts, "REDIS_URL": store.url}
    nodes = [
        Gunicorn({**shared, "DATA_DIR": str(tmp_path / f"node-{i}")}, tmp_path, workers=1)
        for i in range(2)
    ]
    try:
        for node in nodes:
            node.start()
        park_a(nodes[0], fake_ai)
        # The command is run on neither node's DATA_DIR: the record is Redis's.
        cli_env = {**shared, "DATA_DIR": str(tmp_path / "operator")}
        check_listed_parked(cli_env, tmp_path, fake_ai)
        for node in nodes:
            assert served(node, fake_ai)[2] == [B_ID]

        fake_ai.exhausted.discard(ACCOUNT_ID)
        result = accounts_command(cli_env, tmp_path, "unpark", ACCOUNT_ID)
        assert result.returncode == 0, result.stderr
        assert "unparked" in result.stdout
        for node in nodes:  # two in a row on each node: least recently used, A then B
            called = [served(node, fake_ai)[2] for _ in range(2)]
            assert sorted(called) == sorted([[ACCOUNT_ID], [B_ID]]), called
        assert not (tmp_path / "operator").exists()  # nothing written under its DATA_DIR
    finally:
        for node in nodes:
            node.stop()
        store.stop()


def test_an_unknown_id_and_a_bad_setting_are_one_line_each(service, service_env, tmp_path):
    """Beside a service that runs (its DATA_DIR exists)."""
    result = accounts_command(service_env, tmp_path, "unpark", TOKEN)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"flux-api accounts: no account has that id or label; the accounts are: {A_LABEL}\n"
    )
    result = accounts_command({**service_env, "REDIS_URL": "http://nowhere"}, tmp_path)
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr.count("\n") == 1 and "REDIS_URL" in result.stderr
