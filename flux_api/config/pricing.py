"""Estimated neurons per Workers AI call, from Cloudflare's published prices (docs/pricing.md).

Cloudflare's answer carries the neurons a call spent (`cf-ai-neurons`) only sometimes; when it
does not, `estimated_neurons` says what the published prices make of the call. It is an
estimate, and is to be marked as one wherever it is shown: Cloudflare does not publish how it
rounds tiles or megapixels, and prices change (PRICES_READ is when these were read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from flux_api.config.models import find_model

PRICES_READ = "2026-12-07"
PRICING_PAGE = "https://developers.cloudflare.com/workers-ai/platform/pricing/"
PRICING_SOURCE = (
    "https://github.com/cloudflare/cloudflare-docs/blob/production/"
    "src/content/docs/workers-ai/platform/pricing.mdx"
)
CATALOGUE_SOURCE = (
    "https://github.com/cloudflare/cloudflare-docs/tree/production/src/content/workers-ai-models"
)

# Workers AI bills neurons, at $0.011 per 1,000, with 10,000 a day free per account.
DOLLARS_PER_NEURON = 0.011 / 1000
FREE_NEURONS_PER_DAY = 10_000

TILE_SIDE = 512
MEGAPIXEL = 1024 * 1024  # Cloudflare's "first MP (1024x1024)"


class Unit(Enum):
    """What a published price is per, in the pricing page's words."""

    TILE = "per 512x512 tile"  # of the output
    STEP = "per step"
    OUTPUT_TILE = "per output 512x512 tile"
    INPUT_TILE = "per input 512x512 tile"
    OUTPUT_TILE_STEP = "per output 512x512 tile, per step"
    INPUT_TILE_STEP = "per input 512x512 tile, per step"
    FIRST_MP = "per first MP (1024x1024)"
    NEXT_MP = "per subsequent MP"
    INPUT_MP = "per input image MP"


@dataclass(frozen=True)
class Term:
    unit: Unit
    neurons: float  # as published, in neurons
    dollars: float  # as published, in USD


@dataclass(frozen=True)
class Price:
    """A model's published price: its terms, added up. No terms: Cloudflare publishes none."""

    terms: tuple[Term, ...]
    source: str  # where the price (or its absence) was read
    # Steps counted when a call sends none: the schema's default, or where the schema names no
    # default, its maximum (so the estimate errs high).
    default_steps: int | None = None
    note: str = ""

    @property
    def published(self) -> bool:
        return bool(self.terms)


_PAGE = f"{PRICING_PAGE} (Image model pricing)"


def _catalogue(name: str) -> str:
    return f"{CATALOGUE_SOURCE}/{name}.json (property price)"


_NOT_PUBLISHED = "Beta; not on the pricing page, and no price in the model catalogue."

PRICES: dict[str, Price] = {
    "@cf/black-forest-labs/flux-1-schnell": Price(
        (Term(Unit.TILE, 4.80, 0.0000528), Term(Unit.STEP, 9.60, 0.0001056)),
        _PAGE,
        default_steps=4,
    ),
    "@cf/black-forest-labs/flux-2-dev": Price(
        (
            Term(Unit.INPUT_TILE_STEP, 18.75, 0.00021),
            Term(Unit.OUTPUT_TILE_STEP, 37.50, 0.00041),
        ),
        _PAGE,
        default_steps=50,
        note="The service always sends steps (FLUX_NUM_STEPS); no default is published.",
    ),
    "@cf/black-forest-labs/flux-2-klein-4b": Price(
        (Term(Unit.INPUT_TILE, 5.37, 0.000059), Term(Unit.OUTPUT_TILE, 26.05, 0.000287)),
        _PAGE,
    ),
    "@cf/black-forest-labs/flux-2-klein-9b": Price(
        (
            Term(Unit.FIRST_MP, 1363.64, 0.015),
            Term(Unit.NEXT_MP, 181.82, 0.002),
            Term(Unit.INPUT_MP, 181.82, 0.002),
        ),
        _PAGE,
    ),
    "@cf/stabilityai/stable-diffusion-xl-base-1.0": Price(
        (), _catalogue("stable-diffusion-xl-base-1.0"), note=_NOT_PUBLISHED
    ),
    "@cf/bytedance/stable-diffusion-xl-lightning": Price(
        (Term(Unit.STEP, 0.0, 0.0),),
        _catalogue("stable-diffusion-xl-lightning"),
        default_steps=20,
        note="Beta; not on the pricing page; the model catalogue lists $0 per step.",
    ),
    "@cf/lykon/dreamshaper-8-lcm": Price((), _catalogue("dreamshaper-8-lcm"), note=_NOT_PUBLISHED),
    "@cf/leonardo/phoenix-1.0": Price(
        (Term(Unit.TILE, 530.00, 0.005830), Term(Unit.STEP, 10.00, 0.000110)),
        _PAGE,
        default_steps=25,
    ),
    "@cf/leonardo/lucid-origin": Price(
        (Term(Unit.TILE, 636.00, 0.006996), Term(Unit.STEP, 12.00, 0.000132)),
        _PAGE,
        default_steps=40,
        note="The service sends no steps and the schema names no default: 40, its maximum.",
    ),
    "@cf/runwayml/stable-diffusion-v1-5-img2img": Price(
        (), _catalogue("stable-diffusion-v1-5-img2img"), note=_NOT_PUBLISHED
    ),
    "@cf/runwayml/stable-diffusion-v1-5-inpainting": Price(
        (Term(Unit.STEP, 0.0, 0.0),),
        _catalogue("stable-diffusion-v1-5-inpainting"),
        default_steps=20,
        note="Beta; not on the pricing page; the model catalogue lists $0 per step.",
    ),
}


def tiles(width: int, height: int) -> int:
    """512x512 tiles covering an image, a part tile counted whole (Cloudflare does not say how
    it counts; this is the choice, docs/pricing.md)."""
    return math.ceil(width / TILE_SIDE) * math.ceil(height / TILE_SIDE)


def megapixels(width: int, height: int) -> int:
    """Megapixels (1024x1024 each) of an image, a part one counted whole, at least one."""
    return max(1, math.ceil(width * height / MEGAPIXEL))


# The prices are constants: the ledger asks this for each Workers AI call, mostly with the same
# few arguments (1 % of a worker's CPU under bench/run.py before it was remembered).
@lru_cache(maxsize=512)
def estimated_neurons(
    model_id: str, width: int, height: int, steps: int | None, input_images: int = 0
) -> float | None:
    """The neurons Cloudflare's published prices make of one call that makes a `width` x
    `height` image in `steps` steps from `input_images` reference images; None for a model
    without a published price (or one this service does not know).

    A model that takes no size (flux-1-schnell) is counted at the size it always makes. Steps
    are clamped to the model's range as the call clamps them; None counts the model's default
    (Price.default_steps). Each reference image counts as one input tile and one input megapixel:
    the service sends them at most 512x512. The sum is rounded to 1/100 neuron, as prices are."""
    model = find_model(model_id)
    price = PRICES.get(model.id) if model else None
    if model is None or price is None or not price.published:
        return None
    if not model.native_sizes:
        width, height = model.fixed_size
    counted_steps = price.default_steps if steps is None else steps
    if counted_steps is not None and model.steps_field:
        counted_steps = model.clamp_steps(counted_steps)
    out_tiles = tiles(width, height)
    quantities = {
        Unit.TILE: out_tiles,
        Unit.OUTPUT_TILE: out_tiles,
        Unit.INPUT_TILE: input_images,
        Unit.STEP: counted_steps,
        Unit.OUTPUT_TILE_STEP: None if counted_steps is None else out_tiles * counted_steps,
        Unit.INPUT_TILE_STEP: None if counted_steps is None else input_images * counted_steps,
        Unit.FIRST_MP: 1,
        Unit.NEXT_MP: megapixels(width, height) - 1,
        Unit.INPUT_MP: input_images,
    }
    total = 0.0
    for term in price.terms:
        quantity = quantities[term.unit]
        if quantity is None:  # a per-step price and no steps to count
            return None
        total += term.neurons * quantity
    return round(total, 2)
