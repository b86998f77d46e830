"""Which model serves a request: a listed model by name when it can do the job, else the default
for that job (FLUX_MODEL for text to image, EDIT_MODEL for edits, the inpainting model for a
mask). Clients send any model name (gpt-4o, dall-e-3…): an unknown one means the default."""

from __future__ import annotations

from .errors import invalid_request
from .models import INPAINTING_MODEL_ID, ModelProfile, find_model
from .settings import Settings


def listed(settings: Settings, name: object) -> ModelProfile | None:
    """The model `name` (full id or short name) if this service offers it (IMAGE_MODELS)."""
    model = find_model(name) if isinstance(name, str) else None
    return model if model is not None and model.id in settings.image_models else None


def text_model(settings: Settings, name: object) -> ModelProfile:
    """A listed text-to-image model, else FLUX_MODEL (a model that only edits never is one)."""
    model = listed(settings, name)
    if model is None or not model.makes_from_text:
        return settings.default_model
    return model


def edit_model(settings: Settings, name: object, images: int, masked: bool) -> ModelProfile:
    """With a mask, the inpainting model; else the requested model if it edits and takes that
    many images, else EDIT_MODEL. More images than the model takes is a 400."""
    if masked:
        model = listed(settings, INPAINTING_MODEL_ID)
        if model is None:
            raise invalid_request(
                "A mask needs the inpainting model, which this service does not offer "
                "(IMAGE_MODELS). Send the edit without a mask.",
                param="mask",
            )
    else:
        model = listed(settings, name)
        if model is None or model.edit_input is None or model.max_images < images:
            model = settings.default_edit_model
        if model is None:
            raise invalid_request(
                "This service offers no model that edits images (IMAGE_MODELS, EDIT_MODEL).",
                param="model",
                code="editing_unavailable",
            )
    if images > model.max_images:
        raise invalid_request(
            f"{model.short_name} edits at most {model.max_images} image(s) at once; this "
            f"request sends {images}.",
            param="image",
            code="too_many_images",
        )
    return model
