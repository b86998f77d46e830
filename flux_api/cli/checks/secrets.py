"""Every secret the settings hold, read from the raw settings (so that they are known even when
the settings do not load): the doctor blanks them out of every line it prints, a last guard
behind checks that never put one in."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

_SHORTEST = 6  # shorter values are no secret worth the name, and would blank common words


def secrets_in(env: Mapping[str, str]) -> list[str]:
    found = [
        env.get(name, "")
        for name in ("CF_API_TOKEN", "EXTERNAL_API_KEY", "METRICS_KEY", "ALERT_WEBHOOK_URL")
    ]
    found += [entry.partition(":")[2] for entry in env.get("CF_ACCOUNTS", "").split(",")]
    for entry in env.get("API_KEY", "").split(","):
        found += [entry, *entry.split(":")[1:2]]  # a bare key, or name:key[:limit]
    try:
        found.append(urlsplit(env.get("REDIS_URL", "")).password or "")
    except ValueError:
        found.append(env.get("REDIS_URL", ""))
    # The longest first, so that no part of a longer secret is left after a shorter one.
    return sorted({s.strip() for s in found if len(s.strip()) >= _SHORTEST}, key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
