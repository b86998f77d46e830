"""The doctor's pure parts: where the REST API is for a CF_API_BASE, what PUBLIC_BASE_URL
should be, DATA_DIR written for real, secrets blanked out of every line, the line's shape."""

from __future__ import annotations

import pytest

from flux_api.cli.checks import FAIL, OK, WARN, Check
from flux_api.cli.checks.cloudflare import _not_cloudflare
from flux_api.cli.checks.public_url import public_url_check
from flux_api.cli.checks.secrets import scrub, secrets_in
from flux_api.cli.checks.store import store_check
from flux_api.cli.doctor import line
from flux_api.config.settings import load_settings
from flux_api.upstream.workers_ai.rest import CLOUDFLARE_REST_ROOT, NotCloudflare, rest_root


@pytest.mark.parametrize(
    ("base", "root"),
    [
        ("https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/run", CLOUDFLARE_REST_ROOT),
        ("https://api.cloudflare.com/client/v4/accounts/0123abcd/ai/run/", CLOUDFLARE_REST_ROOT),
        (
            "http://127.0.0.1:9100/client/v4/accounts/{account_id}/ai/run",
            "http://127.0.0.1:9100/client/v4",
        ),
        (
            "https://gateway.ai.cloudflare.com/v1/{account_id}/my-gw/workers-ai",
            CLOUDFLARE_REST_ROOT,
        ),
        ("https://proxy.example.com/ai", None),
    ],
)
def test_the_rest_root_is_derived_from_cf_api_base(base, root):
    found, how = rest_root(base)
    assert found == root
    if "gateway" in base:
        assert "AI Gateway" in how
    if root is None:
        assert "unknown" in how


def _settings(**env):
    return load_settings({"API_KEY": "sk-unit-test-key-0001", **env})


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("https://img.example.com", OK, "https://img.example.com/image/<id>"),
        ("https://example.com/flux", OK, "https://example.com/flux/image/<id>"),
        ("http://127.0.0.1:8000", OK, "http://127.0.0.1:8000/image/<id>"),
        ("http://localhost:8000", OK, "/image/<id>"),
        ("http://img.example.com", WARN, "mixed content"),
        ("https://img.example.com/?x=1", FAIL, "?query or #fragment"),
        ("https://img.example.com#top", FAIL, "?query or #fragment"),
        ("https://user:pw-SECRET@img.example.com", FAIL, "user name or password"),
        ("", WARN, "request's Host"),
    ],
)
def test_public_base_url(url, status, words):
    check = public_url_check(_settings(PUBLIC_BASE_URL=url))
    assert check.status == status and words in check.detail
    assert "pw-SECRET" not in check.detail + check.fix


def test_data_dir_is_written_and_left_clean(tmp_path):
    check = store_check(_settings(DATA_DIR=str(tmp_path)))
    assert check.status == OK and f"DATA_DIR {tmp_path} is writable" in check.detail
    assert list(tmp_path.iterdir()) == []


def test_a_data_dir_not_there_yet_is_a_warning_and_not_created(tmp_path):
    check = store_check(_settings(DATA_DIR=str(tmp_path / "data" / "deeper")))
    assert check.status == WARN and "does not exist yet" in check.detail
    assert "DATA_DIR=/var/lib/flux-api" in check.fix
    assert list(tmp_path.iterdir()) == []


def test_data_dir_under_a_file_fails_with_the_fix(tmp_path):
    (tmp_path / "file").write_text("x")
    check = store_check(_settings(DATA_DIR=str(tmp_path / "file" / "data")))
    assert check.status == FAIL and "not a directory" in check.detail
    assert "point DATA_DIR at a directory" in check.fix


def test_redis_without_api_key_fails_before_connecting():
    settings = load_settings({"REDIS_URL": "redis://:pw-SECRET@10.0.0.5:6379/0"})
    check = store_check(settings)
    assert check.status == FAIL and "API_KEY" in check.fix
    assert "pw-SECRET" not in check.detail


def test_every_secret_setting_is_blanked():
    env = {
        "CF_API_TOKEN": "cf-token-one-SECRET",
        "CF_ACCOUNTS": "acc1:cf-token-two-SECRET, acc2:cf-token-three-SECRET",
        "EXTERNAL_API_KEY": "sk-ext-SECRET",
        "API_KEY": "bare-key-SECRET,alice:alices-key-SECRET-16:20/day",
        "METRICS_KEY": "metrics-SECRET",
        "REDIS_URL": "redis://:redis-pw-SECRET@host:6379/0",
    }
    text = " ".join(
        ["cf-token-one-SECRET", "cf-token-two-SECRET", "cf-token-three-SECRET", "sk-ext-SECRET"]
        + ["bare-key-SECRET", "alices-key-SECRET-16", "metrics-SECRET", "redis-pw-SECRET"]
    )
    assert "SECRET" not in scrub(text, secrets_in(env))
    assert scrub("acc1 alice day", secrets_in(env)) == "acc1 alice day"  # names stay


def test_a_line_says_the_fix_only_when_there_is_one():
    assert line(Check(OK, "store", "writable")) == "ok    store: writable"
    assert line(Check(FAIL, "store", "not writable", "chown it")) == (
        "fail  store: not writable. Fix: chown it."
    )


@pytest.mark.parametrize(
    ("status", "content_type", "words"),
    [
        (404, "text/html", "check CF_API_BASE"),
        (407, "text/html", "a proxy on the way refused the call"),
        (403, "text/html; charset=utf-8", "a proxy on the way refused the call"),
        (502, "text/html", "try again later"),
    ],
)
def test_an_answer_that_is_not_cloudflares_names_its_status(status, content_type, words):
    check = _not_cloudflare("account x token", NotCloudflare(status, content_type), "api.host")
    assert check.status == FAIL and f"api.host answered HTTP {status}, text/html" in check.detail
    assert words in check.fix


def test_a_detail_ending_its_sentence_gets_one_period_before_the_fix():
    """A setting's error message ends with its own period."""
    check = Check(FAIL, "settings", "RATE_LIMIT must look like 30/minute, not 'abc'.", "fix it.")
    assert line(check) == (
        "fail  settings: RATE_LIMIT must look like 30/minute, not 'abc'. Fix: fix it."
    )
