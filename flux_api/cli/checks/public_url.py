"""PUBLIC_BASE_URL: what settings do not check of it. Image links are PUBLIC_BASE_URL +
`/image/<id>` (generation/pipeline.py), in every reply, read by browsers and chat clients."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from flux_api.cli.checks import Check, fail, ok, warn
from flux_api.config.settings import Settings

NAME = "PUBLIC_BASE_URL"


def public_url_check(settings: Settings) -> Check:
    value = settings.public_base_url
    if not value:
        return warn(
            NAME,
            "unset: image links follow each request's Host, which is right behind one nginx "
            "that passes it on, wrong behind a proxy that does not (links to an inner address)",
            "set it to the address clients use, such as https://img.example.com, if links "
            "point somewhere clients cannot reach",
        )
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        return fail(
            NAME,
            "it has a ?query or #fragment, which would come before /image/<id> in every link",
            "drop it: scheme://host[:port][/path] only",
        )
    if parts.username or parts.password:
        return fail(
            NAME,
            "it holds a user name or password, which every image link would carry",
            "drop the user:password@ part",
        )
    if parts.scheme == "http" and not _loopback(parts.hostname or ""):
        return warn(
            NAME,
            f"image links are {value}/image/<id>, plain http on a public host: https pages "
            "(chat clients) block such images as mixed content",
            "serve it over https and write https://",
        )
    return ok(NAME, f"image links are {value}/image/<id>")


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
