"""No key or token ever reaches a response or a log line, whatever goes wrong."""

import logging

from tests.support.fakes.workers_ai import Scripted
from tests.support.service import SECRETS


def test_secrets_stay_out_of_responses_and_logs(
    start_service, optimizer_env, fake_ai, fake_optimizer, caplog
):
    caplog.set_level(logging.DEBUG)
    service = start_service(**optimizer_env)
    responses = [
        service.chat("a fox"),
        service.chat("a fox", key="sk-wrong"),
        service.chat("a fox", stream=True),
        service.get("/v1/models"),
        service.get("/", key=None),
        service.get("/nope"),
    ]
    fake_ai.script(
        Scripted(400, 5006, "AiError: Bad input: nope"),
        Scripted(401, 10000, "Authentication error"),
    )
    responses += [service.chat("a fox"), service.chat("a fox", stream=True)]
    for mode in ("error", "hang", "garbage"):
        fake_optimizer.mode = mode
        responses.append(service.chat("a fox"))
    wrong_token = start_service(**optimizer_env, CF_API_TOKEN="cf-other-SECRET-token")
    responses.append(wrong_token.chat("a fox"))

    seen = caplog.text + "".join(
        r.text + "".join(f"{k}: {v}\n" for k, v in r.headers.items()) for r in responses
    )
    assert "optimizer" in caplog.text and "workers_ai" in caplog.text
    for secret in (*SECRETS, "cf-other-SECRET-token"):
        assert secret not in seen


def test_unexpected_errors_are_a_bare_500_without_traceback(
    start_service, fake_ai, caplog, monkeypatch
):
    service = start_service()
    pipeline = service.app.extensions["flux_api"].pipeline

    def broken(*args, **kwargs):
        raise RuntimeError(f"kaboom with {SECRETS[0]}")

    monkeypatch.setattr(pipeline, "render", broken)
    response = service.chat("a fox")
    assert response.status_code == 500
    assert response.json()["error"] == {
        "message": "Internal server error.",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
    assert "RuntimeError" in caplog.text
    assert "Traceback" not in caplog.text and "kaboom" not in caplog.text
    streamed = service.chat("a fox", stream=True).text
    assert '"code":"internal_error"' in streamed and streamed.endswith("data: [DONE]\n\n")
    assert "kaboom" not in streamed and "kaboom" not in caplog.text
