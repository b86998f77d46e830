"""CF_ACCOUNTS, the settings of a pool of several Cloudflare accounts: one line per bad entry,
never a token (the pool at work: tests/system/test_accounts.py)."""

from __future__ import annotations

import re

import pytest

from flux_api.config.accounts import short_id
from flux_api.config.settings import SettingsError, load_settings
from tests.support.accounts import B_ID, B_TOKEN, C_ID, C_TOKEN


def test_cf_accounts_alone_is_a_pool():
    settings = load_settings({"CF_ACCOUNTS": f"{B_ID}:{B_TOKEN},{C_ID}:{C_TOKEN}"})
    assert [a.id for a in settings.accounts] == [B_ID, C_ID]
    assert settings.cloudflare_configured


def test_bad_cf_accounts_entries_are_one_line_each_without_tokens():
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {
                "CF_ACCOUNT_ID": B_ID,
                "CF_API_TOKEN": B_TOKEN,
                "CF_ACCOUNTS": f"{B_ID}:{B_TOKEN},notokenSECRET,,{C_ID}:,{C_ID}:a:b-SECRET",
            }
        )
    lines = str(caught.value).splitlines()
    assert lines == [
        f"CF_ACCOUNTS entry 1: account {short_id(B_ID)} is also CF_ACCOUNT_ID; list each "
        "account once (drop this entry, or CF_ACCOUNT_ID and CF_API_TOKEN).",
        "CF_ACCOUNTS entry 2 has no ':'; each entry is account_id:api_token.",
        "CF_ACCOUNTS entry 3 is empty (two commas in a row, or one at an end).",
        f"CF_ACCOUNTS entry 4 (account {short_id(C_ID)}) has no usable token after its ':'.",
        f"CF_ACCOUNTS entry 5 (account {short_id(C_ID)}) has no usable token after its ':'.",
    ]
    assert "SECRET" not in str(caught.value)


def test_an_account_listed_twice_in_cf_accounts_names_both_entries():
    with pytest.raises(SettingsError) as caught:
        load_settings({"CF_ACCOUNTS": f"{B_ID}:{B_TOKEN},{C_ID}:{C_TOKEN},{B_ID}:other-SECRET"})
    assert str(caught.value) == (
        f"CF_ACCOUNTS entry 3: account {short_id(B_ID)} is also entry 1; list each account once."
    )


@pytest.mark.parametrize(
    "env, line",
    [
        ({"CF_ACCOUNTS": f"{B_ID}:\u201ctoken\u201d"}, "entry 1 (account bbbbbb…6789) has no"),
        ({"CF_ACCOUNTS": "'abc:token'"}, "entry 1: the part before its ':' is not an account"),
        ({"CF_ACCOUNT_ID": "abc", "CF_API_TOKEN": "to\u2019ken"}, "CF_API_TOKEN is not an API"),
        ({"CF_ACCOUNT_ID": "abc", "CF_ACCOUNTS": f"{B_ID}:{B_TOKEN}"}, "CF_API_TOKEN is empty"),
    ],
)
def test_ids_and_tokens_that_could_never_work_stop_the_start(env, line):
    with pytest.raises(SettingsError, match=re.escape(line)):
        load_settings(env)


def test_several_accounts_need_the_placeholder_in_cf_api_base():
    with pytest.raises(SettingsError, match=r"\{account_id\}"):
        load_settings(
            {
                "CF_API_BASE": "https://gateway.ai.cloudflare.com/v1/abc/gw/workers-ai",
                "CF_ACCOUNTS": f"{B_ID}:{B_TOKEN},{C_ID}:{C_TOKEN}",
            }
        )
