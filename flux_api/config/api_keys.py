"""API_KEY entries, and the rate limits RATE_LIMIT and a key's own are written in.

    API_KEY=a-bare-key,alice:alices-key-of-16-or-more,kids:the-kids-key-16-or-more:20/day

A name (`[A-Za-z0-9_.-]{1,32}`) is what access lines, metrics and usage show: never the key. A
bare key (no `:`) is named `key-` and 8 hex digits of a slow hash of it: the same on every node;
a long key cannot be found from it (a very short one could, slowly: name your keys). A key's own
limit replaces RATE_LIMIT for that key (`off`: none for it). An entry with a `:` that is not
`name:key` or `name:key:N/unit`, two entries with one name or one key stop the start. A key from
before names existed that holds a `:` either stops the start or, when it reads as `name:key`, is
read so (its clients then get 401): such keys must be renamed when upgrading.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from flux_api.config.environment import SettingsError

_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")
MIN_NAMED_KEY = 16  # characters of a named key: a name makes a short key no safer to guess
_NAME_SALT = b"flux-api key name"


@dataclass(frozen=True)
class RateLimit:
    requests: int
    period: int  # seconds

    def __str__(self) -> str:
        unit = next(name for name, seconds in _PERIODS.items() if seconds == self.period)
        return f"{self.requests}/{unit}"


@dataclass(frozen=True)
class ApiKey:
    name: str
    secret: str = field(repr=False)
    own_limit: bool = False  # it has its own limit, replacing RATE_LIMIT
    limit: RateLimit | None = None  # that limit (None with own_limit: none at all)

    def limit_under(self, default: RateLimit | None) -> RateLimit | None:
        """The limit this key's requests count against, given RATE_LIMIT."""
        return self.limit if self.own_limit else default


def parse_rate_limit(raw: str, name: str, echo: bool = True) -> RateLimit | None:
    """`30/minute` (a count per second, minute, hour or day); empty, off, 0, none: no limit.
    `echo`: whether an error may quote `raw` (not when it could be part of a key)."""
    raw = raw.strip().lower()
    if raw in ("", "off", "0", "none"):
        return None
    count, _, unit = raw.partition("/")
    unit = unit.strip().removesuffix("s")
    count = count.strip()
    if not (count.isascii() and count.isdigit()) or int(count) < 1 or unit not in _PERIODS:
        raise SettingsError(
            f"{name} must look like 30/minute (a count per second, minute, hour or day)"
            + (f", not {raw!r}." if echo else ".")
        )
    return RateLimit(int(count), _PERIODS[unit])


def bare_key(secret: str) -> ApiKey:
    """Named by a slow hash (scrypt, ~16 MiB and some ms once per start): the name appears in
    logs and usage, and a short key must not be found from it by trying keys quickly."""
    digest = hashlib.scrypt(secret.encode(), salt=_NAME_SALT, n=2**14, r=8, p=1, dklen=4)
    return ApiKey(f"key-{digest.hex()}", secret)


def parse_api_keys(entries: tuple[str, ...]) -> tuple[ApiKey, ...]:
    """Every entry of API_KEY (already split at commas), checked. Errors name an entry by its
    position: what looks like a name may be the start of an old key holding a ':'."""
    keys = tuple(_parse(entry, position) for position, entry in enumerate(entries, 1))
    secrets = [key.secret for key in keys]
    if len(set(secrets)) < len(secrets):
        raise SettingsError("API_KEY: the same key appears twice; give each person their own.")
    names = [key.name for key in keys]
    for position, name in enumerate(names, 1):
        if names.count(name) > 1:
            twin = names.index(name, position) + 1
            raise SettingsError(
                f"API_KEY entries {position} and {twin} have the same name; each must be unique."
            )
    return keys


def _parse(entry: str, position: int) -> ApiKey:
    if ":" not in entry:
        return bare_key(entry)
    where = f"API_KEY entry {position}"
    parts = entry.split(":")
    if len(parts) not in (2, 3) or not _NAME.fullmatch(parts[0]):
        raise SettingsError(
            f"{where} has a ':' but is not name:key or name:key:N/unit (a name is 1-32 of "
            "A-Z a-z 0-9 _ . -). A key itself may not contain ':'."
        )
    name, secret = parts[0], parts[1]
    if len(secret) < MIN_NAMED_KEY:
        raise SettingsError(
            f"{where}: the key after the name is {len(secret)} characters; a named key needs "
            f"at least {MIN_NAMED_KEY}."
        )
    if len(parts) == 2:
        return ApiKey(name, secret)
    if parts[2].strip().lower() == "off":
        return ApiKey(name, secret, True, None)
    limit = parse_rate_limit(parts[2], f"{where}'s limit", echo=False)
    if limit is None:  # empty, 0, none: a slip that must not mean "no limit"
        raise SettingsError(
            f"{where}'s limit must look like 30/minute, or be `off` for no limit at all."
        )
    return ApiKey(name, secret, True, limit)


def parse_metrics_key(raw: str, keys: tuple[ApiKey, ...]) -> str:
    """METRICS_KEY: a key of its own, for /metrics and everyone's /v1/usage."""
    if raw and len(raw) < MIN_NAMED_KEY:
        raise SettingsError(f"METRICS_KEY must be at least {MIN_NAMED_KEY} characters.")
    if raw and any(key.secret == raw for key in keys):
        raise SettingsError("METRICS_KEY must differ from every key in API_KEY.")
    return raw
