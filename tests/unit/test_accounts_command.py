"""`python -m flux_api accounts` on a DATA_DIR (no service, no socket): the table and its
marks, `--json`, `unpark` (the pool's policy: what it lifts and keeps, in one change), and the
one-line answers to a wrong id or a wrong setting, never with a token."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from flux_api.accounts.pool import AccountPool
from flux_api.accounts.states import FileAccountStates
from flux_api.cli import main
from flux_api.cli.accounts import account_rows, table
from flux_api.config.accounts import Account
from flux_api.observe.ledger import utc_day
from flux_api.store.usage import DiskUsageBook

A = Account("0123456789abcdef0123456789abcdef", "tok-A-SECRET-111")
B = Account("fedcba9876543210fedcba9876543210", "tok-B-SECRET-222")
TOKENS = (A.token, B.token)
# 2026-11-26 20:46:40 UTC: 3 h 13 min 20 s before the daily reset.
EVENING = 1795726000.0


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """The service's settings as the command reads them (the environment; no .env in the
    working directory), with a DATA_DIR the service has run with."""
    for name in ("REDIS_URL", "API_KEY", "CF_ACCOUNT_ID", "CF_API_TOKEN", "FLUX_API_ENV_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CF_ACCOUNTS", f"{A.id}:{A.token},{B.id}:{B.token}")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CF_DAILY_NEURONS", "10000")
    (tmp_path / "data" / "accounts").mkdir(parents=True)
    return tmp_path / "data"


def pool_on(data_dir: Path, clock=None) -> AccountPool:
    states = FileAccountStates(data_dir / "accounts")
    return AccountPool((A, B), states) if clock is None else AccountPool((A, B), states, clock)


def command(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["accounts", *argv])
    out, err = capsys.readouterr()
    for token in TOKENS:
        assert token not in out + err
    return code, out, err


# The table.


def test_a_parked_account_shows_until_when_and_how_long_from_now():
    report = [
        {"id": A.label, "state": "quota_exhausted", "until": "2026-11-27T00:00:00Z"},
        {"id": B.label, "state": "ok"},
    ]
    rows = account_rows(report, {A.label: (9912.5, 0.0), B.label: (40.0, 0.0)}, 10000, EVENING)
    assert rows[0].seconds_left == 3 * 3600 + 13 * 60 + 20
    lines = table(rows, 10000).splitlines()
    assert lines[0].split() == ["account", "state", "neurons", "today", "of", "10,000"]
    assert lines[1].split() == [
        *(A.label, "quota_exhausted", "9,912.5", "99%"),
        *("parked", "until", "2026-11-27T00:00:00Z", "(in", "3", "h", "13", "min)"),
    ]
    assert lines[2].split() == [B.label, "ok", "40", "0.4%"]  # a small share is not 0 %
    assert "accounts unpark ID" in lines[-1]


def test_neurons_estimated_are_marked_and_explained():
    report = [{"id": A.label, "state": "ok"}, {"id": B.label, "state": "rejected_token"}]
    rows = account_rows(report, {A.label: (1250.0, 250.0)}, 10000, EVENING)
    text = table(rows, 10000)
    assert "1,250 (250 est.)" in text.splitlines()[1]
    assert "token refused (check CF_ACCOUNTS)" in text.splitlines()[2]
    assert "est.: neurons Cloudflare did not report" in text


def test_a_refused_token_names_the_setting_that_holds_it():
    """CF_ACCOUNT_ID + CF_API_TOKEN's account is fixed in CF_API_TOKEN, not CF_ACCOUNTS."""
    report = [{"id": A.label, "state": "rejected_token"}]
    rows = account_rows(report, {}, 0, EVENING, {A.label: "CF_API_TOKEN"})
    assert "token refused (check CF_API_TOKEN)" in table(rows, 0)


def test_without_a_daily_cap_there_is_no_share_column():
    rows = account_rows([{"id": A.label, "state": "busy"}], {}, 0, EVENING)
    assert rows[0].share_of_daily is None
    lines = table(rows, 0).splitlines()
    assert lines[0].split() == ["account", "state", "neurons", "today"]
    assert lines[1].split()[:3] == [A.label, "busy", "0"]


def test_a_ledger_that_cannot_be_read_is_a_question_mark_not_a_zero():
    rows = account_rows([{"id": A.label, "state": "ok"}], None, 10000, EVENING)
    assert (rows[0].neurons_today, rows[0].share_of_daily) == (None, None)
    text = table(rows, 10000)
    assert text.splitlines()[1].split() == [A.label, "ok", "?", "?"]
    assert "the usage ledger cannot be read now" in text


# The pool's unpark.


def test_unpark_lifts_parked_busy_and_refused_at_once_and_keeps_the_rest(tmp_path):
    now = [EVENING]
    pool = pool_on(tmp_path, clock=lambda: now[0])
    pool.succeeded(pool.choose(), 30.0)  # A: last used, 30 neurons
    pool.exhausted(A)
    pool.busy(A, 60)
    pool.refused(A, "CF_ACCOUNTS")
    assert [entry["state"] for entry in pool.report()] == ["quota_exhausted", "ok"]

    before = pool.unpark(A)
    assert before == {
        "id": A.label,
        "state": "quota_exhausted",
        "until": "2026-11-27T00:00:00Z",
        "neurons_today": 30.0,
    }
    assert pool.report()[0] == {"id": A.label, "state": "ok", "neurons_today": 30.0}
    record = FileAccountStates(tmp_path / "accounts").read()[A.id]
    assert set(record) == {"last_used", "neurons"}
    # Parked again by the next 4006: announced again, as a new parking.
    pool.exhausted(A)
    assert pool.report()[0]["state"] == "quota_exhausted"


def test_unpark_of_a_refused_token_lets_the_next_choice_try_it(tmp_path):
    pool = pool_on(tmp_path, clock=lambda: EVENING)
    pool.refused(B, "CF_ACCOUNTS")
    assert [pool.choose().account for _ in range(2)] == [A, A]  # B is set aside
    assert pool.unpark(B)["state"] == "rejected_token"
    assert pool.choose().account == B


# The command, on a DATA_DIR.


def test_the_command_lists_a_parked_account_and_unparks_it(data_dir, capsys):
    pool_on(data_dir).exhausted(A)
    book = DiskUsageBook(data_dir / "usage")
    book.add(utc_day(time.time()), {f"account|{B.label}|neurons": 120.0})

    code, out, err = command(capsys)
    assert (code, err) == (0, "")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:3]}
    assert rows[A.label][1:3] == ["quota_exhausted", "0"]
    assert "parked until" in out and "T00:00:00Z (in " in out
    assert rows[B.label][1:4] == ["ok", "120", "1.2%"]

    code, out, err = command(capsys, "--json")
    listed = json.loads(out)
    assert listed["daily_neurons"] == 10000
    assert [(row["account"], row["state"]) for row in listed["accounts"]] == [
        (A.label, "quota_exhausted"),
        (B.label, "ok"),
    ]
    assert listed["accounts"][0]["until"].endswith("T00:00:00Z")
    assert listed["accounts"][0]["seconds_left"] > 0
    assert listed["accounts"][1]["neurons_today"] == 120.0

    code, out, err = command(capsys, "unpark", A.label)
    assert (code, err) == (0, "")
    assert out.startswith(f"{A.label}: unparked (it was parked until ")
    assert "Cloudflare answers 4006 (not billed)" in out  # the operator's decision, said
    assert pool_on(data_dir).report()[0]["state"] == "ok"


def test_an_account_is_named_by_its_id_or_its_label_typed_with_three_dots(data_dir, capsys):
    pool_on(data_dir).exhausted(A)
    pool_on(data_dir).exhausted(B)
    code, out, _ = command(capsys, "unpark", A.label.replace("…", "..."))
    assert code == 0 and out.startswith(f"{A.label}: unparked")
    code, out, _ = command(capsys, "unpark", B.id)
    assert code == 0 and out.startswith(f"{B.label}: unparked")


def test_an_account_that_was_not_parked_is_said_so(data_dir, capsys):
    code, out, err = command(capsys, "unpark", B.label)
    assert (code, out, err) == (0, f"{B.label}: was not parked; nothing to do.\n", "")
    code, out, _ = command(capsys, "unpark", "--all")
    assert (code, out) == (0, "No account was parked, busy or refused: nothing to do.\n")


def test_an_unknown_id_is_one_line_naming_the_accounts_and_never_echoed(data_dir, capsys):
    code, out, err = command(capsys, "unpark", A.token)  # a token pasted by mistake
    assert (code, out) == (1, "")
    assert err == (
        "flux-api accounts: no account has that id or label; "
        f"the accounts are: {A.label}, {B.label}\n"
    )


def test_a_bad_setting_is_one_line_and_exit_3(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("CF_ACCOUNTS", f"{A.id}{A.token}")  # the ':' forgotten
    code, out, err = command(capsys)
    assert (code, out) == (3, "")
    assert err == (
        "flux-api accounts: CF_ACCOUNTS entry 1 has no ':'; each entry is account_id:api_token.\n"
    )


def test_a_data_dir_the_service_never_used_is_refused_and_left_untouched(
    data_dir, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "elsewhere"))
    code, out, err = command(capsys)
    assert (code, out) == (3, "")
    assert err.startswith("flux-api accounts: DATA_DIR: ") and err.count("\n") == 1
    assert "DATA_DIR=/var/lib/flux-api" in err
    assert not (tmp_path / "elsewhere").exists()
