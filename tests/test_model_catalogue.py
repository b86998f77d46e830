"""The model catalogue checks itself: every model the service offers has a schema in the fake
Workers AI, a row in the README's model table, and serves images at exactly the size asked."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from PIL import Image

from flux_api.config.models import ALL_MODELS, DEFAULT_MODEL_ID, MODELS
from flux_api.config.settings import Settings
from tests.fakes.workers_ai import SCHEMAS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
MODEL_ROWS = [line for line in README.splitlines() if line.startswith("| `@cf/")]


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.short_name)
def test_every_model_has_a_fake_schema_and_a_readme_row(model):
    assert model.id in SCHEMAS
    # A row names it in full, by its short name, or by its end after a sibling ("…-inpainting").
    names = (model.id, f"`{model.short_name}`", f"`…-{model.id.rsplit('-', 1)[1]}`")
    assert any(name in row for row in MODEL_ROWS for name in names), model.id


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.short_name)
def test_every_text_to_image_model_serves_the_exact_size(service, fake_ai, model):
    answer = service.post(
        "/v1/images/generations",
        {"prompt": "a fox", "model": model.id, "size": "768x512", "response_format": "b64_json"},
    )
    assert answer.status_code == 200, answer.text
    image = Image.open(io.BytesIO(base64.b64decode(answer.json()["data"][0]["b64_json"])))
    assert image.size == (768, 512)


def test_the_default_model_is_named_not_the_first_in_the_table():
    assert Settings().flux_model == DEFAULT_MODEL_ID
    assert re.search(rf"\| `FLUX_MODEL` \| `{re.escape(DEFAULT_MODEL_ID)}` \|", README)
