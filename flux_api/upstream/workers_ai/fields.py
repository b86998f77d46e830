"""What a Workers AI call sends: the fields each model's schema accepts (models.py says which),
the images of an edit in the form the model takes them, and multipart parts for the models that
take multipart (docs/workers-ai.md has the contract)."""

from __future__ import annotations

import pybase64

from flux_api.config.models import EditInput, ModelProfile
from flux_api.imaging.pictures import sniff_type


def build_fields(
    model: ModelProfile,
    prompt: str,
    size: tuple[int, int] | None,
    steps: int | None,
    extras: dict | None,
) -> dict:
    """The request fields this model's schema accepts, and nothing else."""
    fields: dict = {"prompt": prompt}
    if model.steps_field and steps is not None:
        fields[model.steps_field] = model.clamp_steps(steps)
    if size and model.native_sizes:
        fields["width"], fields["height"] = size
    for name, value in (extras or {}).items():
        if name in model.extras and value is not None:
            fields[name] = value
    return fields


def image_fields(model: ModelProfile, images: tuple[bytes, ...], mask: bytes | None) -> dict:
    """The images an edit sends, as the model takes them (docs/workers-ai.md, "Editing")."""
    if not images:
        return {}
    if model.edit_input is EditInput.REFERENCES:  # binary multipart parts, named exactly so
        return {f"input_image_{index}": data for index, data in enumerate(images)}
    fields: dict = {"image_b64": pybase64.b64encode(images[0]).decode()}
    if mask is not None and model.edit_input is EditInput.IMAGE_AND_MASK:
        fields["mask"] = list(mask)  # the mask file's bytes, as an array of 0-255
    return fields


def multipart_parts(fields: dict) -> dict:
    """Each field as a multipart part: a file for image bytes (type from the bytes), else text."""
    return {name: _part(name, value) for name, value in fields.items()}


def _part(name: str, value) -> tuple:
    if isinstance(value, bytes):
        mime = sniff_type(value) or "application/octet-stream"
        return (f"{name}.{mime.rsplit('/', 1)[-1]}", value, mime)
    return (None, str(value))
