"""Workers AI image models as data: how each one is called and what it answers.

The facts come from Cloudflare's model schemas (docs/workers-ai.md). Each model gets only the
fields its schema accepts; sending anything else is answered with 400 / code 5006.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

# The size of an image asked for without a ratio or a size (what flux-1-schnell always makes).
DEFAULT_SIZE = (1024, 1024)


class Encoding(Enum):
    JSON = "json"
    MULTIPART = "multipart"


class ResponseForm(Enum):
    ENVELOPE = "envelope"  # {"success": true, "result": {"image": "<base64>"}}
    RAW = "raw"  # the image bytes themselves


class EditInput(Enum):
    """How a model takes the images it edits (docs/workers-ai.md, "Editing")."""

    REFERENCES = "references"  # multipart files input_image_0…3, each at most 512x512
    IMAGE = "image"  # JSON image_b64: img2img
    IMAGE_AND_MASK = "image_and_mask"  # JSON image_b64 + mask (the mask file's bytes): inpainting


@dataclass(frozen=True)
class ModelProfile:
    id: str
    owned_by: str
    encoding: Encoding
    response: ResponseForm
    # Name of the field that sets the number of steps, or None where steps are fixed.
    steps_field: str | None = None
    steps_range: tuple[int, int] = (1, 1)
    # FLUX models take their steps from FLUX_NUM_STEPS; the others keep the model's own default.
    uses_flux_steps: bool = False
    # (min, max) pixels per side, or None where the model decides the size (always 1024x1024).
    size_range: tuple[int, int] | None = None
    fixed_size: tuple[int, int] = (1024, 1024)
    prompt_limit: int = 2048
    # Optional extras the schema accepts (used by the Images API extensions).
    extras: frozenset[str] = frozenset()
    # Editing: how the model takes input images (None: it does not edit), how many, how large.
    edit_input: EditInput | None = None
    max_images: int = 0
    max_image_side: int | None = None
    # False for models that only edit: they need an input image and never serve a text prompt.
    makes_from_text: bool = True

    @property
    def short_name(self) -> str:
        return self.id.rsplit("/", 1)[-1]

    @property
    def native_sizes(self) -> bool:
        return self.size_range is not None

    def clamp_steps(self, steps: int) -> int:
        low, high = self.steps_range
        return max(low, min(high, steps))


_FLUX2: dict[str, Any] = dict(
    owned_by="black-forest-labs",
    encoding=Encoding.MULTIPART,
    response=ResponseForm.ENVELOPE,
    size_range=(256, 1920),
    edit_input=EditInput.REFERENCES,
    max_images=4,
    max_image_side=512,
)
_SD15: dict[str, Any] = dict(
    owned_by="runwayml",
    encoding=Encoding.JSON,
    response=ResponseForm.RAW,
    steps_field="num_steps",
    steps_range=(1, 20),
    size_range=(256, 2048),
    extras=frozenset({"negative_prompt", "guidance", "seed", "strength"}),
    max_images=1,
    max_image_side=2048,
    makes_from_text=False,
)
_SD: dict[str, Any] = dict(
    encoding=Encoding.JSON,
    response=ResponseForm.RAW,
    steps_field="num_steps",
    steps_range=(1, 20),
    size_range=(256, 2048),
    extras=frozenset({"negative_prompt", "guidance", "seed"}),
)

MODELS: tuple[ModelProfile, ...] = (
    ModelProfile(
        id="@cf/black-forest-labs/flux-1-schnell",
        owned_by="black-forest-labs",
        encoding=Encoding.JSON,
        response=ResponseForm.ENVELOPE,
        steps_field="steps",
        steps_range=(1, 8),
        uses_flux_steps=True,
    ),
    ModelProfile(
        id="@cf/black-forest-labs/flux-2-dev",
        steps_field="steps",
        steps_range=(1, 50),
        uses_flux_steps=True,
        **_FLUX2,
    ),
    ModelProfile(id="@cf/black-forest-labs/flux-2-klein-4b", **_FLUX2),
    ModelProfile(id="@cf/black-forest-labs/flux-2-klein-9b", **_FLUX2),
    ModelProfile(id="@cf/stabilityai/stable-diffusion-xl-base-1.0", owned_by="stabilityai", **_SD),
    ModelProfile(id="@cf/bytedance/stable-diffusion-xl-lightning", owned_by="bytedance", **_SD),
    ModelProfile(id="@cf/lykon/dreamshaper-8-lcm", owned_by="lykon", **_SD),
    ModelProfile(
        id="@cf/leonardo/phoenix-1.0",
        owned_by="leonardo",
        encoding=Encoding.JSON,
        response=ResponseForm.RAW,
        steps_field="num_steps",
        steps_range=(1, 50),
        size_range=(256, 2048),
        extras=frozenset({"negative_prompt", "guidance", "seed"}),
    ),
    ModelProfile(
        id="@cf/leonardo/lucid-origin",
        owned_by="leonardo",
        encoding=Encoding.JSON,
        response=ResponseForm.ENVELOPE,
        steps_field="steps",
        steps_range=(1, 40),
        size_range=(256, 2500),
        extras=frozenset({"guidance", "seed"}),
    ),
)

EDIT_ONLY_MODELS: tuple[ModelProfile, ...] = (
    ModelProfile(
        id="@cf/runwayml/stable-diffusion-v1-5-img2img", edit_input=EditInput.IMAGE, **_SD15
    ),
    ModelProfile(
        id="@cf/runwayml/stable-diffusion-v1-5-inpainting",
        edit_input=EditInput.IMAGE_AND_MASK,
        **_SD15,
    ),
)
INPAINTING_MODEL_ID = "@cf/runwayml/stable-diffusion-v1-5-inpainting"
# FLUX_MODEL's default: named, not "whichever entry comes first" (reordering MODELS keeps it).
DEFAULT_MODEL_ID = "@cf/black-forest-labs/flux-1-schnell"

ALL_MODELS: tuple[ModelProfile, ...] = (*MODELS, *EDIT_ONLY_MODELS)
MODELS_BY_ID: dict[str, ModelProfile] = {m.id: m for m in ALL_MODELS}


def find_model(name: str) -> ModelProfile | None:
    """The profile for a full id (`@cf/…/flux-1-schnell`) or its last segment (`flux-1-schnell`)."""
    if name in MODELS_BY_ID:
        return MODELS_BY_ID[name]
    for model in MODELS_BY_ID.values():
        if model.short_name == name:
            return model
    return None
