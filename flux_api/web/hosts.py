"""The Host a request came in on, when no PUBLIC_BASE_URL is set: it becomes the address of
every image link, so it must be a plain host[:port], and one the person's browser can reach."""

from __future__ import annotations

import ipaddress
import logging
import re

from flux_api.errors import invalid_request

log = logging.getLogger(__name__)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(
    rf"(?P<name>{_LABEL}(?:\.{_LABEL})*\.?|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])(?::(?P<port>\d{{1,5}}))?"
)
_warned = False


def checked_host(host: str) -> str:
    """`host` if it is a valid host[:port], else a 400 before any work (and any quota) is spent."""
    match = _HOST.fullmatch(host)
    if match is None or (match["port"] and int(match["port"]) > 65535):
        raise invalid_request(
            "The request's Host header is not a valid host name: image links are built from "
            "it. Send a plain host[:port], or have the operator set PUBLIC_BASE_URL.",
            param="Host",
        )
    if not _warned and _unreachable_from_browsers(match["ipv6"] or match["name"]):
        _warn_once(host)
    return host


def _unreachable_from_browsers(name: str) -> bool:
    """A docker service name (one label) or a private address: links built from it only load
    inside that network. Loopback is left alone: there the browser is on the same machine."""
    name = name.rstrip(".")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return "." not in name and name.lower() != "localhost"
    return address.is_private and not address.is_loopback


def _warn_once(host: str) -> None:
    global _warned
    _warned = True
    log.warning(
        "image links are built from the request's Host %r, which browsers outside its network "
        "cannot reach; set PUBLIC_BASE_URL to the address people use",
        host[:100],
    )
