"""Running it: /healthz, body limit, request ids and log lines, rate limits, upstream cap."""

import logging
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flux_api.generation.model_choice import NamesOnce
from tests.support.service import API_KEY, SECRETS


def test_healthz_reports_ok_without_secrets(service):
    response = service.get("/healthz", key=None)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["store"] == "writable"
    assert body["cloudflare"] == "configured"
    assert body["prompt_optimization"] == "off"
    for secret in SECRETS:
        assert secret not in response.text


def test_healthz_says_when_credentials_are_missing(start_service):
    body = start_service(CF_API_TOKEN=None).get("/healthz", key=None).json()
    assert body["cloudflare"] == "missing"


def test_unwritable_store_gives_503_on_healthz_and_generation(service, service_env, fake_ai):
    images = Path(service_env["DATA_DIR"]) / "images"
    shutil.rmtree(images)
    images.write_text("not a directory any more")
    health = service.get("/healthz", key=None)
    assert health.status_code == 503
    assert health.json()["store"] == "not writable"
    response = service.chat("a fox")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"
    assert "DATA_DIR" in response.json()["error"]["message"]


def test_body_limit_is_max_body_kb(start_service, fake_ai):
    service = start_service(MAX_BODY_KB="2")
    assert service.chat("a fox " + "x" * 1000).status_code == 200
    too_big = service.chat("a fox " + "x" * 3000)
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "request_too_large"


def test_request_id_is_echoed_or_made(service):
    given = service.get("/v1/models", headers={"X-Request-ID": "client-id-123"})
    assert given.headers["X-Request-ID"] == "client-id-123"
    made = service.get("/v1/models", headers={"X-Request-ID": "bad id with spaces"})
    assert re.fullmatch(r"[0-9a-f]{16}", made.headers["X-Request-ID"])
    assert service.get("/nope").headers["X-Request-ID"]


def test_one_structured_line_per_request_and_timings_carry_the_id(service, fake_ai, caplog):
    caplog.set_level(logging.INFO)
    response = service.chat("a fox 16:9", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 200
    deadline = time.monotonic() + 2
    while "request method=" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)  # the line is written once the body has been sent
    lines = [r for r in caplog.records if r.name == "flux_api.access"]
    assert len(lines) == 1
    assert re.search(
        r"request method=POST path=/v1/chat/completions status=200 duration_ms=\d+ "
        r"model=flux-1-schnell id=req-42",
        lines[0].getMessage(),
    )
    timed = [r for r in caplog.records if "upstream_s=" in r.getMessage()]
    assert timed and all(r.request_id == "req-42" for r in timed)


def test_streamed_generation_timings_carry_the_request_id(service, fake_ai, caplog):
    caplog.set_level(logging.INFO)
    service.chat("a fox", stream=True, headers={"X-Request-ID": "stream-7"}).text
    timed = [r for r in caplog.records if "upstream_s=" in r.getMessage()]
    assert timed and timed[-1].request_id == "stream-7"  # logged on a pool thread


def test_rate_limit_per_key_with_retry_after(start_service, fake_ai):
    service = start_service(RATE_LIMIT="2/minute", API_KEY=f"{API_KEY},sk-second")
    assert service.chat("a fox").status_code == 200
    assert service.post("/v1/images/generations", {"prompt": "a fox"}).status_code == 200
    limited = service.chat("a fox")
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(limited.headers["Retry-After"]) <= 61
    assert len(fake_ai.calls) == 2
    assert service.chat("a fox", key="sk-second").status_code == 200  # another key, own count
    assert service.get("/v1/models").status_code == 200  # only generation is limited


def test_rate_limit_counts_images_not_task_prompts_or_bad_requests(start_service, fake_ai):
    service = start_service(RATE_LIMIT="3/minute")
    title_task = "### Task:\nGenerate a concise title for the chat.\n\nUSER: a fox"
    for _ in range(5):  # Open WebUI's background tasks call no model: free
        assert service.chat(title_task).status_code == 200
    assert service.chat("").status_code == 400  # refused before any call: free
    two = service.post("/v1/images/generations", {"prompt": "a fox", "n": 2})
    assert two.status_code == 200 and len(fake_ai.calls) == 2
    too_many = service.post("/v1/images/generations", {"prompt": "a fox", "n": 2})
    assert too_many.status_code == 429  # 2 + 2 > 3, and the refusal itself counts nothing
    assert "asks for 2" in too_many.json()["error"]["message"]
    assert service.chat("a fox").status_code == 200  # the third image of the window
    assert service.chat("a fox").status_code == 429
    assert len(fake_ai.calls) == 3


def test_rate_limit_counts_are_kept_hashed(start_service, service_env, fake_ai):
    service = start_service(RATE_LIMIT="5/minute")
    service.chat("a fox")
    for path in (Path(service_env["DATA_DIR"]) / "ratelimit").rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes()


def test_upstream_concurrency_caps_calls_in_flight(start_service, fake_ai):
    service = start_service(UPSTREAM_CONCURRENCY="2")
    fake_ai.latency = 0.5
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda i: service.chat(f"fox {i}").status_code, range(6)))
    assert statuses == [200] * 6
    assert fake_ai.most_in_flight == 2


def test_without_a_cap_calls_run_at_once(service, fake_ai):
    fake_ai.latency = 0.5
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda i: service.chat(f"fox {i}").status_code, range(6)))
    assert fake_ai.most_in_flight == 6


def test_unreadable_store_gives_503_for_images(service, service_env, fake_ai):
    key = re.search(
        r"/image/([^)]+)", service.chat("a fox").json()["choices"][0]["message"]["content"]
    ).group(1)
    images = Path(service_env["DATA_DIR"]) / "images"
    shutil.rmtree(images)
    images.write_text("not a directory any more")
    response = service.get(f"/image/{key}", key=None)
    assert response.status_code in (404, 503)
    assert response.json()["error"]["code"] in ("image_not_found", "store_unavailable")


def model_warnings(caplog, name: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING" and repr(name) in r.getMessage()
    ]


def test_an_unknown_model_name_is_one_warning_per_name(start_service, fake_ai, caplog):
    unknown = f"flux-9-{time.monotonic_ns()}"  # per process: a name no other test has sent
    service = start_service(IMAGE_MODELS="flux-1-schnell,flux-2-klein-4b")
    for _ in range(3):
        assert service.chat("a fox", model=unknown).status_code == 200
        images = service.post("/v1/images/generations", {"prompt": "a fox", "model": unknown})
        assert images.status_code == 200
    not_offered = "phoenix-1.0"  # a model this service knows, but IMAGE_MODELS leaves out
    assert service.chat("a fox", model=not_offered).status_code == 200
    assert service.chat("a fox").status_code == 200  # no model at all: the default, quietly
    assert {call["model"] for call in fake_ai.calls} == {"@cf/black-forest-labs/flux-1-schnell"}
    said = model_warnings(caplog, unknown)
    assert len(said) == 1 and "flux-1-schnell" in said[0], said
    assert len(model_warnings(caplog, not_offered)) == 1


def test_a_model_name_is_logged_short_and_on_one_line(start_service, fake_ai, caplog):
    hostile = f"x{time.monotonic_ns()}\nINFO forged line " + "A" * 5000
    service = start_service()
    assert service.chat("a fox", model=hostile).status_code == 200
    said = [r.getMessage() for r in caplog.records if "forged line" in r.getMessage()]
    assert len(said) == 1 and "\n" not in said[0] and len(said[0]) < 300, said


def test_model_names_remembered_are_bounded(caplog):
    names = NamesOnce(limit=3)
    firsts = [names.first_time(f"name-{i}") for i in range(1000)] + [names.first_time("name-0")]
    assert firsts == [True] * 3 + [False] * 998
    assert len(names._seen) == 4  # the limit, and the one that said "further ones are not"
    assert sum("further ones are not" in r.getMessage() for r in caplog.records) == 1
