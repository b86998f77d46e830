"""Several Cloudflare accounts as one pool (CF_ACCOUNTS): spread, quota parking until 00:00 UTC,
failover on capacity, refused tokens set aside, state shared by workers and kept over restarts,
all without a token in any log or answer."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import diskcache
import pytest
import requests

from flux_api.config.accounts import short_id
from tests.support.accounts import B_ID, B_TOKEN, C_ID, C_TOKEN
from tests.support.fakes.workers_ai import ACCOUNT_ID, TOKEN, Scripted
from tests.support.programs import Gunicorn
from tests.support.service import API_KEY, cf_api_base

ALL_TOKENS = (TOKEN, B_TOKEN, C_TOKEN)
# 2026-11-26 20:00:00 UTC: four hours before the daily reset.
EVENING = 1795723200.0


class Clock:
    def __init__(self, now: float = EVENING):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def three_accounts(fake_ai) -> dict:
    """The fake knows A (the default account), B and C; the service is given all three, A by
    CF_ACCOUNT_ID + CF_API_TOKEN and B, C by CF_ACCOUNTS (both forms make one pool)."""
    fake_ai.add_account(B_ID, B_TOKEN)
    fake_ai.add_account(C_ID, C_TOKEN)
    return {"CF_ACCOUNTS": f"{B_ID}:{B_TOKEN}, {C_ID}:{C_TOKEN}"}


def accounts_called(fake_ai) -> Counter:
    return Counter(call["account"] for call in fake_ai.calls)


def states(service) -> dict:
    body = service.get("/healthz").json()
    return {entry["id"]: entry["state"] for entry in body["accounts"]}


def test_generations_spread_over_every_account(start_service, fake_ai, three_accounts):
    service = start_service(**three_accounts)
    for _ in range(20):
        assert service.chat("a fox").status_code == 200
    called = accounts_called(fake_ai)
    assert set(called) == {ACCOUNT_ID, B_ID, C_ID}
    assert min(called.values()) >= 5, called


def test_an_exhausted_account_is_skipped_until_midnight(start_service, fake_ai, three_accounts):
    clock = Clock()
    service = start_service(clock=clock, **three_accounts)
    for _ in range(3):
        assert service.chat("warm up").status_code == 200
    fake_ai.exhausted.add(ACCOUNT_ID)
    fake_ai.calls.clear()
    for _ in range(9):  # A is due within three calls: that request still succeeds, on B or C
        assert service.chat("a fox").status_code == 200
    assert len(fake_ai.calls_to(ACCOUNT_ID)) == 1  # the 4006 answer, then never again
    assert len(fake_ai.calls) == 10
    assert states(service)[short_id(ACCOUNT_ID)] == "quota_exhausted"
    body = service.get("/healthz").json()
    assert body["usable_accounts"] == 2
    assert body["accounts"][0]["until"] == "2026-11-27T00:00:00Z"

    clock.now += 3 * 3600 + 3599  # 23:59:59: still parked
    fake_ai.calls.clear()
    for _ in range(3):
        assert service.chat("a fox").status_code == 200
    assert fake_ai.calls_to(ACCOUNT_ID) == []

    clock.now += 1  # 00:00:00 UTC: Cloudflare has reset it
    fake_ai.exhausted.clear()
    for _ in range(3):
        assert service.chat("a fox").status_code == 200
    assert len(fake_ai.calls_to(ACCOUNT_ID)) == 1
    assert states(service)[short_id(ACCOUNT_ID)] == "ok"


def test_every_account_exhausted_is_a_429_until_the_reset(start_service, fake_ai, three_accounts):
    service = start_service(clock=Clock(), **three_accounts)
    fake_ai.exhausted.update({ACCOUNT_ID, B_ID, C_ID})
    response = service.chat("a fox")
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "insufficient_quota"
    assert "all 3 accounts have used their daily free allocation" in error["message"]
    assert "in 4 h 00 min" in error["message"]
    assert response.headers["Retry-After"] == str(4 * 3600)
    assert response.headers["x-should-retry"] == "false"
    assert len(fake_ai.calls) == 3  # each account once, at once

    again = service.post("/v1/images/generations", {"prompt": "a fox"})
    assert again.status_code == 429 and again.headers["Retry-After"] == str(4 * 3600)
    assert len(fake_ai.calls) == 3  # no further upstream call
    body = service.get("/healthz")
    assert body.status_code == 200  # every node shares these accounts: keep it in rotation
    assert body.json()["usable_accounts"] == 0


def test_out_of_capacity_moves_the_retry_to_another_account(start_service, fake_ai, three_accounts):
    service = start_service(UPSTREAM_RETRY_BACKOFF="5", **three_accounts)
    assert service.chat("first").status_code == 200  # A was used: B is next
    fake_ai.calls.clear()
    fake_ai.script(Scripted(429, 3040, "AiError: Capacity temporarily exceeded"), account=B_ID)
    started = time.monotonic()
    response = service.chat("a fox")
    assert response.status_code == 200
    assert time.monotonic() - started < 2  # no backoff before trying another account
    assert [call["account"] for call in fake_ai.calls] == [B_ID, C_ID]
    assert states(service)[short_id(B_ID)] == "busy"


def test_a_busy_account_rejects_at_once_when_another_can_take_the_call(
    start_service, fake_ai, three_accounts
):
    """rejectIfBusy is sent while another account is left: a busy one answers 3040 at once
    instead of holding the request in Cloudflare's capacity queue."""
    service = start_service(CF_ACCOUNTS=f"{B_ID}:{B_TOKEN}")
    fake_ai.busy.add(ACCOUNT_ID)
    fake_ai.queue_seconds = 3
    started = time.monotonic()
    assert service.chat("a fox").status_code == 200
    assert time.monotonic() - started < 2
    assert [call["account"] for call in fake_ai.calls] == [ACCOUNT_ID, B_ID]
    assert fake_ai.calls[0]["options"] == {"rejectIfBusy": True}
    # B was the last account left for that request: it is asked to queue rather than refuse.
    assert fake_ai.calls[1]["options"] == {}


def test_a_single_account_is_never_asked_to_reject_if_busy(service, fake_ai):
    fake_ai.busy.add(ACCOUNT_ID)
    fake_ai.queue_seconds = 0.2
    assert service.chat("a fox").status_code == 200
    assert fake_ai.calls[0]["options"] == {}


def test_a_refused_token_is_set_aside_and_named_once(start_service, fake_ai, caplog):
    fake_ai.add_account(B_ID, B_TOKEN)
    fake_ai.add_account(C_ID, C_TOKEN)
    wrong = "cf-token-C-SECRET-wrong"
    service = start_service(CF_ACCOUNTS=f"{B_ID}:{B_TOKEN},{C_ID}:{wrong}")
    answers = [service.chat("a fox") for _ in range(9)]
    assert [a.status_code for a in answers] == [200] * 9
    assert len(fake_ai.calls_to(C_ID)) == 1  # refused once, then set aside
    warnings = [r for r in caplog.records if "set aside" in r.getMessage()]
    assert len(warnings) == 1 and short_id(C_ID) in warnings[0].getMessage()
    health = service.get("/healthz")
    assert states(service)[short_id(C_ID)] == "rejected_token"
    assert health.json()["usable_accounts"] == 2
    page = service.get("/", key=None).text
    assert (
        f"2 of 3 accounts usable (<code>{short_id(C_ID)}</code>\n          token refused)" in page
    )
    answered = health.text + page + "".join(a.text for a in answers)
    for secret in (*ALL_TOKENS, wrong):
        assert secret not in caplog.text + answered
    ours = "".join(r.getMessage() for r in caplog.records if r.name.startswith("flux_api"))
    assert C_ID not in ours + answered and B_ID not in ours + answered  # shortened only


def test_every_token_refused_is_a_502_naming_the_setting_and_healthz_degraded(
    start_service, fake_ai
):
    service = start_service(CF_API_TOKEN="cf-token-A-SECRET-wrong")
    response = service.chat("a fox")
    assert response.status_code == 502
    assert "CF_API_TOKEN" in response.json()["error"]["message"]
    health = service.get("/healthz")
    # 200: every node shares the accounts, and a node out of rotation would never recheck.
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["accounts"] == [{"id": short_id(ACCOUNT_ID), "state": "rejected_token"}]
    # The only account is still tried (a refusal bills nothing): a fixed token works at once.
    fake_ai.accounts[ACCOUNT_ID] = "cf-token-A-SECRET-wrong"
    assert service.chat("a fox").status_code == 200
    assert service.get("/healthz").json()["status"] == "ok"


def test_when_every_account_is_busy_the_last_one_queues(start_service, fake_ai, three_accounts):
    """rejectIfBusy refusals are immediate and unbilled: they are not tries, so with every
    account busy the request ends up waiting in the last one's queue rather than failing."""
    d_id, d_token = "dddddd0123456789abcdef0123456789", "cf-token-D-SECRET-99cc"
    fake_ai.add_account(d_id, d_token)
    service = start_service(CF_ACCOUNTS=f"{three_accounts['CF_ACCOUNTS']},{d_id}:{d_token}")
    fake_ai.busy.update({ACCOUNT_ID, B_ID, C_ID, d_id})
    fake_ai.queue_seconds = 0.3
    assert service.chat("a fox").status_code == 200
    assert [bool(call["options"]) for call in fake_ai.calls] == [True, True, True, False]


def test_capacity_then_a_refused_token_goes_back_to_the_first_account(start_service, fake_ai):
    fake_ai.add_account(B_ID, B_TOKEN)
    service = start_service(CF_ACCOUNTS=f"{B_ID}:cf-token-B-SECRET-wrong")
    capacity = Scripted(429, 3040, "AiError: Capacity temporarily exceeded")
    fake_ai.script(capacity, account=ACCOUNT_ID)
    assert service.chat("a fox").status_code == 200
    assert [call["account"] for call in fake_ai.calls] == [ACCOUNT_ID, B_ID, ACCOUNT_ID]


def test_refused_and_parked_accounts_are_both_named(start_service, fake_ai):
    fake_ai.add_account(B_ID, B_TOKEN)
    service = start_service(clock=Clock(), CF_ACCOUNTS=f"{B_ID}:cf-token-B-SECRET-wrong")
    fake_ai.exhausted.add(ACCOUNT_ID)
    response = service.chat("a fox")
    assert response.status_code == 429
    message = response.json()["error"]["message"]
    assert "1 of 2 accounts have used their daily free allocation" in message
    assert "refused the token of the other 1 (check CF_ACCOUNTS)" in message


def test_a_refused_legacy_token_names_cf_api_token(start_service, fake_ai):
    """The account of CF_ACCOUNT_ID + CF_API_TOKEN is fixed in CF_API_TOKEN."""
    fake_ai.add_account(B_ID, B_TOKEN)
    service = start_service(
        clock=Clock(), CF_API_TOKEN="cf-token-A-SECRET-wrong", CF_ACCOUNTS=f"{B_ID}:{B_TOKEN}"
    )
    fake_ai.exhausted.add(B_ID)
    message = service.chat("a fox").json()["error"]["message"]
    assert "refused the token of the other 1 (check CF_API_TOKEN)" in message


def test_a_quota_answer_just_after_midnight_parks_for_a_minute(start_service, fake_ai):
    """Our clock may run ahead of Cloudflare's reset: a 4006 at 00:00:02 must not cost a day."""
    clock = Clock(EVENING + 4 * 3600 + 2)
    service = start_service(clock=clock)
    fake_ai.exhausted.add(ACCOUNT_ID)
    refused = service.chat("a fox")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"  # what is true: back in a minute, not a day
    message = refused.json()["error"]["message"]
    assert "tried again in 60 s" in message and "24 h" not in message, message
    clock.now += 45
    again = service.chat("a fox", stream=True)  # refused before any call, from the record
    assert again.status_code == 429 and again.headers["Retry-After"] == "15"
    assert "tried again in 15 s" in again.json()["error"]["message"]
    assert len(fake_ai.calls) == 1
    fake_ai.exhausted.clear()  # Cloudflare resets a moment later
    clock.now += 16
    assert service.chat("a fox").status_code == 200


def test_several_accounts_parked_just_after_midnight_say_when_the_first_is_back(
    start_service, fake_ai, three_accounts
):
    clock = Clock(EVENING + 4 * 3600 + 10)
    service = start_service(clock=clock, **three_accounts)
    fake_ai.exhausted.update({ACCOUNT_ID, B_ID, C_ID})
    refused = service.chat("a fox")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
    assert "all 3 accounts" in refused.json()["error"]["message"]
    fake_ai.exhausted.clear()
    clock.now += 61
    assert service.chat("a fox").status_code == 200


def test_a_damaged_state_record_never_stops_generation(start_service, service_env, fake_ai):
    with diskcache.Cache(str(Path(service_env["DATA_DIR"]) / "accounts")) as cache:
        cache.set("accounts", {ACCOUNT_ID: {"parked_until": "tomorrow", "busy": None}, 7: []})
    service = start_service()
    assert service.chat("a fox").status_code == 200
    assert service.get("/healthz").json()["accounts"][0]["state"] == "ok"


def test_an_unusable_state_directory_is_one_line_at_start(tmp_path, service_env):
    data = tmp_path / "data"
    data.mkdir()
    (data / "accounts").write_text("not a directory")
    result = Gunicorn({**service_env, "DATA_DIR": str(data)}, tmp_path).run_until_exit()
    output = result.stderr + result.stdout
    assert result.returncode != 0
    assert "flux-api cannot start: DATA_DIR: the account state" in output
    assert "Traceback" not in output


def test_failures_that_may_be_billed_never_move_to_another_account(
    start_service, fake_ai, three_accounts
):
    service = start_service(**three_accounts)
    fake_ai.script(Scripted(400, 3030, "AiError: Your output has been flagged (r-1)"))
    assert service.chat("a fox").status_code == 400
    fake_ai.script(Scripted(mode="reset"))
    assert service.chat("a fox").status_code == 502
    assert len(fake_ai.calls) == 2


def test_neurons_spent_today_are_counted_per_account(start_service, fake_ai, three_accounts):
    service = start_service(**three_accounts)
    fake_ai.neurons = 12.5
    for _ in range(6):
        assert service.chat("a fox").status_code == 200
    body = service.get("/healthz").json()
    assert [entry["neurons_today"] for entry in body["accounts"]] == [25.0, 25.0, 25.0]


def test_options_refused_by_a_model_are_dropped_at_once(start_service, fake_ai, three_accounts):
    """Should Cloudflare's schema refuse `options` for a model, the call is repeated without it
    (a refusal bills nothing) and it is not sent to that model again."""
    service = start_service(**three_accounts)
    refusal = Scripted(
        400, 5006, "AiError: Bad input: must NOT have additional properties: 'options'"
    )
    fake_ai.script(refusal)
    assert service.chat("a fox").status_code == 200
    assert service.chat("a fox").status_code == 200
    assert [bool(call["options"]) for call in fake_ai.calls] == [True, False, False]


def generate_through(server) -> int:
    return requests.post(
        f"{server.url}/v1/images/generations",
        json={"prompt": "a fox"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    ).status_code


def pids_serving(server) -> Counter:
    lines = [line for line in server.log.splitlines() if "request method=POST" in line]
    return Counter(line.split("pid=")[1].split()[0] for line in lines)


def test_the_pool_state_is_shared_by_workers_and_kept_over_a_restart(
    gunicorn, service_env, fake_ai, three_accounts
):
    env = {**service_env, **three_accounts}
    server = gunicorn(env, workers=2)
    fake_ai.exhausted.add(ACCOUNT_ID)
    for _ in range(80):  # until both workers have served a few, after A was parked
        assert generate_through(server) == 200
        served = pids_serving(server)
        if len(served) == 2 and min(served.values()) >= 4:
            break
    assert len(served) == 2 and min(served.values()) >= 4, served
    assert len(fake_ai.calls_to(ACCOUNT_ID)) == 1  # both workers skip it once parked

    server.stop()
    server = gunicorn(env, workers=2)
    fake_ai.calls.clear()
    for _ in range(4):
        assert generate_through(server) == 200
    assert fake_ai.calls_to(ACCOUNT_ID) == []  # parked until midnight, not until a restart
    health = requests.get(f"{server.url}/healthz", timeout=10).json()
    assert health["accounts"][0]["state"] == "quota_exhausted"
    for token in ALL_TOKENS:
        assert token not in server.log


# Settings: one line per bad entry, never a token.


def test_a_bad_cf_accounts_stops_gunicorn_with_one_line_per_entry(gunicorn, service_env, tmp_path):
    env = {**service_env, "CF_ACCOUNTS": "nocolonSECRET,x:"}
    result = Gunicorn(env, tmp_path).run_until_exit()
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "CF_ACCOUNTS entry 1 has no ':'" in output
    assert "CF_ACCOUNTS entry 2 (account x) has no usable token" in output
    assert "SECRET" not in output


def test_cf_api_base_is_filled_per_account(start_service, fake_ai, three_accounts):
    service = start_service(CF_API_BASE=cf_api_base(fake_ai), **three_accounts)
    for _ in range(3):
        service.chat("a fox")
    assert {call["account"] for call in fake_ai.calls} == {ACCOUNT_ID, B_ID, C_ID}


def test_a_stream_with_every_account_parked_is_a_429_before_its_first_byte(start_service, fake_ai):
    service = start_service(clock=Clock())
    fake_ai.exhausted.add(ACCOUNT_ID)
    assert service.chat("a fox").status_code == 429  # parks the only account
    streamed = service.chat("a fox", stream=True)
    assert streamed.status_code == 429
    assert streamed.headers["Retry-After"] == str(4 * 3600)
    assert len(fake_ai.calls) == 1
