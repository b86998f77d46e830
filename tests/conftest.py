"""Every test's kind, from its directory: tests/unit (marker `unit`: no socket, seconds in all)
and tests/system (marker `system`: the service over HTTP, gunicorn, nginx, Redis, Chromium), so
`pytest -m unit` works as `pytest tests/unit` does. Unit tests run first. Their fixtures are in
each directory's conftest.py; code both share is in tests/support."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
KINDS = ("unit", "system")


def _kind(item: pytest.Item) -> str | None:
    if not item.path.is_relative_to(TESTS):
        return None
    parts = item.path.relative_to(TESTS).parts
    return parts[0] if len(parts) > 1 and parts[0] in KINDS else ""


@pytest.hookimpl(tryfirst=True)  # before -m selects by the markers added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    misplaced = sorted({item.nodeid.split("::")[0] for item in items if _kind(item) == ""})
    if misplaced:
        raise pytest.UsageError(
            "test modules belong in tests/unit (no socket) or tests/system: " + ", ".join(misplaced)
        )
    for item in items:
        if kind := _kind(item):
            item.add_marker(kind)
    # Stable: each kind keeps its order; anything outside tests/ (none today) comes last.
    items.sort(key=lambda item: KINDS.index(_kind(item)) if _kind(item) else len(KINDS))
