"""GET /v1/models and the welcome page (its playground is driven in
tests/system/test_playground.py)."""

import re

from tests.support.fakes.workers_ai import ACCOUNT_ID


def test_models_lists_every_model_default_first(start_service):
    service = start_service(FLUX_MODEL="@cf/leonardo/lucid-origin")
    body = service.get("/v1/models").json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids[0] == "@cf/leonardo/lucid-origin"
    assert len(ids) == len(set(ids)) == 11  # 9 text-to-image, 2 that only edit
    assert "@cf/black-forest-labs/flux-2-klein-9b" in ids
    for model in body["data"]:
        assert model["object"] == "model"
        assert isinstance(model["created"], int)
        assert model["owned_by"]


def test_image_models_restricts_the_list(start_service):
    service = start_service(IMAGE_MODELS="flux-1-schnell,flux-2-dev")
    ids = [m["id"] for m in service.get("/v1/models").json()["data"]]
    assert ids == ["@cf/black-forest-labs/flux-1-schnell", "@cf/black-forest-labs/flux-2-dev"]


def test_one_model_can_be_retrieved(service):
    model = service.get("/v1/models/@cf/black-forest-labs/flux-2-dev").json()
    assert model["id"] == "@cf/black-forest-labs/flux-2-dev"
    missing = service.get("/v1/models/gpt-4o")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_page_says_up_default_model_and_configuration(start_service, optimizer_env):
    page = start_service(**optimizer_env).get("/", key=None)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "The service is up" in page.text
    assert "@cf/black-forest-labs/flux-1-schnell" in page.text
    assert "configured" in page.text and "missing" not in page.text
    assert "on, with <code>gpt-4o-mini</code>" in page.text
    assert "curl " in page.text and "/v1/chat/completions" in page.text
    assert ACCOUNT_ID not in page.text


def test_page_names_missing_credentials(start_service):
    page = start_service(CF_ACCOUNT_ID=None, CF_API_TOKEN=None).get("/", key=None).text
    assert "CF_ACCOUNT_ID" in page and "CF_API_TOKEN" in page
    assert re.search(r"Prompt optimisation</dt>\s*<dd>off</dd>", page)


def test_page_uses_relative_urls_and_embeds_no_key(start_service):
    page = start_service().get("/", key=None).text
    assert 'href="static/playground.css"' in page and 'src="static/playground.js"' in page
    assert 'fetch("/' not in page and "sk-test" not in page
    script = start_service().get("/static/playground.js", key=None)
    assert script.status_code == 200
    assert 'fetch("v1/chat/completions"' in script.text and 'fetch("/' not in script.text


def test_favicon_needs_no_key(service):
    response = service.get("/favicon.ico", key=None)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/vnd.microsoft.icon"
