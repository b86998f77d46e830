"""Bearer keys on the API, open paths, the created key, and CORS on every answer."""

import os
import stat
from pathlib import Path

import pytest
import requests

from tests.support.service import API_KEY


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/flux-1-schnell"])
def test_missing_key_is_a_401_in_openai_shape(service, path):
    response = service.get(path, key=None)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert "Authorization: Bearer" in response.json()["error"]["message"]


def test_wrong_key_is_a_401(service, fake_ai):
    response = service.chat("a fox", key="sk-wrong")
    assert response.status_code == 401
    assert "Incorrect API key" in response.json()["error"]["message"]
    assert fake_ai.calls == []


def test_non_bearer_scheme_is_a_401(service):
    response = requests.get(
        service.url + "/v1/models", headers={"Authorization": f"Basic {API_KEY}"}
    )
    assert response.status_code == 401


def test_any_of_several_keys_is_accepted(start_service):
    service = start_service(API_KEY="key-a, key-b ,key-c")
    assert service.get("/v1/models", key="key-b").status_code == 200
    assert service.get("/v1/models", key="key-c").status_code == 200
    assert service.get("/v1/models", key="key-d").status_code == 401
    assert service.get("/v1/models", key="key-a, key-b").status_code == 401


def test_open_paths_need_no_key(service):
    assert service.get("/", key=None).status_code == 200
    assert service.get("/image/AAAAAAAAAAAAAAAAAAAAAAAA", key=None).status_code == 404


def test_without_api_key_a_strong_key_is_created_once_and_kept(start_service, service_env, caplog):
    data_dir = service_env["DATA_DIR"]
    first = start_service(API_KEY=None)
    key_file = os.path.join(data_dir, "api_key")
    key = open(key_file).read().strip()
    assert len(key) >= 40
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert first.get("/v1/models", key=None).status_code == 401
    assert first.get("/v1/models", key=key).status_code == 200
    second = start_service(API_KEY=None)  # a restart, or another worker
    assert open(key_file).read().strip() == key
    assert second.get("/v1/models", key=key).status_code == 200
    assert key_file in caplog.text
    assert key not in caplog.text


def test_cors_preflight_needs_no_key(service):
    response = requests.options(
        service.url + "/v1/chat/completions",
        headers={
            "Origin": "https://chat.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://chat.example")
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/v1/models", 401),
        ("GET", "/no/such/path", 404),
        ("DELETE", "/v1/models", 405),
        ("POST", "/v1/chat/completions", 400),
    ],
)
def test_cors_headers_are_on_errors_too(service, method, path, status):
    headers = {"Origin": "https://chat.example"}
    if path == "/v1/chat/completions":
        headers["Authorization"] = f"Bearer {API_KEY}"
    response = requests.request(method, service.url + path, headers=headers, data=b"nope")
    assert response.status_code == status
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://chat.example")
    assert response.json()["error"]["message"]


def test_cors_origins_can_be_restricted(start_service):
    service = start_service(CORS_ORIGINS="https://mine.example")
    mine = service.get("/v1/models", headers={"Origin": "https://mine.example"})
    theirs = service.get("/v1/models", headers={"Origin": "https://theirs.example"})
    assert mine.headers["Access-Control-Allow-Origin"] == "https://mine.example"
    assert "Access-Control-Allow-Origin" not in theirs.headers


def test_404_and_405_are_openai_errors(service):
    missing = service.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = service.get("/v1/chat/completions")
    assert wrong.status_code == 405
    assert "POST" in wrong.json()["error"]["message"]


def test_a_401_says_where_a_created_key_is_never_the_key_nor_the_servers_path(
    start_service, service_env, fake_ai
):
    service = start_service(API_KEY=None)
    key_file = Path(service_env["DATA_DIR"]) / "api_key"
    for key in (None, "sk-wrong"):
        response = service.chat("a fox", key=key)
        message = response.json()["error"]["message"]
        assert response.status_code == 401 and "`api_key` under DATA_DIR" in message
        assert key_file.read_text().strip() not in message
        assert service_env["DATA_DIR"] not in message  # a stranger learns nothing of the disk


def test_a_401_with_a_configured_key_names_no_file(service):
    assert "api_key" not in service.chat("a fox", key="sk-wrong").json()["error"]["message"]
