"""`python -m flux_api doctor` run as operators run it (a subprocess with a scripted environment),
against the fake Workers AI, the fake optimizer and a real redis-server: each fault named
precisely, the exit code, --json, and never a token or key in what it prints."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest

from tests.support.cli import run_command
from tests.support.fakes.optimizer import OPTIMIZER_MODEL
from tests.support.fakes.workers_ai import ACCOUNT_ID, TOKEN
from tests.support.old_redis import old_redis
from tests.support.programs import free_port
from tests.support.redis_server import RedisServer
from tests.support.service import SECRETS

WRONG_TOKEN = "cf-token-WRONG-9a8b7c"
WRONG_OPTIMIZER_KEY = "sk-optimizer-WRONG-1234"
REDIS_PASSWORD = "redis-SECRET-pass-42"
ALL_SECRETS = (*SECRETS, WRONG_TOKEN, WRONG_OPTIMIZER_KEY, REDIS_PASSWORD)
LABEL = "acc-01…cdef"  # ACCOUNT_ID as the doctor shows it


@dataclass
class Result:
    code: int
    lines: list[str]

    def line(self, start: str) -> str:
        """The one line of the check whose name starts with `start`."""
        found = [line for line in self.lines if line.split(maxsplit=1)[1].startswith(start)]
        assert len(found) == 1, (start, self.lines)
        return found[0]


@pytest.fixture
def doctor(tmp_path, service_env):
    """Run the doctor in an empty working directory with the service's settings and
    `overrides` (None removes one); its output holds no secret, whatever happened."""

    def run(*args: str, **overrides) -> Result:
        settings = {k: v for k, v in {**service_env, **overrides}.items() if v is not None}
        done = run_command(("doctor", *args), settings, tmp_path, ALL_SECRETS)
        assert done.stderr == "", done.stderr
        return Result(done.returncode, done.stdout.splitlines())

    return run


def test_a_good_setup_passes_every_check(doctor, optimizer_env, fake_ai, service_env):
    os.makedirs(service_env["DATA_DIR"], exist_ok=True)  # a missing one is a warning
    result = doctor(PUBLIC_BASE_URL="https://img.example.com", **optimizer_env)
    assert result.code == 0
    assert [line.split()[0] for line in result.lines] == ["ok"] * 6, result.lines
    assert "valid and active (a user token)" in result.line(f"account {LABEL} token")
    assert "all 11 offered models listed" in result.line(f"account {LABEL} Workers AI")
    assert "/image/<id>" in result.line("PUBLIC_BASE_URL")
    assert [call[0] for call in fake_ai.free_calls] == ["verify", "search"]
    assert all(call[2]["Authorization"] == f"Bearer {TOKEN}" for call in fake_ai.free_calls)


def test_the_settings_file_in_the_working_directory_is_read(doctor, tmp_path, service_env):
    (tmp_path / ".env").write_text(f"CF_API_TOKEN={WRONG_TOKEN}\n")
    result = doctor(CF_API_TOKEN=None)
    assert f"{tmp_path / '.env'} and the environment" in result.line("settings")
    assert result.line(f"account {LABEL} token").startswith("fail")


def test_an_invalid_setting_is_one_failed_check(doctor):
    result = doctor(FLUX_MODEL="no-such-model")
    assert result.code == 1
    assert len(result.lines) == 1
    assert result.lines[0].startswith("fail  settings: FLUX_MODEL names an unknown")


def test_a_wrong_token_is_named_with_its_setting(doctor):
    result = doctor(CF_API_TOKEN=WRONG_TOKEN)
    assert result.code == 1
    token = result.line(f"account {LABEL} token")
    assert token.startswith("fail") and "Cloudflare says the token is invalid" in token
    assert "HTTP 401, code 1000: Invalid API Token" in token
    assert "CF_API_TOKEN" in token
    assert result.line(f"account {LABEL} Workers AI").startswith("warn")


def test_a_wrong_token_in_cf_accounts_names_cf_accounts(doctor, fake_ai):
    fake_ai.add_account("acc-second-account-0002", "cf-token-second-SECRET")
    result = doctor(CF_ACCOUNTS=f"acc-second-account-0002:{WRONG_TOKEN}")
    assert result.code == 1
    assert result.line(f"account {LABEL} token").startswith("ok")
    second = result.line("account acc-se…0002 token")
    assert second.startswith("fail") and "invalid" in second and "CF_ACCOUNTS" in second


def test_an_account_owned_token_is_verified_at_its_account(doctor, fake_ai):
    fake_ai.account_owned.add(ACCOUNT_ID)
    result = doctor()
    assert result.code == 0
    assert "an account-owned token" in result.line(f"account {LABEL} token")
    assert [call[:2] for call in fake_ai.free_calls[:2]] == [
        ("verify", None),
        ("verify", ACCOUNT_ID),
    ]


def test_an_expired_token_says_so(doctor, fake_ai):
    fake_ai.token_status[ACCOUNT_ID] = "expired"
    result = doctor()
    assert result.code == 1
    assert "the token is expired" in result.line(f"account {LABEL} token")


def test_a_wrong_account_id_is_named(doctor):
    result = doctor(CF_ACCOUNT_ID="acc-no-such-account-77")
    assert result.code == 1
    assert result.line("account acc-no…t-77 token").startswith("ok")
    models = result.line("account acc-no…t-77 Workers AI")
    assert models.startswith("fail") and "Cloudflare has no account acc-no…t-77" in models
    assert "7003" in models and "CF_ACCOUNT_ID" in models


def test_an_account_the_token_may_not_use_is_named(doctor, fake_ai):
    fake_ai.add_account("acc-someone-elses-0003", "cf-token-other-SECRET")
    result = doctor(CF_ACCOUNT_ID="acc-someone-elses-0003")
    models = result.line("account acc-so…0003 Workers AI")
    assert models.startswith("fail") and "refuses it for account acc-so…0003" in models
    assert "HTTP 403" in models and "CF_ACCOUNT_ID" in models
    assert "cf-token-other-SECRET" not in "\n".join(result.lines)


def test_an_unreachable_api_names_its_host(doctor):
    port = free_port()  # nothing listens there
    base = f"http://127.0.0.1:{port}/client/v4/accounts/{{account_id}}/ai/run"
    result = doctor(CF_API_BASE=base)
    assert result.code == 1
    token = result.line(f"account {LABEL} token")
    assert token.startswith("fail")
    assert f"unreachable at 127.0.0.1:{port} (connection refused" in token


def test_a_missing_model_is_named(doctor, fake_ai):
    fake_ai.unlisted.add("@cf/leonardo/lucid-origin")
    result = doctor()
    assert result.code == 1
    models = result.line(f"account {LABEL} Workers AI")
    assert "does not list @cf/leonardo/lucid-origin" in models and "IMAGE_MODELS" in models


def test_a_base_of_unknown_shape_skips_the_accounts(doctor):
    result = doctor(CF_API_BASE="http://127.0.0.1:9/some/proxy/run", CF_ACCOUNT_ID=None)
    assert result.code == 0
    assert result.line("cloudflare").startswith("warn  cloudflare: accounts not checked")


def test_no_account_is_a_failure(doctor):
    result = doctor(CF_API_TOKEN=None)
    assert result.code == 1
    assert "CF_API_TOKEN" in result.line("cloudflare")


def test_the_optimizer_with_a_wrong_key(doctor, optimizer_env):
    result = doctor(**{**optimizer_env, "EXTERNAL_API_KEY": WRONG_OPTIMIZER_KEY})
    assert result.code == 1
    line = result.line("optimizer")
    assert line.startswith("fail") and "refused the key (HTTP 401)" in line
    assert "EXTERNAL_API_KEY" in line


def test_the_optimizer_with_an_unknown_model(doctor, optimizer_env, fake_optimizer):
    fake_optimizer.known_models = {OPTIMIZER_MODEL}
    result = doctor(**{**optimizer_env, "EXTERNAL_MODEL": "gpt-no-such"})
    line = result.line("optimizer")
    assert "does not know the model 'gpt-no-such'" in line and "EXTERNAL_MODEL" in line
    assert fake_optimizer.calls[0]["body"]["max_tokens"] == 1


def test_the_optimizer_unreachable_names_its_host(doctor, optimizer_env):
    port = free_port()
    result = doctor(**{**optimizer_env, "EXTERNAL_API_BASE": f"http://127.0.0.1:{port}"})
    line = result.line("optimizer")
    assert f"at 127.0.0.1:{port} is unreachable (connection refused)" in line


def test_an_unwritable_data_dir_fails(doctor, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")  # no write under it, root or not
    result = doctor(DATA_DIR=str(tmp_path / "a-file" / "data"))
    assert result.code == 1
    line = result.line("store")
    assert line.startswith("fail") and "cannot be written (not a directory)" in line
    assert "DATA_DIR" in line


def test_an_unset_public_base_url_is_a_warning(doctor):
    result = doctor(PUBLIC_BASE_URL=None)
    assert result.code == 0
    assert result.line("PUBLIC_BASE_URL").startswith("warn  PUBLIC_BASE_URL: unset")


def test_json_holds_what_the_lines_say(doctor):
    lines = doctor(CF_API_TOKEN=WRONG_TOKEN)
    document = json.loads("\n".join(doctor("--json", CF_API_TOKEN=WRONG_TOKEN).lines))
    assert document["ok"] is False
    assert [(c["status"], c["name"]) for c in document["checks"]] == [
        (line.split()[0], line.split(maxsplit=1)[1].split(": ", 1)[0]) for line in lines.lines
    ]
    failed = next(c for c in document["checks"] if c["status"] == "fail")
    assert "CF_API_TOKEN" in failed["fix"] and "invalid" in failed["detail"]


def test_redis_that_accepts_writes(doctor, tmp_path):
    server = RedisServer(tmp_path / "redis", free_port(), password=REDIS_PASSWORD).start()
    try:
        result = doctor(REDIS_URL=server.url)
        wrong = doctor(REDIS_URL=server.url.replace(REDIS_PASSWORD, "wrong-password"))
    finally:
        server.stop()
    assert result.code == 0
    assert f"Redis at redis://127.0.0.1:{server.port}/0 accepts writes" in result.line("store")
    assert "refused the password" in wrong.line("store")


def test_redis_unreachable_and_read_only(doctor, tmp_path):
    port = free_port()
    unreachable = doctor(REDIS_URL=f"redis://127.0.0.1:{port}/0")
    line = unreachable.line("store")
    assert unreachable.code == 1
    assert f"Redis at redis://127.0.0.1:{port}/0 cannot be reached (connection refused)" in line
    replica = RedisServer(tmp_path / "replica", free_port(), replicaof=f"127.0.0.1 {port}").start()
    try:
        result = doctor(REDIS_URL=f"redis://127.0.0.1:{replica.port}/0")
    finally:
        replica.stop()
    assert "is a read-only replica" in result.line("store")
    assert "primary" in result.line("store")


def test_an_account_owned_token_with_a_wrong_account_id_blames_both(doctor, fake_ai):
    fake_ai.account_owned.add(ACCOUNT_ID)
    result = doctor(CF_ACCOUNT_ID="acc-no-such-account-77")
    assert result.code == 1
    token = result.line("account acc-no…t-77 token")
    assert token.startswith("fail") and "not a valid user token (HTTP 401, code 1000" in token
    assert "account acc-no…t-77 cannot verify it (HTTP 400, code 7003, 7000" in token
    assert "the token or the account id is wrong" in token
    assert "CF_ACCOUNT_ID" in token and "CF_API_TOKEN" in token
    assert "Cloudflare says the token is invalid" not in token


def test_a_wrong_api_base_answering_html_404_says_so(doctor, service_env):
    base = service_env["CF_API_BASE"].replace("/client/v4/", "/wrong/v4/")
    result = doctor(CF_API_BASE=base)
    assert result.code == 1
    token = result.line(f"account {LABEL} token")
    assert token.startswith("fail") and "answered HTTP 404, text/html" in token
    assert "check CF_API_BASE" in token and "try again later" not in token


def test_a_model_that_refuses_max_tokens_is_asked_with_max_completion_tokens(
    doctor, optimizer_env, fake_optimizer
):
    fake_optimizer.completion_tokens_only = True  # and it answers an empty message
    result = doctor(**optimizer_env)
    assert result.line("optimizer").startswith("ok")
    first, second = (call["body"] for call in fake_optimizer.calls)
    assert first["max_tokens"] == 1
    assert second["max_completion_tokens"] == 16 and "max_tokens" not in second


def test_redis_older_than_the_service_needs_fails_as_its_start_does(doctor):
    with old_redis("6.2.14") as url:
        result = doctor(REDIS_URL=url)
    assert result.code == 1
    line = result.line("store")
    assert line.startswith("fail") and "is version 6.2; flux-api needs 7.0 or later" in line
    assert "Traceback" not in "\n".join(result.lines)


def test_an_account_owned_token_refused_403_at_the_account_blames_both(doctor, fake_ai):
    fake_ai.account_owned.add(ACCOUNT_ID)
    fake_ai.verify_refusals[ACCOUNT_ID] = (403, 10000, "Authentication error")
    token = doctor().line(f"account {LABEL} token")
    assert token.startswith("fail") and "cannot verify it (HTTP 403, code 10000" in token
    assert "the token or the account id is wrong" in token
