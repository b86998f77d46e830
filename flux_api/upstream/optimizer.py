"""Client for the prompt optimizer: any OpenAI-compatible `/v1/chat/completions`.

Its failures are never fatal: the pipeline falls back to the user's own prompt. Each call is
announced (events.OptimizerCall), with what it was for and whether it was fallen back from.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlparse

import requests
from urllib3.exceptions import HTTPError

from flux_api.events import Events, OptimizerCall
from flux_api.upstream.http import DeadlineAdapter, fetch

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_SYSTEM_MESSAGE = """\
You turn a person's idea for a picture into one prompt for the FLUX text-to-image model.
Write it in English whatever language the idea is in. Describe, in natural sentences:
the subject and what it is doing; the scene and its surroundings; the art style or medium;
the lighting and colours; the mood. Keep every detail the person asked for and add only
what makes the picture clearer. Compose for the aspect ratio you are given.
Answer with the prompt alone: no title, no label, no quotes, no explanation."""

FOLLOW_UP_SYSTEM_MESSAGE = """\
A person is chatting with an image generator. It has shown them a picture made from the
"Earlier prompt". Decide whether their new "Message" asks to change that picture (an edit:
make it blue, add a hat, now at night, same but wider, remove the tree) or asks for a different
picture (it describes a new subject or scene, or asks for a new one).
If it is an edit, "prompt" is one short English instruction for an image-editing model that says
what to change and to keep the rest as it is.
If it is not, "prompt" is one prompt for the FLUX text-to-image model, in English whatever
language the message is in: natural sentences describing the subject, the scene, the style, the
lighting and the mood.
Answer with one JSON object and nothing else: {"edit": true or false, "prompt": "..."}"""

# Chat clients ask the chat model to name a chat and to sum it up; with the optimizer on, it
# writes both from the chat's image prompts (background.py), in the prompts' own language.
DESCRIBE_SYSTEM_MESSAGES = {
    "title": "You name chats in which a person asked an image generator for pictures. Given "
    "their prompts, answer with a title of at most five words, in the prompts' language: no "
    "quotes, no punctuation, no emoji, nothing else.",
    "summary": "A person asked an image generator for pictures with the prompts below, in "
    "order. Answer with one sentence, in the prompts' language, saying which pictures were "
    "made. Nothing else.",
}
_DESCRIBE_LIMIT = 300  # characters of a title or summary

_LABEL = re.compile(
    r"^\s*(?:\*\*)?\s*(?:(?:optimi[sz]ed|final|image|flux)\s+)?prompt\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?",
    re.I,
)
_THINKING = re.compile(r"<think>.*?</think>", re.S | re.I)
_QUOTES = "\"'`“”‘’「」"


class OptimizerError(Exception):
    """The optimizer could not give a usable prompt; the message is short and secret-free."""


# A path segment that names an API version: v1, v2, v1beta, v1alpha2…
_VERSION_SEGMENT = re.compile(r"v\d+(?:alpha|beta)?\d*", re.I)


def chat_completions_url(base: str) -> str:
    """`base` + /chat/completions when its path already names a version (…/v1, Gemini's
    …/v1beta/openai, …/api/v3), else `base` + /v1/chat/completions (https://api.openai.com)."""
    base = base.rstrip("/")
    segments = urlparse(base).path.split("/")
    if any(_VERSION_SEGMENT.fullmatch(segment) for segment in segments):
        return f"{base}/chat/completions"
    return f"{base}/v1/chat/completions"


def clean_prompt(text: str, limit: int) -> str:
    """Strip the wrappers models like to add (labels, quotes, fences), then cut to `limit`."""
    # Lone surrogates (a model cut mid-emoji) cannot be sent as UTF-8 to Workers AI or in our
    # own answers: drop them here, before anything is spent on the prompt.
    text = text.encode("utf-8", "ignore").decode("utf-8")
    text = _THINKING.sub("", text)  # reasoning models may think out loud first
    text = text.strip().strip("`").strip()
    text = _LABEL.sub("", text, count=1).strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    text = re.sub(r"\s+", " ", text)
    if len(text) > limit:
        cut = text[:limit]
        text = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return text


class OptimizerClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        *,
        timeout: float,
        system_message: str = "",
        events: Events | None = None,
    ):
        self.url = chat_completions_url(base_url)
        self.model = model
        self._api_key = api_key
        self._timeout = (min(10.0, timeout), timeout)
        self.system_message = system_message or DEFAULT_SYSTEM_MESSAGE
        self._local = threading.local()
        self._warned = False
        self._events = events or Events()  # each call, and whether it was fallen back from

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            for scheme in ("http://", "https://"):
                session.mount(scheme, DeadlineAdapter())
            if self._api_key:
                session.headers["Authorization"] = f"Bearer {self._api_key}"
        return session

    def _warn_if_misconfigured(self, status: int) -> None:
        """Once per process: a 401/403/404 is a setting to fix, not a passing failure, and the
        fallback to the prompt as written would hide it for ever."""
        if status not in (401, 403, 404) or self._warned:
            return
        self._warned = True
        setting = "EXTERNAL_API_BASE" if status == 404 else "EXTERNAL_API_KEY"
        log.warning(
            "the prompt optimizer answered HTTP %d at %s: check %s; until then prompts are "
            "used as written",
            status,
            self.url,
            setting,
        )

    def optimize(self, prompt: str, aspect_ratio: str, limit: int) -> str:
        """Ask for one FLUX-style English prompt for `prompt` at `aspect_ratio`."""

        def optimized() -> str:
            content = self._complete(
                self.system_message, f"Aspect ratio: {aspect_ratio}\nIdea: {prompt}"
            )
            cleaned = clean_prompt(content, limit)
            if not cleaned:
                raise OptimizerError("gave an empty prompt")
            return cleaned

        return self._announced("prompt", optimized)

    def describe(self, kind: str, prompts: list[str]) -> str:
        """A chat's title or summary ("title", "summary") written from its image prompts."""

        def described() -> str:
            listed = "\n".join(f"- {prompt[:300]}" for prompt in prompts[-8:])
            content = self._complete(DESCRIBE_SYSTEM_MESSAGES[kind], f"Prompts:\n{listed}")
            text = " ".join(content.split()).strip("\"'“”")[:_DESCRIBE_LIMIT]
            if not text:
                raise OptimizerError(f"gave an empty {kind}")
            return text

        return self._announced(kind, described)

    def follow_up(self, earlier_prompt: str, message: str, limit: int) -> tuple[bool, str]:
        """Whether `message` asks to edit the earlier image made from `earlier_prompt`, and the
        prompt to use: an edit instruction when it does, a new image's prompt when not."""

        def judged() -> tuple[bool, str]:
            content = self._complete(
                FOLLOW_UP_SYSTEM_MESSAGE,
                f"Earlier prompt: {earlier_prompt or '(unknown)'}\nMessage: {message}",
            )
            return _follow_up_answer(content, limit)

        return self._announced("follow_up", judged)

    def _announced(self, purpose: str, call: Callable[[], T]) -> T:
        """`call`'s answer, the call announced: "fallback" when it raised OptimizerError (every
        caller then does without the optimizer)."""
        started = time.monotonic()
        try:
            answer = call()
        except OptimizerError:
            self._events.announce(OptimizerCall(purpose, "fallback", time.monotonic() - started))
            raise
        self._events.announce(OptimizerCall(purpose, "ok", time.monotonic() - started))
        return answer

    def _complete(self, system_message: str, user_message: str) -> str:
        """The text of the LLM's answer to one system and one user message."""
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system_message},
                {"role": "user", "content": user_message},
            ],
            "stream": False,
        }
        started = time.monotonic()
        deadline = started + self._timeout[1]  # OPTIMIZER_TIMEOUT bounds the whole call
        session = self._session()
        try:
            response, content = fetch(
                lambda: session.post(self.url, json=body, timeout=self._timeout, stream=True),
                deadline,
            )
        except TimeoutError as exc:
            raise OptimizerError("timed out") from exc
        except (requests.RequestException, HTTPError) as exc:
            raise OptimizerError("could not be reached") from exc
        log.info(
            "optimizer model=%s status=%d seconds=%.2f",
            self.model,
            response.status_code,
            time.monotonic() - started,
        )
        if response.status_code != 200:
            self._warn_if_misconfigured(response.status_code)
            raise OptimizerError(f"answered HTTP {response.status_code}")
        try:
            content = json.loads(content)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
            raise OptimizerError("gave an answer that is not a chat completion") from exc
        return content if isinstance(content, str) else ""


def _follow_up_answer(content: str, limit: int) -> tuple[bool, str]:
    """`{"edit": …, "prompt": …}` read from an answer, which models like to wrap in a fence."""
    content = _THINKING.sub("", content.encode("utf-8", "ignore").decode("utf-8"))
    try:
        answer = json.loads(content[content.find("{") : content.rfind("}") + 1])
    except (ValueError, RecursionError) as exc:
        raise OptimizerError("gave an answer that is not the JSON asked for") from exc
    if (
        not isinstance(answer, dict)
        or not isinstance(answer.get("edit"), bool)
        or not isinstance(answer.get("prompt"), str)
    ):
        raise OptimizerError("gave an answer that is not the JSON asked for")
    prompt = clean_prompt(answer["prompt"], limit)
    if not prompt:
        raise OptimizerError("gave an empty prompt")
    return answer["edit"], prompt
