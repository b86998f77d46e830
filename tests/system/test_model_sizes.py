"""The model catalogue checks itself through the service: every text-to-image model serves
images at exactly the size asked (its schema and README row: tests/unit/test_model_catalogue.py)."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from flux_api.config.models import MODELS


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.short_name)
def test_every_text_to_image_model_serves_the_exact_size(service, fake_ai, model):
    answer = service.post(
        "/v1/images/generations",
        {"prompt": "a fox", "model": model.id, "size": "768x512", "response_format": "b64_json"},
    )
    assert answer.status_code == 200, answer.text
    image = Image.open(io.BytesIO(base64.b64decode(answer.json()["data"][0]["b64_json"])))
    assert image.size == (768, 512)
