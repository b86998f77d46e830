"""The gateway's HTTP API as the MCP tools use it: generations, edits, models, and the images
it stores. httpx2 is the HTTP client the `mcp` SDK itself depends on (async, so a tool can send
progress notifications while it waits)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import httpx2

from .previews import mime_type

# An image of this gateway: its /image/<key> path, under whatever host the caller saw it.
_OWN_IMAGE = re.compile(r"^https?://[^/]+(?:/[^?#]*)?/image/(?P<key>[A-Za-z0-9_-]{16,64})$")


class GatewayError(Exception):
    """The gateway refused or failed: `message` is its own (OpenAI-style) error message."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


@dataclass(frozen=True)
class MadeImage:
    url: str
    revised_prompt: str | None
    size: str | None


class Gateway:
    def __init__(self, base_url: str, timeout: float):
        self.base_url = base_url.rstrip("/")
        self._client = httpx2.AsyncClient(
            base_url=self.base_url,
            timeout=httpx2.Timeout(timeout, connect=10.0),
            # On the same machine the gateway is reached directly, whatever proxy the
            # environment names; a remote one the way the environment says (proxy, CA files).
            trust_env=not _is_loopback(self.base_url),
        )

    async def generate(
        self, key: str, prompt: str, size: str | None, model: str | None, n: int
    ) -> list[MadeImage]:
        body = {"prompt": prompt, "n": n, "response_format": "url"}
        body.update({k: v for k, v in (("size", size), ("model", model)) if v})
        return _made(await self._call("POST", "/v1/images/generations", key, json=body))

    async def edit(
        self,
        key: str,
        prompt: str,
        images: list[bytes],
        mask: bytes | None,
        model: str | None,
        size: str | None,
    ) -> list[MadeImage]:
        body: dict = {
            "prompt": prompt,
            "images": [{"image_url": data_url(image)} for image in images],
            "response_format": "url",
        }
        if mask is not None:
            body["mask"] = {"image_url": data_url(mask)}
        body.update({k: v for k, v in (("size", size), ("model", model)) if v})
        return _made(await self._call("POST", "/v1/images/edits", key, json=body))

    async def models(self, key: str) -> list[dict]:
        return (await self._call("GET", "/v1/models", key))["data"]

    async def key_works(self, key: str) -> bool | None:
        """Whether the gateway accepts `key` (the HTTP transport's bearer check): True, False
        (401/403), or None when it cannot tell now (unreachable, slow, failing)."""
        try:
            response = await self._client.get(
                "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10.0
            )
        except httpx2.HTTPError:
            return None
        if response.status_code in (401, 403):
            return False
        return True if response.status_code == 200 else None

    async def own_image(self, url: str) -> bytes | None:
        """The bytes of an image of this gateway given by its URL (fetched from FLUX_API_URL,
        whatever host the URL names), or None when the URL is not one. No other URL is ever
        fetched: an agent's arguments must not make this server reach into its network."""
        match = _OWN_IMAGE.match(url.strip())
        if match is None:
            return None
        try:
            response = await self._client.get(f"/image/{match['key']}")
        except httpx2.HTTPError as exc:
            raise GatewayError(f"The gateway could not be reached ({type(exc).__name__}).") from exc
        if response.status_code != 200:
            raise GatewayError(f"The image {url} has expired or never existed.", 404)
        return response.content

    async def _call(self, method: str, path: str, key: str, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            response = await self._client.request(method, path, headers=headers, **kwargs)
        except httpx2.TimeoutException as exc:
            raise GatewayError("The gateway did not answer in time (MCP_GATEWAY_TIMEOUT).") from exc
        except httpx2.HTTPError as exc:
            raise GatewayError(
                f"The gateway at {self.base_url} (FLUX_API_URL) could not be reached "
                f"({type(exc).__name__})."
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            error = (body or {}).get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and error.get("message"):
                raise GatewayError(str(error["message"]), response.status_code, error.get("code"))
            raise GatewayError(f"The gateway answered HTTP {response.status_code}.")
        return body

    async def aclose(self) -> None:
        await self._client.aclose()


def _made(body: dict) -> list[MadeImage]:
    return [
        MadeImage(item["url"], item.get("revised_prompt"), body.get("size"))
        for item in body.get("data") or []
        if isinstance(item, dict) and item.get("url")
    ]


def _is_loopback(url: str) -> bool:
    host = httpx2.URL(url).host
    return host in ("localhost", "::1") or host.startswith("127.")


def data_url(image: bytes) -> str:
    """The image as the gateway's JSON edit form takes it (the gateway checks its bytes)."""
    return f"data:{mime_type(image)};base64,{base64.b64encode(image).decode()}"
