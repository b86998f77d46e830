"""Which model serves a request: a listed model by name when it can do the job, else the default
for that job (FLUX_MODEL for text to image, EDIT_MODEL for edits, the inpainting model for a
mask). Clients send any model name (gpt-4o, dall-e-3…): an unknown one means the default, and
one warning per name, so the operator learns what clients ask for."""

from __future__ import annotations

import logging
import threading

from flux_api.config.models import INPAINTING_MODEL_ID, ModelProfile, find_model
from flux_api.config.settings import Settings
from flux_api.errors import invalid_request

log = logging.getLogger(__name__)


class NamesOnce:
    """Remembers which names were logged, up to `limit` of them: clients choose the names, so
    the memory must not grow with each new one."""

    def __init__(self, limit: int):
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def first_time(self, name: str) -> bool:
        """Whether `name` is new (and now remembered); False for all once `limit` are known."""
        with self._lock:
            if name in self._seen or len(self._seen) > self.limit:
                return False
            self._seen.add(name)
            if len(self._seen) > self.limit:  # one past the limit: say that the rest go unsaid
                log.warning(
                    "%d model names not offered here were logged; further ones are not", self.limit
                )
                return False
            return True


_UNKNOWN = NamesOnce(limit=100)  # per worker process


def listed(settings: Settings, name: object) -> ModelProfile | None:
    """The model `name` (full id or short name) if this service offers it (IMAGE_MODELS)."""
    model = find_model(name) if isinstance(name, str) else None
    return model if model is not None and model.id in settings.image_models else None


def text_model(settings: Settings, name: object) -> ModelProfile:
    """A listed text-to-image model, else FLUX_MODEL (a model that only edits never is one)."""
    model = listed(settings, name)
    if model is None:
        _not_offered(name, settings.default_model)
    if model is None or not model.makes_from_text:
        return settings.default_model
    return model


def _not_offered(name: object, instead: ModelProfile | None) -> None:
    """One warning per name that is neither a model of IMAGE_MODELS nor absent."""
    if not isinstance(name, str) or not name.strip() or instead is None:
        return
    shown = name[:60] + ("…" if len(name) > 60 else "")  # clients choose it: short, one line
    if _UNKNOWN.first_time(shown):
        log.warning(
            "model %r is not one this service offers (IMAGE_MODELS): %s answers it "
            "(said once per name)",
            shown,
            instead.short_name,
        )


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
        if model is None:
            _not_offered(name, settings.default_edit_model)
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
