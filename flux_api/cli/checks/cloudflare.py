"""Each Cloudflare account: its token verified, and Workers AI reachable for it with every
model the service offers listed, by the two calls that cost nothing (upstream/workers_ai/rest.py).

A failure names what is wrong as precisely as Cloudflare's answer allows: a token Cloudflare
calls invalid, an account id it cannot route or will not let the token use, an API it cannot
reach (and which host), or any other answer with its status and message."""

from __future__ import annotations

from flux_api.cli.checks import Check, fail, ok, warn
from flux_api.config.accounts import Account
from flux_api.config.settings import DEFAULT, Settings
from flux_api.upstream.workers_ai.rest import (
    AUTHENTICATION,
    NO_ROUTE,
    CloudflareREST,
    NotCloudflare,
    Refused,
    RESTError,
    Unreachable,
    Unverifiable,
    rest_root,
)


def cloudflare_checks(settings: Settings) -> list[Check]:
    if not settings.accounts:
        missing = " and ".join(settings.missing_cloudflare) or "CF_ACCOUNTS"
        return [
            fail(
                "cloudflare",
                "no Cloudflare account is set, so every generation answers 503",
                f"set {missing} (or CF_ACCOUNTS)",
            )
        ]
    root, how = rest_root(settings.cf_api_base)
    if root is None:
        return [warn("cloudflare", f"accounts not checked: {how}", "check them by hand")]
    rest = CloudflareREST(root)
    try:
        return [
            check
            for account in settings.accounts
            for check in _account(settings, rest, account, how)
        ]
    finally:
        rest.close()


def _account(settings: Settings, rest: CloudflareREST, account: Account, how: str) -> list[Check]:
    id_setting, token_setting = _settings_of(settings, account)
    token_name, models_name = (
        f"account {account.label} token",
        f"account {account.label} Workers AI",
    )
    try:
        status = rest.verify_token(account)
    except Unreachable as exc:
        skipped = warn(models_name, f"not checked: {rest.host} cannot be reached")
        return [_unreachable(token_name, exc, how), skipped]
    except Refused as refused:
        if refused.status == 401 or 1000 in refused.codes:
            detail = f"Cloudflare says the token is invalid ({refused})"
            fix = (
                "put the account's right API token (one with the Workers AI permission, from "
                f"the Cloudflare dashboard) in {token_setting}"
            )
        else:
            detail, fix = (
                f"the token's verify endpoint answered {refused}",
                f"check {token_setting}",
            )
        return [fail(token_name, detail, fix), warn(models_name, "not checked: the token failed")]
    except Unverifiable as unverifiable:
        token = fail(
            token_name,
            f"the token is not a valid user token ({unverifiable.user}), and account "
            f"{account.label} cannot verify it ({unverifiable.account}): the token or the "
            "account id is wrong",
            f"check the account id in {id_setting} (32 hex digits, on the dashboard's Workers AI "
            f"page) and the token in {token_setting}",
        )
        return [token, warn(models_name, "not checked: the token could not be verified")]
    except NotCloudflare as exc:
        return [
            _not_cloudflare(token_name, exc, rest.host),
            warn(models_name, "not checked: the token could not be verified"),
        ]
    except RESTError as exc:
        return [
            fail(token_name, f"Cloudflare's answer could not be read: {exc}", "try again later"),
            warn(models_name, "not checked: the token could not be verified"),
        ]
    if status.status != "active":
        token = fail(
            token_name,
            f"Cloudflare says the token is {status.status}",
            f"enable or renew it in the Cloudflare dashboard, or put another in {token_setting}",
        )
        return [token, warn(models_name, "not checked: the token is not active")]
    owner = "an account-owned token" if status.endpoint == "account" else "a user token"
    return [ok(token_name, f"valid and active ({owner})"), _models(settings, rest, account, how)]


def _models(settings: Settings, rest: CloudflareREST, account: Account, how: str) -> Check:
    name = f"account {account.label} Workers AI"
    id_setting, _ = _settings_of(settings, account)
    wanted = {model.id for model in settings.models}
    try:
        listed = rest.model_names(account, wanted)
    except Unreachable as exc:
        return _unreachable(name, exc, how)
    except Refused as refused:
        if NO_ROUTE & set(refused.codes):
            return fail(
                name,
                f"Cloudflare has no account {account.label} ({refused})",
                f"check the account id in {id_setting}: 32 hex digits, shown on the dashboard's "
                "Workers AI page",
            )
        if refused.status in (401, 403) or AUTHENTICATION in refused.codes:
            return fail(
                name,
                f"the token is valid but Cloudflare refuses it for account {account.label} "
                f"({refused}): a wrong account id, or a token without Workers AI on it",
                f"check the account id in {id_setting}, and that the token has the Workers AI "
                "permission on that account",
            )
        return fail(name, f"the model search answered {refused}", "try again later")
    except NotCloudflare as exc:
        return _not_cloudflare(name, exc, rest.host)
    except RESTError as exc:
        return fail(name, f"the model search's answer could not be read: {exc}", "try again later")
    missing = sorted(wanted - listed)
    if missing:
        return fail(
            name,
            f"Workers AI does not list {', '.join(missing)} for this account",
            f"take {'it' if len(missing) == 1 else 'them'} out of {_naming(settings, missing)}",
        )
    return ok(name, f"reachable at {rest.host} ({how}); all {len(wanted)} offered models listed")


def _unreachable(name: str, exc: Unreachable, how: str) -> Check:
    return fail(
        name,
        f"Cloudflare's API is unreachable at {exc.host} ({exc.reason}; its address {how})",
        f"check this machine's network, DNS and proxy for {exc.host}, and CF_API_BASE",
    )


def _not_cloudflare(name: str, exc: NotCloudflare, host: str) -> Check:
    """An answer that is not Cloudflare's JSON: what answered, by its status."""
    detail = f"{host} answered {exc}"
    html = "html" in exc.content_type
    if exc.status == 404:
        fix = (
            "check CF_API_BASE: what comes before /accounts/{account_id}/ai/run in it is not "
            "Cloudflare's API"
        )
    elif exc.status == 407 or (exc.status == 403 and html):
        fix = (
            f"a proxy on the way refused the call: allow {host} in it, or set HTTPS_PROXY "
            "(and its credentials) or NO_PROXY for it"
        )
    elif exc.status >= 500:
        fix = "Cloudflare or a proxy on the way failed: try again later"
    else:
        fix = f"check CF_API_BASE, and any proxy between this machine and {host}"
    return fail(name, detail, fix)


def _settings_of(settings: Settings, account: Account) -> tuple[str, str]:
    """The settings that give this account's id and token."""
    if account.id == settings.cf_account_id and account.token == settings.cf_api_token:
        return "CF_ACCOUNT_ID", "CF_API_TOKEN"
    return "CF_ACCOUNTS", "CF_ACCOUNTS, after its account id"


def _naming(settings: Settings, models: list[str]) -> str:
    """The settings that offer these models."""
    named = []
    if settings.flux_model in models:
        named.append("FLUX_MODEL")
    if settings.edit_model in models:
        named.append("EDIT_MODEL")
    every = (
        ""
        if settings.image_models != DEFAULT.image_models
        else (" (unset, it offers every model: list the ones to offer)")
    )
    return " and ".join([*named, f"IMAGE_MODELS{every}"])
