"""The prompt optimizer, when PROMPT_OPTIMIZATION is on: one chat completion of at most one
token with its key at EXTERNAL_API_BASE, the fewest tokens a check can spend (a model that takes
only max_completion_tokens is asked again with a small one)."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from flux_api.cli.checks import Check, fail, ok
from flux_api.config.settings import Settings
from flux_api.upstream.http import unreachable_reason
from flux_api.upstream.optimizer import chat_completions_url

NAME = "optimizer"


def optimizer_check(settings: Settings) -> Check | None:
    if not settings.prompt_optimization:
        return None
    url = chat_completions_url(settings.external_api_base)
    host = urlsplit(url).netloc
    model = settings.external_model
    with requests.Session() as session:
        if settings.external_api_key:
            session.headers["Authorization"] = f"Bearer {settings.external_api_key}"
        try:
            response = _complete(session, url, model, settings.optimizer_timeout, max_tokens=1)
            if response.status_code == 400 and "max_tokens" in _message(response):
                # Reasoning models refuse max_tokens for max_completion_tokens, which counts
                # their reasoning too: 16 may end in an empty message, which still shows the
                # key, the model and the address work.
                response = _complete(
                    session, url, model, settings.optimizer_timeout, max_completion_tokens=16
                )
        except requests.RequestException as exc:
            return fail(
                NAME,
                f"the optimizer at {host} is unreachable ({unreachable_reason(exc)})",
                f"check EXTERNAL_API_BASE, and this machine's network and DNS for {host}",
            )
    return _verdict(response, settings, host, _scrubber(settings.external_api_key))


def _complete(
    session: requests.Session, url: str, model: str, timeout: float, **limit: int
) -> requests.Response:
    """One chat completion with `limit`: max_tokens or max_completion_tokens."""
    body: dict = {
        "model": model,
        "messages": [{"role": "user", "content": "Say OK."}],
        "stream": False,
        **limit,
    }
    return session.post(url, json=body, timeout=(min(10.0, timeout), timeout))


def _verdict(response: requests.Response, settings: Settings, host: str, scrub) -> Check:
    status, model = response.status_code, settings.external_model
    if status == 200 and _is_completion(response):
        return ok(NAME, f"{host} answered a chat completion with {model}")
    if status in (401, 403):  # its text may quote part of the key: never shown
        unset = "" if settings.external_api_key else " (EXTERNAL_API_KEY is empty)"
        return fail(
            NAME,
            f"the optimizer at {host} refused the key (HTTP {status}){unset}",
            "put a valid API key for it in EXTERNAL_API_KEY",
        )
    message = scrub(_message(response))
    if status in (400, 404) and _about_the_model(response, model):
        return fail(
            NAME,
            f"the optimizer at {host} does not know the model {model!r} (HTTP {status}: {message})",
            "set EXTERNAL_MODEL to a model it serves",
        )
    if status == 404:
        return fail(
            NAME,
            f"no chat completions at {chat_completions_url(settings.external_api_base)} (HTTP 404)",
            "correct EXTERNAL_API_BASE: its OpenAI-compatible base, such as https://api.openai.com/v1",
        )
    if status == 200:
        return fail(
            NAME, f"{host} answered, but not with a chat completion", "check EXTERNAL_API_BASE"
        )
    return fail(
        NAME,
        f"the optimizer at {host} answered HTTP {status}: {message}",
        "see its status page, then try again",
    )


def _is_completion(response: requests.Response) -> bool:
    try:
        return isinstance(response.json()["choices"][0]["message"], dict)
    except (ValueError, KeyError, IndexError, TypeError):
        return False


def _error(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {"message": str(error or "")}


def _message(response: requests.Response) -> str:
    return str(_error(response).get("message") or response.reason or "")[:200]


def _about_the_model(response: requests.Response, model: str) -> bool:
    """Whether an error answer is about the model: OpenAI's code model_not_found, or a message
    naming it (other servers: "… is not a valid model ID")."""
    error = _error(response)
    return error.get("code") == "model_not_found" or (bool(model) and model in str(error))


def _scrubber(key: str):
    return lambda text: text.replace(key, "***") if key else text
