"""Settings: read once from the environment (and an optional .env), typed, checked at start-up.

A wrong value stops the start with one message naming the variable. Missing Cloudflare
credentials do not: the page says what is missing and generation answers 503.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from flux_api.config.accounts import Account, parse_accounts
from flux_api.config.api_keys import (
    ApiKey,
    RateLimit,
    parse_api_keys,
    parse_metrics_key,
    parse_rate_limit,
)
from flux_api.config.environment import (
    SettingsError,
    flag,
    items,
    number,
    read_environment,
    text,
    url,
)
from flux_api.config.models import ALL_MODELS, DEFAULT_MODEL_ID, ModelProfile, find_model

DEFAULT_CF_API_BASE = "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/run"

# FLUX.2 klein 4B: it takes reference images, answers in seconds (4 fixed steps) and costs the
# fewest neurons of the models that edit; EDIT_MODEL=flux-2-klein-9b or flux-2-dev for quality.
DEFAULT_EDIT_MODEL = "@cf/black-forest-labs/flux-2-klein-4b"


@dataclass(frozen=True)
class Settings:
    api_keys: tuple[ApiKey, ...] = ()
    cf_account_id: str = ""
    cf_api_token: str = field(default="", repr=False)
    cf_api_base: str = DEFAULT_CF_API_BASE
    # CF_ACCOUNT_ID + CF_API_TOKEN and every pair of CF_ACCOUNTS, checked (accounts.py).
    accounts: tuple[Account, ...] = field(default=(), repr=False)
    prompt_optimization: bool = False
    external_api_base: str = ""
    external_model: str = ""
    external_api_key: str = field(default="", repr=False)
    system_message: str = ""
    flux_num_steps: int = 4
    flux_model: str = DEFAULT_MODEL_ID
    edit_model: str | None = DEFAULT_EDIT_MODEL  # None: no offered model edits
    image_models: tuple[str, ...] = tuple(m.id for m in ALL_MODELS)
    image_expiration: int = 604_800  # a week: chat clients link images, they do not copy them
    data_dir: Path = Path("data")
    store_size_limit_mb: int = 1024
    cors_origins: tuple[str, ...] = ("*",)
    public_base_url: str = ""
    upstream_timeout: float = 120.0
    optimizer_timeout: float = 30.0
    stream_heartbeat: float = 10.0
    upstream_retry_backoff: float = 0.5
    images_max_n: int = 4
    skip_task_prompts: bool = True
    chat_followup_edits: bool = True  # "make it blue" edits the chat's previous image
    max_body_kb: int = 64
    max_upload_mb: int = 20  # multipart bodies of /v1/images/edits and /variations
    rate_limit: RateLimit | None = None
    upstream_concurrency: int = 0  # 0: no cap
    image_memory_mb: int = 256  # per worker, for Images API images in flight
    redis_url: str = field(default="", repr=False)  # may hold a password
    # Reads /metrics and everyone's /v1/usage; unset: every API key does.
    metrics_key: str = field(default="", repr=False)
    cf_daily_neurons: int = 10_000  # each account's daily allocation (the free one); 0: no cap
    # Where alerts are POSTed ("": none); Slack's and Discord's URLs hold their secret.
    alert_webhook_url: str = field(default="", repr=False)
    alert_webhook_format: str = "json"
    # Threads per gunicorn worker (GUNICORN_THREADS): what admission counts generations
    # against. Read here, beside the reserve it must exceed; config/server.py hands it to gunicorn.
    threads: int = 128
    # Threads of each worker no generation may hold, kept for cheap requests (health checks,
    # /v1/models, image fetches, the sheds themselves), so they never queue behind generations.
    generation_reserve: int = 8
    # The most of a worker's generation capacity one API key may hold when several keys are
    # configured (1: no cap); beyond it the key's requests are shed, others still admitted.
    key_share: float = 0.5
    # Seconds a generation request may have waited for a thread and the CPU before admission;
    # beyond it the worker is too busy to start it in time and it is shed (0: never).
    admission_wait: float = 0.5

    @property
    def generation_capacity(self) -> int:
        """Generations one worker holds at once: its threads less the reserve."""
        return self.threads - self.generation_reserve

    @property
    def cloudflare_configured(self) -> bool:
        return not self.missing_cloudflare

    @property
    def missing_cloudflare(self) -> list[str]:
        """The Cloudflare settings still to set (the service starts without them)."""
        if self.accounts:
            return []
        missing = [] if self.cf_api_token else ["CF_API_TOKEN"]
        if not self.cf_account_id and "{account_id}" in self.cf_api_base:
            missing.insert(0, "CF_ACCOUNT_ID")
        return missing

    @property
    def image_lifetime(self) -> str:
        """IMAGE_EXPIRATION in words, for people: "7 days", "30 minutes"."""
        seconds = self.image_expiration
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if seconds >= size and seconds % size == 0:
                count = seconds // size
                return f"{count} {unit}{'s' if count != 1 else ''}"
        return f"{seconds} second{'s' if seconds != 1 else ''}"

    @property
    def workers_ai_url(self) -> str:
        """The URL prefix to which `/{model}` is appended; `{account_id}` is filled per call."""
        return self.cf_api_base.rstrip("/")

    @property
    def default_model(self) -> ModelProfile:
        return _checked_model(self.flux_model)

    @property
    def default_edit_model(self) -> ModelProfile | None:
        return _checked_model(self.edit_model) if self.edit_model else None

    @property
    def models(self) -> tuple[ModelProfile, ...]:
        """The models offered, the default first."""
        others = [_checked_model(m) for m in self.image_models if m != self.flux_model]
        return (self.default_model, *others)


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """`*`, or origins as browsers send them (scheme://host[:port]): `example.com` alone would
    match no browser's Origin, and CORS would fail in silence."""
    origins = items(env, name) or ("*",)
    for origin in origins:
        parsed = urlparse(origin)
        if origin != "*" and (
            parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path
        ):
            raise SettingsError(
                f"{name} lists {origin!r}; an origin is * or scheme://host[:port], such as "
                "https://chat.example.com (no path)."
            )
    return origins


def _checked_model(name: str) -> ModelProfile:
    """The profile of a model name that load_settings has checked (by _model_id)."""
    model = find_model(name)
    assert model is not None, name
    return model


def _model_id(name: str, value: str, fits=lambda model: True, what: str = "model") -> str:
    model = find_model(value)
    if model is None or not fits(model):
        choices = ", ".join(m.id for m in ALL_MODELS if fits(m))
        raise SettingsError(f"{name} names an unknown {what} {value!r}; choose from: {choices}.")
    return model.id


def _edit_model(env: Mapping[str, str], image_models: tuple[str, ...]) -> str | None:
    """EDIT_MODEL when set (it is then offered too); else the default, or the first offered
    model that edits when IMAGE_MODELS leaves the default out; None when none edits."""
    edits = lambda model: model.edit_input is not None  # noqa: E731
    if text(env, "EDIT_MODEL"):
        return _model_id("EDIT_MODEL", text(env, "EDIT_MODEL"), edits, "model that edits")
    offered = [_checked_model(m) for m in image_models]
    editing = [m.id for m in offered if edits(m) and m.makes_from_text]
    if DEFAULT_EDIT_MODEL in image_models or not editing:
        return DEFAULT_EDIT_MODEL if DEFAULT_EDIT_MODEL in image_models else None
    return editing[0]


def _redis_url(env: Mapping[str, str], name: str) -> str:
    """redis://, rediss:// (TLS) or unix:// (a socket path); the value is never echoed, as it
    may hold a password."""
    value = text(env, name)
    if value and urlparse(value).scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(
            f"{name} must start with redis://, rediss:// or unix://, such as "
            "redis://:password@10.0.0.5:6379/0."
        )
    return value


ALERT_FORMATS = ("json", "slack", "discord", "ntfy")


def _alert_webhook(env: Mapping[str, str]) -> tuple[str, str]:
    """ALERT_WEBHOOK_URL and ALERT_WEBHOOK_FORMAT. The URL is the operator's own, so loopback
    and private addresses are fine; it is never echoed (Slack's and Discord's hold a secret)."""
    fmt = text(env, "ALERT_WEBHOOK_FORMAT", DEFAULT.alert_webhook_format).lower()
    if fmt not in ALERT_FORMATS:
        raise SettingsError(f"ALERT_WEBHOOK_FORMAT must be one of {', '.join(ALERT_FORMATS)}.")
    value = text(env, "ALERT_WEBHOOK_URL")
    if not value:
        return "", fmt
    parsed = urlparse(value)
    try:
        parsed.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        parsed = parsed._replace(netloc="")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SettingsError(
            "ALERT_WEBHOOK_URL must be an http:// or https:// URL, such as "
            "https://hooks.slack.com/services/… or https://ntfy.sh/your-topic."
        )
    if fmt == "ntfy" and not parsed.path.strip("/"):
        raise SettingsError(
            "ALERT_WEBHOOK_URL must name the ntfy topic, such as https://ntfy.sh/your-topic."
        )
    return value, fmt


def _admission(env: Mapping[str, str]) -> tuple[int, int, float]:
    """GUNICORN_THREADS, GENERATION_RESERVE and KEY_SHARE (web/admission.py uses them): at least
    one thread must be left for generations, and a share is a fraction of them."""
    threads = number(env, "GUNICORN_THREADS", DEFAULT.threads)
    # Unset: 8, or a quarter of fewer threads (0 below 4: generations may then take every one).
    reserve = number(
        env, "GENERATION_RESERVE", min(DEFAULT.generation_reserve, threads // 4), int, 0
    )
    if reserve >= threads:
        raise SettingsError(
            f"GENERATION_RESERVE ({reserve}) must be less than GUNICORN_THREADS ({threads}): "
            "the threads left over are those that run generations."
        )
    share = number(env, "KEY_SHARE", DEFAULT.key_share, float, 0.01)
    if share > 1:
        raise SettingsError(f"KEY_SHARE must be a fraction from 0.01 to 1, not {share:g}.")
    return threads, reserve, share


DEFAULT = Settings()  # every default, written once: in the fields above


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from `environ` (default: read_environment())."""
    env = read_environment(environ)

    from_text = lambda model: model.makes_from_text  # noqa: E731
    flux_model = _model_id(
        "FLUX_MODEL", text(env, "FLUX_MODEL", DEFAULT_MODEL_ID), from_text, "text-to-image model"
    )
    listed = tuple(_model_id("IMAGE_MODELS", m) for m in items(env, "IMAGE_MODELS"))
    image_models = listed or tuple(m.id for m in ALL_MODELS)
    if flux_model not in image_models:
        image_models = (flux_model, *image_models)
    edit_model = _edit_model(env, image_models)
    if edit_model and edit_model not in image_models:
        image_models = (*image_models, edit_model)

    optimization = flag(env, "PROMPT_OPTIMIZATION", flag(env, "CF_IS_TRANSLATE", False))
    external_base = url(env, "EXTERNAL_API_BASE")
    external_model = text(env, "EXTERNAL_MODEL")
    if optimization and not (external_base and external_model):
        raise SettingsError(
            "PROMPT_OPTIMIZATION is on, so EXTERNAL_API_BASE and EXTERNAL_MODEL must be set."
        )

    keys = parse_api_keys(items(env, "API_KEY"))
    threads, reserve, key_share = _admission(env)
    alert_url, alert_format = _alert_webhook(env)
    account_id, token = text(env, "CF_ACCOUNT_ID"), text(env, "CF_API_TOKEN")
    api_base = url(env, "CF_API_BASE", DEFAULT.cf_api_base)
    return Settings(
        api_keys=keys,
        cf_account_id=account_id,
        cf_api_token=token,
        cf_api_base=api_base,
        accounts=parse_accounts(text(env, "CF_ACCOUNTS"), account_id, token, api_base),
        prompt_optimization=optimization,
        external_api_base=external_base,
        external_model=external_model,
        external_api_key=text(env, "EXTERNAL_API_KEY"),
        system_message=text(env, "SYSTEM_MESSAGE"),
        flux_num_steps=number(env, "FLUX_NUM_STEPS", DEFAULT.flux_num_steps),
        flux_model=flux_model,
        edit_model=edit_model,
        image_models=image_models,
        image_expiration=number(env, "IMAGE_EXPIRATION", DEFAULT.image_expiration),
        data_dir=Path(text(env, "DATA_DIR", str(DEFAULT.data_dir))),
        store_size_limit_mb=number(env, "STORE_SIZE_LIMIT_MB", DEFAULT.store_size_limit_mb),
        cors_origins=_origins(env, "CORS_ORIGINS"),
        public_base_url=url(env, "PUBLIC_BASE_URL"),
        upstream_timeout=number(env, "UPSTREAM_TIMEOUT", DEFAULT.upstream_timeout, float, 0.1),
        optimizer_timeout=number(env, "OPTIMIZER_TIMEOUT", DEFAULT.optimizer_timeout, float, 0.1),
        stream_heartbeat=number(env, "STREAM_HEARTBEAT", DEFAULT.stream_heartbeat, float, 0.1),
        upstream_retry_backoff=number(
            env, "UPSTREAM_RETRY_BACKOFF", DEFAULT.upstream_retry_backoff, float, 0
        ),
        images_max_n=number(env, "IMAGES_MAX_N", DEFAULT.images_max_n),
        skip_task_prompts=flag(env, "SKIP_TASK_PROMPTS", DEFAULT.skip_task_prompts),
        chat_followup_edits=flag(env, "CHAT_FOLLOWUP_EDITS", DEFAULT.chat_followup_edits),
        max_body_kb=number(env, "MAX_BODY_KB", DEFAULT.max_body_kb),
        max_upload_mb=number(env, "MAX_UPLOAD_MB", DEFAULT.max_upload_mb),
        rate_limit=parse_rate_limit(text(env, "RATE_LIMIT"), "RATE_LIMIT"),
        upstream_concurrency=number(
            env, "UPSTREAM_CONCURRENCY", DEFAULT.upstream_concurrency, int, 0
        ),
        image_memory_mb=number(env, "IMAGE_MEMORY_MB", DEFAULT.image_memory_mb, int, 16),
        redis_url=_redis_url(env, "REDIS_URL"),
        metrics_key=parse_metrics_key(text(env, "METRICS_KEY"), keys),
        cf_daily_neurons=number(env, "CF_DAILY_NEURONS", DEFAULT.cf_daily_neurons, int, 0),
        alert_webhook_url=alert_url,
        alert_webhook_format=alert_format,
        threads=threads,
        generation_reserve=reserve,
        key_share=key_share,
        admission_wait=number(env, "ADMISSION_WAIT", DEFAULT.admission_wait, float, 0),
    )
