"""Settings, read from the environment and validated once at start (12-factor:
environment only). Each tier builds its own class over `CommonSettings` and
validates only what it uses (`web.settings.WebSettings`,
`worker.settings.WorkerSettings`, `shared.flower_main.FlowerSettings`): a value
only workers need, such as a weights file mounted on workers alone, never stops the
web tier or Flower. Every variable keeps its plain name (`REDIS_URL`), so one
environment can serve every tier. A bad value stops the process with one line per
bad value, naming the variable, what it must be and what it got.
"""

from __future__ import annotations

import base64
import binascii
import sys
from enum import StrEnum
from functools import cache
from typing import Annotated, TypeVar

from pydantic import Field, IPvAnyNetwork, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

T = TypeVar("T", bound="CommonSettings")


class ResultCacheScope(StrEnum):
    """`RESULT_CACHE`: whose results a job may reuse."""

    OFF = "off"
    PER_KEY = "per-key"
    SHARED = "shared"


class CommonSettings(BaseSettings):
    """What every tier reads; each field from the environment variable of the same
    name in upper case (``redis_url`` from ``REDIS_URL``). Variables of other tiers
    are ignored."""

    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,
        protected_namespaces=(),
    )

    redis_url: str = "redis://localhost:6379/0"
    """Redis used as the Celery broker, the result backend and the job records. With
    `REDIS_SENTINELS`, only its password and database number are used: the sentinels
    say where the primary is."""

    redis_sentinels: Annotated[tuple[tuple[str, int], ...], NoDecode] = ()
    """Comma-separated `host:port` of Redis Sentinels (`sentinel-0:26379,...`). Set,
    every Redis client of every tier finds the primary through them and follows a
    failover by itself; empty (the default), `REDIS_URL` is the one server."""

    redis_sentinel_master: str = Field("resq", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    """The name the sentinels monitor the primary under."""

    redis_sentinel_password: SecretStr = SecretStr("")
    """Password of the sentinels themselves (empty: none), apart from the primary's,
    which `REDIS_URL` carries."""

    redis_replica_acks: int = Field(1, ge=0, le=10)
    """With `REDIS_SENTINELS`: replicas that must hold a job's creation or its end
    (Redis `WAIT`) before it is answered, so that a 202 survives the primary's
    death. No acknowledgement within `REDIS_REPLICA_ACK_SECONDS`: the create is
    undone and answered 503. 0 answers as soon as the primary has it."""

    redis_replica_ack_seconds: float = Field(1.0, gt=0, le=30)
    """How long a create or an end waits for `REDIS_REPLICA_ACKS` replicas."""

    queue_name: str = Field("resq", pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    """Celery queue the web tier enqueues to and the workers consume. It is also the
    Redis list KEDA measures."""

    log_format: str = Field("json", pattern=r"^(json|text)$")
    """`json` (one JSON object per line, with `job_id` where there is one) or `text`."""

    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    """Log level of both tiers."""

    task_events: bool = False
    """Celery task events (task-sent, received, started, succeeded for every job), which
    Flower's task pages show. Off by default: they cost about 9 ms of CPU a job across
    web, worker and Redis, a fifth of the int8 rate on 2 cores. Flower shows the
    workers either way, and turns the workers' task events on only when this is true."""

    result_ttl_seconds: int = Field(86_400, ge=60)
    """How long a job's record and result are kept; afterwards its id answers 404. As
    long as Redis has room: when new work needs the memory, the oldest ended jobs go
    first (404 `result_dropped`)."""

    result_cache: ResultCacheScope = ResultCacheScope.PER_KEY
    """Whether a worker reuses the result of an image it has classified before (the
    same bytes, the same model): `per-key` (the default) within one API key's jobs
    only, so that one key never learns what another submitted; `shared` across every
    key; `off`."""

    result_cache_ttl_seconds: int = Field(3600, ge=1, le=30 * 86_400)
    """How long a cached result is kept (and only while Redis has room: cached results
    are dropped before any job's result)."""

    visibility_timeout_seconds: int = Field(120, ge=1, le=86_400)
    """Seconds after which a job taken by a worker that vanished without a word
    (SIGKILL, a lost node) is delivered again. Must exceed the longest a live worker
    holds a job (its `WORKER_CONCURRENCY` jobs at its slowest batch rate), or slow
    jobs would be delivered twice."""

    max_image_pixels: int = Field(40_000_000, ge=1, le=400_000_000)
    """Largest accepted image, as width × height of the encoded image (larger: 413)."""

    max_decode_bytes: int = Field(384 * 1024 * 1024, ge=1024 * 1024)
    """Most memory decoding one image may cost a worker, in bytes, estimated from its
    header as width × height × the peak bytes a pixel of its mode (about 9 for RGB,
    12 for 16-bit, 14 for 32-bit or grey+alpha): larger is refused with 413 before
    it is queued. The default lets every 8-bit photo under `MAX_IMAGE_PIXELS` in.
    A worker decodes up to one image per core at once."""

    webhook_secret: SecretStr = SecretStr("")
    """The keys webhook deliveries are signed with (Standard Webhooks: `whsec_` and the
    key in base64, 24 to 64 bytes), newest first, separated by spaces or commas: each
    signs every delivery (`webhook-signature` holds one signature per key), so that a
    receiver verifies with either during a rotation. Empty: webhooks are off, and a
    job that asks for one is refused (422)."""

    dns_nameservers: Annotated[tuple[tuple[str, int], ...], NoDecode] = ()
    """Comma-separated `address[:port]` of the name servers that URL fetches and
    webhooks ask; empty (the default): /etc/resolv.conf's."""

    dns_lookups_per_zone: int = Field(4, ge=1, le=100)
    """Lookups of one zone (a name's last two labels) a process runs at once; one more
    waits for a slot within its request's deadline (a URL or webhook submission), or
    is put back for later (a webhook delivery; a worker gives one zone at most half
    of its `WEBHOOK_THREADS`), so that a zone whose DNS answers slowly costs its own
    URLs and webhooks alone."""

    webhook_http_networks: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = ()
    """Comma-separated networks (`10.0.0.0/8`) to which a webhook may go over plain
    http. Empty (the default): webhooks go over https only."""

    url_fetch_allow_networks: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = ()
    """Comma-separated networks (`10.20.0.0/16,fd00::/8`) that URL submissions may
    reach although they are not public. Empty (the default): only public addresses;
    loopback, private, link-local, multicast and reserved ones are refused."""

    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    """Largest accepted image: a request body, or a body fetched from a URL (by the web
    tier for a URL job, by a worker for a batch's URL item), in bytes (larger: 413, or
    the item fails `payload_too_large`)."""

    url_fetch_timeout_seconds: float = Field(10.0, gt=0, le=120)
    """Total time allowed to fetch an image given by URL (connect and read)."""

    batch_inflight: int = Field(16, ge=1, le=10_000)
    """Items of one batch that wait in the batch lane at a time: the next is released
    as a worker starts one, so another key's jobs wait behind at most this many of
    each running batch."""

    url_fetch_allow_ports: Annotated[tuple[int, ...] | None, NoDecode] = (80, 443)
    """Comma-separated ports that URL submissions and webhook deliveries may connect
    to, or `any`. Default: 80 and 443, so that no other service of a host is
    reached."""

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _sentinels(cls, value):
        if not isinstance(value, str):
            return value
        found = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} is not host:port")
            found.append((host.strip("[]"), int(port)))
        return tuple(found)

    @field_validator("dns_nameservers", mode="before")
    @classmethod
    def _nameservers(cls, value):
        if not isinstance(value, str):
            return value
        found = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            host, sep, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
            if not sep:
                host, port = item, "53"
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} is not address[:port]")
            found.append((host, int(port)))
        return tuple(found)

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_keys(cls, value: SecretStr) -> SecretStr:
        for key in webhook_keys(value.get_secret_value(), check=True):
            if not 24 <= len(key) <= 64:
                raise ValueError("each key must be 24 to 64 bytes (`whsec_` and base64)")
        return value

    @field_validator("url_fetch_allow_networks", "webhook_http_networks", mode="before")
    @classmethod
    def _networks(cls, value):
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("url_fetch_allow_ports", mode="before")
    @classmethod
    def _ports(cls, value):
        if isinstance(value, str):
            if value.strip().lower() == "any":
                return None
            parts = [part.strip() for part in value.split(",") if part.strip()]
            if not parts or not all(p.isdigit() and 1 <= int(p) <= 65535 for p in parts):
                raise ValueError("must be `any` or comma-separated ports from 1 to 65535")
            return tuple(int(p) for p in parts)
        return value

    @classmethod
    def load(cls: type[T], **overrides) -> T:
        """Build settings from the environment (plus explicit overrides); raise
        `SettingsError` with a readable message when a value is bad."""
        try:
            return cls(**overrides)
        except ValidationError as error:
            raise SettingsError("invalid settings:\n" + describe_errors(error)) from None

    @classmethod
    def current(cls: type[T]) -> T:
        """The process-wide settings of this tier, built once from the environment."""
        return _current(cls)

    @classmethod
    def or_exit(cls: type[T], program: str) -> T:
        """The process-wide settings for a command; bad values print one line each,
        prefixed by `program`, and exit with status 2."""
        try:
            return cls.current()
        except SettingsError as error:
            print(f"{program}: {error}", file=sys.stderr)
            raise SystemExit(BAD_SETTINGS_EXIT) from None


@cache
def _current(cls: type[T]) -> T:
    return cls.load()


# Settings whose values never appear in an error message.
def webhook_keys(secrets: str, *, check: bool = False) -> list[bytes]:
    """The keys of `WEBHOOK_SECRET`, newest first: `whsec_<base64>` entries separated by
    spaces or commas (Standard Webhooks' form). With `check`, a malformed entry raises
    `ValueError`."""
    keys = []
    for entry in secrets.replace(",", " ").split():
        if not entry.startswith("whsec_"):
            if check:
                raise ValueError("each key must be `whsec_` and the key in base64")
            continue
        try:
            keys.append(base64.b64decode(entry.removeprefix("whsec_"), validate=True))
        except (ValueError, binascii.Error):
            if check:
                raise ValueError("each key must be `whsec_` and the key in base64") from None
    return keys


SECRET_FIELDS = {"api_keys", "flower_basic_auth", "webhook_secret", "redis_sentinel_password"}
BAD_SETTINGS_EXIT = 2


class SettingsError(Exception):
    """The environment holds bad values; the message has one line per value."""


def describe_errors(error: ValidationError) -> str:
    """One line per bad value: `NAME: what it must be (got 'value')`."""
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]).upper() or "settings"
        message = item["msg"].removeprefix("Value error, ")
        got = item.get("input")
        secret = any(str(part) in SECRET_FIELDS for part in item["loc"])
        shown = got is not None and not isinstance(got, dict) and not secret
        suffix = f" (got {got!r})" if shown else ""
        lines.append(f"{name}: {message}{suffix}")
    return "\n".join(lines)
