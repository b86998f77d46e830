"""The model catalogue checks itself: every model the service offers has a schema in the fake
Workers AI and a row in the README's model table (and serves images at exactly the size asked:
tests/system/test_model_sizes.py)."""

from __future__ import annotations

import re

import pytest

from flux_api.config.models import ALL_MODELS, DEFAULT_MODEL_ID
from flux_api.config.settings import Settings
from tests.support import ROOT
from tests.support.fakes.workers_ai import SCHEMAS

README = (ROOT / "README.md").read_text()
MODEL_ROWS = [line for line in README.splitlines() if line.startswith("| `@cf/")]


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.short_name)
def test_every_model_has_a_fake_schema_and_a_readme_row(model):
    assert model.id in SCHEMAS
    # A row names it in full, by its short name, or by its end after a sibling ("…-inpainting").
    names = (model.id, f"`{model.short_name}`", f"`…-{model.id.rsplit('-', 1)[1]}`")
    assert any(name in row for row in MODEL_ROWS for name in names), model.id


def test_the_default_model_is_named_not_the_first_in_the_table():
    assert Settings().flux_model == DEFAULT_MODEL_ID
    assert re.search(rf"\| `FLUX_MODEL` \| `{re.escape(DEFAULT_MODEL_ID)}` \|", README)
