"""Requests captured on the wire from the real Open WebUI 0.12.4 (tests/fixtures/open-webui-0.12.4),
read, and with their image keys made this run's own (the captured keys belong to the run that
made them)."""

from __future__ import annotations

import json
import re

from flux_api.store.disk import DiskImageStore
from tests.support import ROOT

CAPTURES = ROOT / "tests" / "fixtures" / "open-webui-0.12.4"
_IMAGE_KEY = re.compile(r"/image/[A-Za-z0-9_-]{16,64}")
_CAPTURED_KEY = re.compile(r"(?<=/image/)[A-Za-z0-9_-]{16,64}")


def capture(name: str) -> dict:
    return json.loads((CAPTURES / name).read_text(encoding="utf-8"))


def with_own_keys(body: dict, service) -> dict:
    """The capture with each earlier image replaced by one the running `service` made."""
    text = json.dumps(body)
    for found in dict.fromkeys(_IMAGE_KEY.findall(text)):
        url = service.chat("an earlier picture").json()["flux_api"]["image_url"]
        text = text.replace(found, "/image/" + url.rsplit("/", 1)[1])
    return json.loads(text)


def capture_with_own_keys(name: str, store: DiskImageStore) -> tuple[dict, list[str]]:
    """A capture with each captured key replaced by a key of `store`, in order of appearance."""
    text = (CAPTURES / name).read_text(encoding="utf-8")
    captured = list(dict.fromkeys(_CAPTURED_KEY.findall(text)))
    own = [store.put(b"\x89PNG earlier image") for _ in captured]
    for old, new in zip(captured, own):
        text = text.replace(old, new)
    return json.loads(text), own
