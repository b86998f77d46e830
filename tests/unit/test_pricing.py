"""Estimated neurons from Cloudflare's published prices (flux_api/config/pricing.py): every model
the service offers has an entry, the worked examples of docs/pricing.md hold, and the table there
names every model and the date the prices were read."""

from __future__ import annotations

import re
from datetime import date

import pytest

from flux_api.config.models import ALL_MODELS
from flux_api.config.pricing import (
    DOLLARS_PER_NEURON,
    PRICES,
    PRICES_READ,
    estimated_neurons,
    megapixels,
    tiles,
)
from tests.support import ROOT

PRICING_DOC = (ROOT / "docs" / "pricing.md").read_text()
SCHNELL = "@cf/black-forest-labs/flux-1-schnell"
PHOENIX = "@cf/leonardo/phoenix-1.0"


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.short_name)
def test_every_model_has_a_price_or_says_none_is_published(model):
    price = PRICES[model.id]
    assert price.source.startswith("https://")
    if price.published:
        assert estimated_neurons(model.id, 1024, 1024, None) is not None
    else:
        assert "no price" in price.note
        assert estimated_neurons(model.id, 1024, 1024, 20) is None


def test_every_price_is_for_a_model_the_service_offers():
    assert set(PRICES) == {model.id for model in ALL_MODELS}


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.short_name)
def test_published_dollars_and_neurons_agree_at_0_011_dollars_per_1000(model):
    for term in PRICES[model.id].terms:
        # The page rounds dollars to 2 significant digits at most (18.75 neurons: "$0.00021").
        assert term.dollars == pytest.approx(term.neurons * DOLLARS_PER_NEURON, rel=0.025)


def test_the_worked_example_schnell_1024x1024_in_4_steps_is_57_6_neurons():
    # 4 tiles x 4.80 + 4 steps x 9.60
    assert estimated_neurons(SCHNELL, 1024, 1024, 4) == 57.6
    assert estimated_neurons("flux-1-schnell", 1024, 1024, 4) == 57.6  # the short name too


def test_schnell_is_counted_at_the_only_size_it_makes_and_its_steps_clamped_to_8():
    assert estimated_neurons(SCHNELL, 768, 512, 4) == 57.6
    assert estimated_neurons(SCHNELL, 1024, 1024, 12) == estimated_neurons(SCHNELL, 1024, 1024, 8)
    assert estimated_neurons(SCHNELL, 1024, 1024, None) == 57.6  # its default: 4 steps


@pytest.mark.parametrize(
    "size, count",
    [
        ((512, 512), 1),
        ((1, 1), 1),
        ((513, 512), 2),
        ((1024, 576), 4),
        ((1000, 600), 4),
        ((1920, 1080), 12),
        ((256, 1920), 4),
        ((2500, 2500), 25),
    ],
)
def test_a_part_tile_counts_whole(size, count):
    assert tiles(*size) == count


def test_odd_sizes_are_priced_by_whole_tiles():
    # phoenix: 530 a tile, 10 a step, 25 steps by default
    assert estimated_neurons(PHOENIX, 1000, 600, None) == 4 * 530 + 25 * 10
    assert estimated_neurons(PHOENIX, 1025, 512, 10) == 3 * 530 + 10 * 10


@pytest.mark.parametrize(
    "size, count",
    [((512, 512), 1), ((1024, 1024), 1), ((1025, 1024), 2), ((1920, 1080), 2), ((1920, 1920), 4)],
)
def test_a_part_megapixel_counts_whole_and_an_image_is_at_least_one(size, count):
    assert megapixels(*size) == count


def test_flux_2_prices_count_reference_images():
    klein_4b = "@cf/black-forest-labs/flux-2-klein-4b"
    assert estimated_neurons(klein_4b, 1024, 1024, None) == 104.2  # 4 x 26.05
    assert estimated_neurons(klein_4b, 1024, 1024, None, input_images=2) == 114.94
    klein_9b = "@cf/black-forest-labs/flux-2-klein-9b"
    assert estimated_neurons(klein_9b, 512, 512, None) == 1363.64  # the first MP, whole
    assert estimated_neurons(klein_9b, 1920, 1080, None) == 1545.46  # + one more MP
    assert estimated_neurons(klein_9b, 1024, 1024, None, input_images=4) == 2090.92
    dev = "@cf/black-forest-labs/flux-2-dev"
    assert estimated_neurons(dev, 1024, 1024, 4) == 600.0  # 4 tiles x 4 steps x 37.50
    assert estimated_neurons(dev, 1024, 1024, 4, input_images=1) == 675.0  # + 4 x 18.75


def test_lucid_origin_without_steps_counts_its_maximum_40():
    assert estimated_neurons("@cf/leonardo/lucid-origin", 1024, 1024, None) == 4 * 636 + 40 * 12


def test_a_model_the_catalogue_lists_at_0_dollars_is_estimated_at_0():
    assert estimated_neurons("@cf/bytedance/stable-diffusion-xl-lightning", 1024, 1024, 8) == 0.0


@pytest.mark.parametrize("name", ["@cf/unknown/model", "flux-3", ""])
def test_an_unknown_model_has_no_estimate(name):
    assert estimated_neurons(name, 1024, 1024, 4) is None


def test_the_doc_has_a_row_for_every_model_and_the_date_read():
    assert date.fromisoformat(PRICES_READ)
    assert PRICES_READ in PRICING_DOC
    for model in ALL_MODELS:
        assert re.search(rf"^\| `{re.escape(model.id)}` \|", PRICING_DOC, re.M), model.id
