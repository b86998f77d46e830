"""A faithful local fake of the Cloudflare Workers AI REST API, as a real HTTP server (the
contract it follows: docs/workers-ai.md).

`POST /client/v4/accounts/{account}/ai/run/{model}` checks the token, the account and the model,
validates the body against the model's schema exactly as Cloudflare does (flux-1-schnell takes
only `prompt` and `steps`, FLUX.2 takes multipart only, …) and answers in the model's form: a
JSON envelope with a base64 image, or raw image bytes. Tests script failures and latency.

Accounts: `accounts` maps each known account id to its token (a token of another account gets
10000, an unknown account 7000). Per account, tests script answers (`script(..., account=id)`),
use up the daily allocation (`exhausted`: every call answers 429 4006 until removed, as at
00:00 UTC), or make it busy (`busy`: a call waits `queue_seconds` in the capacity queue, or
answers 429 3040 at once when the JSON body says `"options": {"rejectIfBusy": true}`). A success
carries `cf-ai-neurons` when `neurons` is set. `call["account"]` records which account was called.

Editing: FLUX.2 takes up to 4 reference images as file parts `input_image_0`…`input_image_3`
(recorded in `call["references"]`); the SD 1.5 img2img and inpainting models take the input file
as a JSON array of bytes (`image`) or base64 (`image_b64`), and a `mask` (recorded in
`call["image"]`, `call["mask"]`). The answer is tinted by the first input's average colour.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from flask import Flask, Response, request
from PIL import Image, ImageDraw, ImageFilter

ACCOUNT_ID = "acc-0123456789abcdef"
TOKEN = "cf-token-SECRET-4f1d2c"


@dataclass(frozen=True)
class Schema:
    multipart: bool
    fields: dict  # name -> (min, max) for numbers, or None for free text
    size_range: tuple[int, int] | None  # None: the model takes no size and makes 1024x1024
    envelope: bool  # JSON envelope with base64, or raw image bytes
    image_format: str = "JPEG"
    references: int = 0  # how many `input_image_N` file parts the model takes
    # Inputs the model itself insists on, though the schema leaves them optional.
    requires: tuple = ()


_TEXT = None
_SEED = (0, 2**32)
_BYTES = "bytes"  # an array of 0-255 integers: a file's bytes
_BASE64 = "base64"  # a string: a file in base64


def _schema(
    *,
    multipart=False,
    envelope=True,
    size=None,
    image_format="JPEG",
    references=0,
    requires=(),
    **fields,
) -> Schema:
    fields = {"prompt": _TEXT, **fields}
    if size:
        fields.update(width=size, height=size)
    return Schema(multipart, fields, size, envelope, image_format, references, requires)


_FLUX2 = dict(multipart=True, size=(256, 1920), references=4)
_SD = dict(
    envelope=False,
    size=(256, 2048),
    negative_prompt=_TEXT,
    guidance=(0, 30),
    seed=_SEED,
    num_steps=(1, 20),
)
# Cloudflare's schema bounds neither `strength` nor the byte values; their descriptions do.
_SD_EDIT = dict(
    _SD, image_format="PNG", image=_BYTES, image_b64=_BASE64, mask=_BYTES, strength=(0, 1)
)
SCHEMAS = {
    "@cf/black-forest-labs/flux-1-schnell": _schema(steps=(1, 8)),
    "@cf/black-forest-labs/flux-2-dev": _schema(steps=(1, 50), **_FLUX2),
    "@cf/black-forest-labs/flux-2-klein-4b": _schema(**_FLUX2),
    "@cf/black-forest-labs/flux-2-klein-9b": _schema(**_FLUX2),
    "@cf/stabilityai/stable-diffusion-xl-base-1.0": _schema(image_format="PNG", **_SD),
    "@cf/bytedance/stable-diffusion-xl-lightning": _schema(**_SD),  # seen answering JPEG
    "@cf/lykon/dreamshaper-8-lcm": _schema(image_format="PNG", **_SD),
    "@cf/leonardo/phoenix-1.0": _schema(
        envelope=False,
        size=(0, 2048),
        negative_prompt=_TEXT,
        guidance=(2, 10),
        seed=_SEED,
        num_steps=(1, 50),
    ),
    "@cf/leonardo/lucid-origin": _schema(
        size=(0, 2500), guidance=(0, 10), seed=_SEED, steps=(1, 40)
    ),
    # `mask` is in both schemas; field reports show inpainting refusing a call without one.
    "@cf/runwayml/stable-diffusion-v1-5-img2img": _schema(requires=("image",), **_SD_EDIT),
    "@cf/runwayml/stable-diffusion-v1-5-inpainting": _schema(
        requires=("mask", "image"), **_SD_EDIT
    ),
}


def envelope_error(status: int, code: int, message: str) -> Response:
    body = {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "result": None,
        "messages": [],
    }
    return Response(json.dumps(body), status=status, mimetype="application/json")


@dataclass
class Scripted:
    """One scripted answer: an error envelope, or a misbehaviour named by `mode`."""

    status: int = 200
    code: int | None = None
    message: str = ""
    # "hang", "html", "truncated", "not_image", "raw_text", "reset" (cut off mid-answer),
    # "half_image" (a success holding the first half of the image, enveloped or raw),
    # "deep_json" (an envelope nested 100,000 deep),
    # "drop" (connection closed once the request is read, no answer), "trickle" (a good
    # answer's headers, then its body one byte every `trickle_every` seconds)
    mode: str | None = None
    headers: dict = field(default_factory=dict)
    trickle_every: float = 0.5


@dataclass
class FakeWorkersAI:
    latency: float = 0.0
    jitter: float = 0.0
    # Photo-like 1024x1024 JPEGs of about 190 KiB (benchmarks) instead of small test cards.
    realistic: bool = False
    calls: list = field(default_factory=list)
    accounts: dict = field(default_factory=lambda: {ACCOUNT_ID: TOKEN})
    exhausted: set = field(default_factory=set)
    busy: set = field(default_factory=set)
    queue_seconds: float = 1.0
    neurons: float | None = None
    in_flight: int = 0
    most_in_flight: int = 0  # the highest number of calls seen at once
    # The free endpoints (verify, model search): tokens verified at the account endpoint only
    # (by account id), a token's status other than active, models left out of the search.
    account_owned: set = field(default_factory=set)
    token_status: dict = field(default_factory=dict)
    unlisted: set = field(default_factory=set)
    # An account's verify endpoint answering (status, code, message) instead, as a field
    # report has Cloudflare answer an account-owned token used with another account: 403.
    verify_refusals: dict = field(default_factory=dict)
    free_calls: list = field(default_factory=list)  # (endpoint, account or None, headers)
    _script: list = field(default_factory=list)
    _account_scripts: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            self.latency, self.jitter = 0.0, 0.0
            self.calls.clear()
            self._script.clear()
            self._account_scripts.clear()
            self.accounts = {ACCOUNT_ID: TOKEN}
            self.exhausted, self.busy = set(), set()
            self.account_owned, self.token_status, self.unlisted = set(), {}, set()
            self.verify_refusals = {}
            self.free_calls.clear()
            self.queue_seconds, self.neurons = 1.0, None
            self.realistic = False
            self.most_in_flight = self.in_flight

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def script(self, *answers: Scripted, account: str | None = None) -> None:
        """Queue answers for the next calls (to `account` only, when given); once used up,
        calls succeed again."""
        with self._lock:
            queue = (
                self._script if account is None else self._account_scripts.setdefault(account, [])
            )
            queue.extend(answers)

    def add_account(self, account_id: str, token: str) -> None:
        with self._lock:
            self.accounts[account_id] = token

    def _next_scripted(self, account: str) -> Scripted | None:
        with self._lock:
            for queue in (self._account_scripts.get(account), self._script):
                if queue:
                    return queue.pop(0)
            return None

    def calls_to(self, account: str) -> list:
        return [call for call in self.calls if call["account"] == account]

    def app(self) -> Flask:
        app = Flask("fake_workers_ai")
        # Werkzeug caps text parts at 500 kB with an HTML 413; Cloudflare has no such cap, so an
        # image sent as a text part reaches the schema check and gets its envelope.
        app.config["MAX_FORM_MEMORY_SIZE"] = None

        @app.post("/client/v4/accounts/<account>/ai/run/<path:model>")
        def run(account: str, model: str):
            self._enter()
            try:
                return self.handle(account, model)
            finally:
                self._leave()

        @app.get("/client/v4/user/tokens/verify")
        def verify_user_token():
            return self.verify_token(None)

        @app.get("/client/v4/accounts/<account>/tokens/verify")
        def verify_account_token(account: str):
            return self.verify_token(account)

        @app.get("/client/v4/accounts/<account>/ai/models/search")
        def search_models(account: str):
            return self.search_models(account)

        return app

    def verify_token(self, account: str | None) -> Response:
        """GET /user/tokens/verify (`account` None) or /accounts/{account}/tokens/verify.
        Cloudflare answers an account-owned token at the user endpoint, and any token it does
        not know, with 401, code 1000; an account id it cannot route with 7003 + 7000."""
        token = _bearer()
        self.free_calls.append(("verify", account, dict(request.headers)))
        owner = next((a for a, t in self.accounts.items() if t == token), None)
        if account is not None and account not in self.accounts:
            return _no_route(f"/client/v4/accounts/{account}/tokens/verify")
        if account in self.verify_refusals:
            return envelope_error(*self.verify_refusals[account])
        known = owner is not None and (
            owner == account if owner in self.account_owned else account is None or owner == account
        )
        if not known:
            return envelope_error(401, 1000, "Invalid API Token")
        body = {
            "success": True,
            "errors": [],
            "messages": [
                {"code": 10000, "message": "This API Token is valid and active", "type": None}
            ],
            "result": {"id": _token_id(token), "status": self.token_status.get(owner, "active")},
        }
        return Response(json.dumps(body), mimetype="application/json")

    def search_models(self, account: str) -> Response:
        """GET /accounts/{account}/ai/models/search: the token checked as for /ai/run (an
        account id Cloudflare cannot route: 7003 + 7000, as its API answers a bad identifier),
        then the models the fake knows (less `unlisted`), paged by `page` and `per_page`."""
        token = _bearer()
        self.free_calls.append(("search", account, dict(request.headers)))
        if token not in self.accounts.values():
            return envelope_error(401, 10000, "Authentication error")
        if account not in self.accounts:
            return _no_route(f"/client/v4/accounts/{account}/ai/models/search")
        if self.accounts[account] != token:
            return envelope_error(403, 10000, "Authentication error")
        names = [name for name in SCHEMAS if name not in self.unlisted]
        page = max(1, request.args.get("page", 1, type=int) or 1)
        per_page = max(1, min(100, request.args.get("per_page", 20, type=int) or 20))
        listed = names[(page - 1) * per_page : page * per_page]
        body = {
            "success": True,
            "errors": [],
            "messages": [],
            "result": [_model_entry(name) for name in listed],
            "result_info": {
                "page": page,
                "per_page": per_page,
                "count": len(listed),
                "total_count": len(names),
            },
        }
        return Response(json.dumps(body), mimetype="application/json")

    def handle(self, account: str, model: str) -> Response:
        call = {
            "account": account,
            "model": model,
            "headers": dict(request.headers),
            "content_type": request.content_type or "",
        }
        self.calls.append(call)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.accounts.values():
            return envelope_error(401, 10000, "Authentication error")
        if account not in self.accounts:
            return envelope_error(400, 7000, "No route for that URI")
        if self.accounts[account] != token:  # a real token, of another account
            return envelope_error(403, 10000, "Authentication error")
        schema = SCHEMAS.get(model)
        if schema is None:
            return envelope_error(400, 5007, f"No such model {model} or task")
        fields, options, problem = self._read_fields(schema)
        call["fields"], call["options"] = fields, options
        if problem:
            return envelope_error(400, 5006, _bad_input(problem))
        if account in self.exhausted:
            return envelope_error(429, 4006, QUOTA_MESSAGE)
        if account in self.busy:
            if options.get("rejectIfBusy") is True:
                return envelope_error(429, 3040, "AiError: Capacity temporarily exceeded")
            time.sleep(self.queue_seconds)  # waits in Cloudflare's capacity queue
        try:
            tint, size = read_inputs(schema, fields, call)
        except Refused as refused:
            return envelope_error(refused.status, refused.code, str(refused))
        scripted = self._next_scripted(account)
        delay = self.latency + random.uniform(-self.jitter, self.jitter)
        if delay > 0:
            time.sleep(delay)
        if scripted is not None:
            return self._misbehave(scripted, schema)
        width, height = (
            (fields.get("width", size[0]), fields.get("height", size[1]))
            if schema.size_range
            else (1024, 1024)
        )
        image = render_image(int(width), int(height), schema.image_format, self.realistic, tint)
        if not schema.envelope:
            mime = "image/png" if schema.image_format == "PNG" else "image/jpeg"
            response = Response(image, mimetype=mime)
        else:
            response = Response(envelope(image), mimetype="application/json")
        if self.neurons is not None:
            response.headers["cf-ai-neurons"] = str(self.neurons)
        return response

    def _read_fields(self, schema: Schema) -> tuple[dict, dict, str | None]:
        """The model's input, the request's `options` (a JSON body's platform-level object,
        never part of the model's schema), and what is wrong with them, if anything."""
        options: dict = {}
        if schema.multipart:
            if not (request.content_type or "").startswith("multipart/form-data"):
                return {}, options, _MULTIPART_ONLY
            fields = dict(request.form)
            for name in fields:
                if _REFERENCE.fullmatch(name):  # a part without a filename arrives as text
                    problem = f"'{name}' must be a file part (a binary image with a filename)"
                    return fields, options, problem
            for name in ("width", "height", "steps"):
                if name in fields:
                    try:
                        fields[name] = int(fields[name])
                    except ValueError:
                        return fields, options, f"'{name}' must be an integer"
        else:
            fields = request.get_json(silent=True)
            if not isinstance(fields, dict):
                return {}, options, "the body must be a JSON object"
            options = fields.pop("options", {})
            if not isinstance(options, dict):
                return fields, {}, "'options' must be object"
        for name, value in fields.items():
            if name not in schema.fields:
                return fields, options, f"must NOT have additional properties: '{name}'"
            problem = _field_problem(name, value, schema.fields[name])
            if problem:
                return fields, options, problem
        prompt = fields.get("prompt")
        if not isinstance(prompt, str) or not 1 <= len(prompt) <= 2048:
            return fields, options, "'prompt' must be a string of 1 to 2048 characters"
        return fields, options, None

    def _misbehave(self, scripted: Scripted, schema: Schema) -> Response:
        if scripted.mode == "hang":
            time.sleep(3600)
        if scripted.mode == "html":
            return Response("<html><body>502 Bad Gateway</body></html>", mimetype="text/html")
        if scripted.mode == "truncated":
            return Response('{"result": {"image": "/9j/4AAQ', mimetype="application/json")
        if scripted.mode == "not_image":
            body = {
                "result": {"image": base64.b64encode(b"hello, not an image").decode()},
                "success": True,
                "errors": [],
                "messages": [],
            }
            return Response(json.dumps(body), mimetype="application/json")
        if scripted.mode == "reset":
            return _reset_midway(envelope(render_image(1024, 1024)))
        if scripted.mode == "raw_text":
            return Response("plain text", status=scripted.status, mimetype="text/plain")
        if scripted.mode == "half_image":
            image = render_image(1024, 1024)
            half = image[: len(image) // 2]
            if schema.envelope:
                return Response(envelope(half), mimetype="application/json")
            return Response(half, mimetype="image/jpeg")
        if scripted.mode == "deep_json":
            return Response("[" * 100_000 + "]" * 100_000, mimetype="application/json")
        if scripted.mode == "drop":
            request.environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            return Response("", status=204)  # never arrives: the connection is closed
        if scripted.mode == "trickle":
            return _trickle(envelope(render_image(1024, 1024)), scripted.trickle_every)
        response = envelope_error(scripted.status, scripted.code, scripted.message)
        response.headers.update(scripted.headers)
        return response


def _bearer() -> str:
    return request.headers.get("Authorization", "").removeprefix("Bearer ")


def _no_route(path: str) -> Response:
    """Cloudflare's answer to a path whose account id it cannot route."""
    body = {
        "success": False,
        "errors": [
            {
                "code": 7003,
                "message": f"Could not route to {path}, perhaps your object identifier is invalid?",
            },
            {"code": 7000, "message": "No route for that URI"},
        ],
        "messages": [],
        "result": None,
    }
    return Response(json.dumps(body), status=400, mimetype="application/json")


def _token_id(token: str) -> str:
    """A token's identifier tag (32 hex digits), never the token."""
    return hashlib.md5(token.encode(), usedforsecurity=False).hexdigest()


def _model_entry(name: str) -> dict:
    """One model as the model search lists it."""
    tag = _token_id(name)
    return {
        "id": f"{tag[:8]}-{tag[8:12]}-{tag[12:16]}-{tag[16:20]}-{tag[20:32]}",
        "source": 1,
        "name": name,
        "description": f"{name.rsplit('/', 1)[-1]} (the fake's catalogue)",
        "task": {"id": _token_id("Text-to-Image"), "name": "Text-to-Image", "description": ""},
        "tags": [],
        "properties": [],
    }


_REQUEST_ID = "(a1b2c3d4-request-id)"
_MULTIPART_ONLY = "this model takes multipart/form-data input, even for a bare prompt"
QUOTA_MESSAGE = (
    "AiError: 4006: you have used up your daily free allocation of 10,000 neurons, please "
    "upgrade to Cloudflare's Workers Paid plan if you would like to continue usage."
)


def _bad_input(problem: str) -> str:
    """A 5006 message, as Cloudflare words a schema violation."""
    return f"AiError: Bad input: {problem} {_REQUEST_ID}"


def _field_problem(name: str, value, kind) -> str | None:
    """What is wrong with one field's value by its kind in the schema, if anything."""
    if kind is _TEXT:
        return None
    if kind is _BASE64:
        return None if isinstance(value, str) else f"'{name}' must be string"
    if kind is _BYTES:
        ok = isinstance(value, list) and all(type(v) is int and 0 <= v <= 255 for v in value)
        return None if ok else f"'{name}' must be an array of integers from 0 to 255"
    if not isinstance(value, (int, float)) or not kind[0] <= value <= kind[1]:
        return f"'{name}' must be between {kind[0]} and {kind[1]}"
    return None


class Refused(Exception):
    """An input Workers AI turns down past the schema check: its envelope's code and message."""

    def __init__(self, code: int, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.status = code, status


_REFERENCE = re.compile(r"input_image_\d+")
_REFERENCE_NAMES = {f"input_image_{i}" for i in range(4)}
# Cloudflare: "All input images must be smaller than 512x512", and elsewhere "512x512 per input
# image": read as at most 512 a side, so exactly 512 passes.
_REFERENCE_SIDE = 512
_INPUT_FORMATS = ("JPEG", "PNG", "WEBP")
_DEFAULT_SIZE = (1024, 1024)


def read_inputs(schema: Schema, fields: dict, call: dict) -> tuple[tuple | None, tuple]:
    """Check and record the input images; the output's tint and default size come from them."""
    if schema.multipart:
        return _read_references(schema.references, call), _DEFAULT_SIZE
    if "image" in schema.fields:
        return _read_edit_inputs(schema, fields, call)
    return None, _DEFAULT_SIZE


def _read_references(limit: int, call: dict) -> tuple | None:
    """FLUX.2's reference images: file parts `input_image_0`…, each a JPEG, PNG or WebP."""
    parts = list(request.files.items(multi=True))
    call["references"] = references = []
    if len(parts) > limit:
        raise Refused(5006, _bad_input(f"at most {limit} input images, got {len(parts)}"))
    tint = None
    for name, part in parts:
        picture = _reference(name, part.read(), references)
        references.append((name, picture.width, picture.height, picture.format))
        tint = tint or _average(picture)
    return tint


def _reference(name: str, data: bytes, seen: list) -> Image.Image:
    """One reference part, checked: its name, that it decodes, and its size."""
    if name not in _REFERENCE_NAMES or any(name == r[0] for r in seen):
        expected = ", ".join(sorted(_REFERENCE_NAMES))
        raise Refused(5006, _bad_input(f"unexpected file '{name}' (once each: {expected})"))
    picture = _decode(data, name)
    if max(picture.size) > _REFERENCE_SIDE:
        size = f"{picture.width}x{picture.height}"
        message = f"'{name}' is {size}: input images must be at most 512x512"
        raise Refused(5006, _bad_input(message))
    return picture


def _read_edit_inputs(schema: Schema, fields: dict, call: dict) -> tuple[tuple, tuple]:
    """SD 1.5 img2img / inpainting: the input file as bytes or base64, and a mask."""
    image = _image_bytes(fields)
    for needed in schema.requires:  # the model's own check, past the schema: a 3030
        if (image if needed == "image" else fields.get(needed)) is None:
            message = "missing required input " + ("mask_image" if needed == "mask" else needed)
            raise Refused(
                3030, f"AiError: AiError: Model input is not valid: {message} {_REQUEST_ID}"
            )
    picture = _decode(image, "image")
    call["image"] = (picture.width, picture.height, picture.format)
    if "mask" in fields:
        mask = _decode(bytes(fields["mask"]), "mask")
        call["mask"] = (mask.width, mask.height)
    return _average(picture), picture.size


def _image_bytes(fields: dict) -> bytes | None:
    """The input file from `image` (bytes) or else `image_b64`; undecodable base64 is a 5004."""
    if "image" in fields:
        return bytes(fields["image"])
    if "image_b64" not in fields:
        return None
    try:
        return base64.b64decode(fields["image_b64"], validate=True)
    except (binascii.Error, ValueError):
        raise Refused(5004, "AiError: Invalid data type for base64 input: image_b64") from None


def _decode(data: bytes, name: str) -> Image.Image:
    """The complete JPEG, PNG or WebP picture in `data`; anything else is a 5006."""
    try:
        picture = Image.open(io.BytesIO(data))
        picture.load()  # a cut-off file fails here, not at open
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        picture = None
    if picture is None or picture.format not in _INPUT_FORMATS:
        raise Refused(5006, _bad_input(f"'{name}' is not a JPEG, PNG or WebP image"))
    return picture


def _average(picture: Image.Image) -> tuple:
    """The picture's average colour, to tint the answer by (so an edit's output shows its input)."""
    return picture.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))


def _trickle(body: bytes, every: float) -> Response:
    def one_byte_at_a_time():
        for i in range(len(body)):
            yield body[i : i + 1]
            time.sleep(every)

    return Response(
        one_byte_at_a_time(),
        mimetype="application/json",
        headers={"Content-Length": str(len(body))},
    )


def _reset_midway(body: bytes) -> Response:
    """The headers and first bytes of a good answer, then a TCP reset (RST, not a clean close)."""
    connection = request.environ["werkzeug.socket"]

    def cut_off():
        yield body[:1000]
        # With a zero linger time, closing sends RST; werkzeug closes once the body fails.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raise ConnectionResetError("the fake cut the answer off")

    return Response(
        cut_off(), mimetype="application/json", headers={"Content-Length": str(len(body))}
    )


_RENDERED: dict = {}
_RENDER_LOCK = threading.Lock()
_ENVELOPES: dict = {}


def render_image(
    width: int, height: int, fmt: str = "JPEG", realistic: bool = False, tint: tuple | None = None
) -> bytes:
    """A test card (a frame in one colour, a centre mark in another, so crops are visible), or
    with `realistic` a noisy photo-like picture that compresses like a real one. `tint` is the
    background colour (an edit's input colour), blue by default."""
    key = (width, height, fmt, realistic, tint)
    with _RENDER_LOCK:  # render once, not once per concurrent first request
        if key not in _RENDERED:
            _RENDERED[key] = _render(width, height, fmt, realistic, tint or (40, 90, 160))
    return _RENDERED[key]


def _render(width: int, height: int, fmt: str, realistic: bool, background: tuple) -> bytes:
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, width // 8, height - 1], fill=(220, 60, 40))  # left band
    draw.ellipse(
        [width // 2 - 40, height // 2 - 40, width // 2 + 40, height // 2 + 40],
        fill=(250, 220, 60),
    )
    if realistic:
        grain = random.Random(width * height).randbytes(width * height * 3)
        noise = Image.frombytes("RGB", (width, height), grain)
        image = Image.blend(image, noise.filter(ImageFilter.GaussianBlur(1.2)), 0.5)
    out = io.BytesIO()
    options = {"quality": 90 if not realistic else 87} if fmt == "JPEG" else {}
    image.save(out, format=fmt, **options)
    return out.getvalue()


def envelope(image: bytes) -> bytes:
    """Workers AI's success envelope around a base64 image (cached: benchmarks send many)."""
    if image not in _ENVELOPES:
        body = {
            "result": {"image": base64.b64encode(image).decode()},
            "success": True,
            "errors": [],
            "messages": [],
        }
        _ENVELOPES[image] = json.dumps(body).encode()
    return _ENVELOPES[image]


def bench_app() -> Flask:
    """For `gunicorn 'tests.support.fakes.workers_ai:bench_app()'`: settings from FAKE_LATENCY,
    FAKE_JITTER and FAKE_REALISTIC, in a process of its own (keep-alive, no shared GIL)."""
    import os

    realistic = os.environ.get("FAKE_REALISTIC") == "1"
    for size in ((1024, 1024), (1024, 576)):  # ready before the first request
        envelope(render_image(*size, "JPEG", realistic))
    return FakeWorkersAI(
        latency=float(os.environ.get("FAKE_LATENCY", "0")),
        jitter=float(os.environ.get("FAKE_JITTER", "0")),
        realistic=realistic,
    ).app()


def main() -> None:
    """Run the fake on its own, for trying the service by hand or benchmarking it."""
    import argparse

    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per generation")
    parser.add_argument("--jitter", type=float, default=0.0, help="± seconds, uniform")
    parser.add_argument("--realistic", action="store_true", help="190 KiB photo-like JPEGs")
    args = parser.parse_args()
    fake = FakeWorkersAI(latency=args.latency, jitter=args.jitter, realistic=args.realistic)
    print(f"CF_API_BASE=http://127.0.0.1:{args.port}/client/v4/accounts/{{account_id}}/ai/run")
    print(f"CF_ACCOUNT_ID={ACCOUNT_ID} CF_API_TOKEN={TOKEN}")
    run_simple("127.0.0.1", args.port, fake.app(), threaded=True)


if __name__ == "__main__":
    main()
