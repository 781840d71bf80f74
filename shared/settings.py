"""Every resq setting, read from the environment and validated once at start.

Both tiers build one `Settings` (12-factor: environment only). A bad value stops
the process with one line per bad value, naming the variable, what it must be
and what it got (`load_settings`).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import (
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Precision(StrEnum):
    """Numeric precision of the model's forward pass."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"


class ModelEngine(StrEnum):
    """What runs the model: OpenVINO, or PyTorch."""

    AUTO = "auto"
    OPENVINO = "openvino"
    TORCH = "torch"


class Settings(BaseSettings):
    """resq's settings; each field is read from the environment variable of the same
    name in upper case (``redis_url`` from ``REDIS_URL``)."""

    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,
        protected_namespaces=(),
    )

    # --- connections --------------------------------------------------------
    redis_url: str = "redis://localhost:6379/0"
    """Redis used as the Celery broker, the result backend and the job records."""

    queue_name: str = Field("resq", pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    """Celery queue the web tier enqueues to and the workers consume. It is also the
    Redis list KEDA measures."""

    # --- ports ----------------------------------------------------------------
    web_host: str = "0.0.0.0"
    """Address the web tier listens on: every interface (what a container needs);
    `make run` sets 127.0.0.1, so a laptop does not serve its network."""

    port: int = Field(8000, ge=1, le=65535)
    """TCP port of the web tier (gunicorn)."""

    flower_port: int = Field(5555, ge=1, le=65535)
    """TCP port of Flower, the Celery monitor."""

    worker_metrics_port: int = Field(9540, ge=0, le=65535)
    """TCP port of a worker's Prometheus endpoint (`/metrics`); 0 turns it off."""

    worker_ready_file: Path = Path("/tmp/resq-worker-ready")
    """File a worker writes once its model is loaded and warmed up (and removes at
    start): what a startup probe checks."""

    metrics_dir: Path = Path("/tmp/resq-metrics")
    """Directory where the web tier's gunicorn processes keep their Prometheus
    counters (prometheus-client multiprocess mode); emptied when gunicorn starts,
    so give each web tier on a machine its own."""

    log_format: str = Field("json", pattern=r"^(json|text)$")
    """`json` (one JSON object per line, with `job_id` where there is one) or `text`."""

    task_events: bool = False
    """Celery task events (task-sent, received, started, succeeded for every job), which
    Flower's task pages show. Off by default: they cost about 9 ms of CPU a job across
    web, worker and Redis, a fifth of the int8 rate on 2 cores. Flower shows the
    workers either way."""

    flower_basic_auth: str = ""
    """`user:password[,user2:password2]` required by Flower; empty means Flower is
    started only on 127.0.0.1 (never without auth on other interfaces)."""

    # --- model ------------------------------------------------------------------
    model_weights: str = "imagenet"
    """`imagenet` (torchvision's IMAGENET1K_V2 from the cache under `TORCH_HOME`,
    downloaded there when online), a path to a ResNet50 state_dict file, or
    `random` (untrained weights: for tests and offline demos only). Only workers read
    the file: a missing one stops a worker at start (exit 3), not the other tiers."""

    model_engine: ModelEngine = ModelEngine.AUTO
    """`auto` (OpenVINO, falling back to torch with a warning where it cannot load),
    `openvino` or `torch`."""

    model_precision: Precision = Precision.AUTO
    """`auto` (bf16 where the CPU has native bf16, else fp32), `fp32`, `bf16`, or
    `int8` (OpenVINO only: quantized with NNCF on `CALIBRATION_DIR`'s images; never
    chosen by `auto`: check what it costs with `python -m worker check-precision`)."""

    calibration_dir: Path | None = None
    """Images (JPEG, PNG, ...) that int8 quantization is calibrated on: a few hundred
    of your own, like the ones the service will see. Unset: the small public-domain
    set shipped in `worker/calibration/`."""

    model_compile: bool = True
    """Compile the model ahead of time and keep the result in `COMPILE_CACHE_DIR`
    (torch: torch.export + AOTInductor, frozen; OpenVINO: its IR and its compiled
    blobs); `false` runs torch eager and compiles OpenVINO's model at each start."""

    compile_cache_dir: Path = Path.home() / ".cache" / "resq" / "compiled"
    """Where compiled models are kept; a restart with the same weights, precision,
    batch size, engine version and CPU loads from here instead of compiling."""

    # --- batching -----------------------------------------------------------------
    batch_max_size: int = Field(8, ge=1, le=256)
    """Most images in one forward pass."""

    batch_max_wait_ms: float = Field(10.0, ge=0, le=10_000)
    """Longest a batch waits for more images after its first, while more are being
    decoded; a batch runs at once when nothing more is on its way."""

    batch_overlap: bool = True
    """Decode the next batch while the model runs the current one (the model on a
    thread of its own); false: one phase at a time."""

    # --- limits -----------------------------------------------------------------
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    """Largest accepted request body or fetched URL body, in bytes (larger: 413)."""

    max_image_pixels: int = Field(40_000_000, ge=1, le=400_000_000)
    """Largest accepted image, as width × height of the encoded image (larger: 413)."""

    max_decode_bytes: int = Field(384 * 1024 * 1024, ge=1024 * 1024)
    """Most memory decoding one image may cost a worker, in bytes, estimated from its
    header as width × height × the peak bytes a pixel of its mode (about 9 for RGB,
    12 for 16-bit, 14 for 32-bit or grey+alpha): larger is refused with 413 before
    it is queued. The default lets every 8-bit photo under `MAX_IMAGE_PIXELS` in.
    A worker decodes up to one image per core at once."""

    wait_max_seconds: float = Field(30.0, ge=0, le=600)
    """Cap on how long `?wait=` / `Prefer: wait=` may hold a request."""

    wait_max_concurrent: int = Field(0, ge=0, le=1024)
    """Requests one web process holds waiting for results at once; past it a request
    that asked to wait is answered at once with 202 (the client polls), so waits never
    take every thread. 0 means three quarters of `WEB_THREADS`."""

    wait_max_per_key: int = Field(0, ge=0, le=1024)
    """Of those, the most one API key holds in one web process (with `API_KEYS`);
    0 means half of `WAIT_MAX_CONCURRENT`."""

    result_ttl_seconds: int = Field(86_400, ge=60)
    """How long a job's record and result are kept; afterwards its id answers 404."""

    queue_max_length: int = Field(10_000, ge=1)
    """Waiting jobs (both lanes) past which `POST /jobs` answers 503 with `Retry-After`."""

    queue_max_per_key: int = Field(0, ge=0)
    """Queued jobs one API key (or one client address, without keys) may hold; past
    it that key gets 429 `quota_exceeded` with `Retry-After` while others still get
    in. 0 means no limit."""

    interactive_lane: bool = True
    """Send jobs submitted with a wait to the interactive lane, which every worker
    serves before the batch lane; false: every job goes to the batch lane."""

    job_max_queue_seconds: float = Field(0.0, ge=0, le=86_400)
    """Longest any job may wait in the queue: one not started by then never runs and
    ends `failed`/`expired`. A job's own `deadline_seconds` may ask for less. 0 means
    no server-wide deadline."""

    queue_max_bytes: int = Field(256 * 1024 * 1024, ge=0)
    """Bytes of images held for unfinished jobs past which `POST /jobs` answers 503
    with `Retry-After`; 0 means no limit. Keep it well below Redis's `maxmemory`
    (compose and the chart set 1 GiB), so that a burst of large uploads fills this
    limit, not Redis."""

    visibility_timeout_seconds: int = Field(120, ge=1, le=86_400)
    """Seconds after which a job taken by a worker that vanished without a word
    (SIGKILL, a lost node) is delivered again. Must exceed the longest a live worker
    holds a job (its `WORKER_CONCURRENCY` jobs at its slowest batch rate), or slow
    jobs would be delivered twice."""

    worker_stall_seconds: float = Field(60.0, ge=1, le=3600)
    """A batch (decoding and forward pass) that runs longer than this means the worker
    is wedged (a hung decode, a deadlock): its jobs fail with `worker_stalled` instead
    of waiting forever, and the worker's `/healthz` answers 503, so its liveness
    probe (the chart's, and `make run`'s watch) restarts it. Keep it far above the
    slowest batch (about a second on one core)."""

    worker_heartbeat_seconds: float = Field(2.0, gt=0, le=60)
    """How often a worker renews its heartbeat. A worker silent for 5 times this is
    dead: the jobs it held are delivered again at once (within about 6 times this),
    whatever `VISIBILITY_TIMEOUT_SECONDS` says."""

    job_max_attempts: int = Field(3, ge=1, le=100)
    """Times a job's worker may die while the job's batch runs (a crash, an OOM
    kill). Such a job is delivered again and then runs in a batch of its own; after
    this many deaths it ends `failed` with `job_killed_worker`, so a poison input
    cannot take workers down forever."""

    url_fetch_timeout_seconds: float = Field(10.0, gt=0, le=120)
    """Total time allowed to fetch an image given by URL (connect and read)."""

    url_fetch_allow_networks: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = ()
    """Comma-separated networks (`10.20.0.0/16,fd00::/8`) that URL submissions may
    reach although they are not public. Empty (the default): only public addresses;
    loopback, private, link-local, multicast and reserved ones are refused."""

    url_fetch_allow_ports: Annotated[tuple[int, ...] | None, NoDecode] = (80, 443)
    """Comma-separated ports that URL submissions and webhook deliveries may connect
    to, or `any`. Default: 80 and 443, so that no other service of a host is
    reached."""

    # --- access -------------------------------------------------------------------
    api_keys: SecretStr = SecretStr("")
    """Comma-separated API keys that `/jobs` requires (at least 16 characters each),
    or their SHA-256 as `sha256:<64 hex digits>`. Empty: no key is asked for. A job
    belongs to the key that made it; other keys get 404 for it. Probes, `/metrics`
    and the docs need no key."""

    rate_limit: str = Field("1000/second",
                            pattern=r"^(\s*\d+\s*(/|per)\s*(\d+\s*)?"
                                    r"(second|minute|hour|day)s?\s*[;,]?)*\s*$")
    """Requests to `/jobs` allowed per API key (per client address without keys),
    in flask-limiter's notation (`1000/second`, `50/second;1000/minute`); past it:
    429 with `Retry-After`. Empty: no limit. It stops a runaway client (a loop
    without backoff) from taking the web tier; the queue itself is guarded by
    `QUEUE_MAX_LENGTH` and `QUEUE_MAX_BYTES`. The default sits far above what a
    well-behaved client, or everything behind one address, needs below the
    service's own speed (27 jobs a second on 2 cores)."""

    webhook_secret: SecretStr = SecretStr("")
    """Key of the HMAC-SHA256 signature on webhook deliveries (`Resq-Signature`).
    Empty: webhooks are off, and a job that asks for one is refused (422)."""

    webhook_max_attempts: int = Field(5, ge=1, le=20)
    """Deliveries tried per webhook (with backoff: 1, 2, 4, ... s, at most 60 s)."""

    webhook_timeout_seconds: float = Field(5.0, gt=0, le=60)
    """Time allowed for one webhook delivery (connect and answer)."""

    webhook_threads: int = Field(4, ge=1, le=64)
    """Threads per worker that send webhook deliveries, apart from the threads that
    classify: a slow receiver never takes a thread from the jobs."""

    # --- processes --------------------------------------------------------------
    web_workers: int = Field(2, ge=1, le=64)
    """gunicorn worker processes of the web tier."""

    web_threads: int = Field(64, ge=1, le=1024)
    """Threads per gunicorn worker: each holds one request, so one web process holds
    this many concurrent waits."""

    worker_concurrency: int = Field(0, ge=0, le=1024)
    """Jobs one worker process holds at once (Celery threads: each decodes one
    image and waits for its batch); 0 means twice `BATCH_MAX_SIZE`, so the next
    batch is decoded while the current one is in the model."""

    torch_threads: int = Field(0, ge=0, le=256)
    """Intra-op threads of the model; 0 means the cores this worker may use (CPU
    affinity and cgroup quota). One model per process: the worker never runs more
    model threads than that."""

    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    """Log level of both tiers."""

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("model_weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        # Only the form: a file is checked by the worker that loads it (exit 3), since
        # every tier reads these settings and only workers mount the weights.
        value = value.strip()
        if not value:
            raise ValueError("must be `imagenet`, `random` or a path to a state_dict file")
        return value

    @field_validator("url_fetch_allow_networks", mode="before")
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

    @field_validator("api_keys")
    @classmethod
    def _api_keys(cls, value: SecretStr) -> SecretStr:
        for entry in filter(None, (p.strip() for p in value.get_secret_value().split(","))):
            if entry.startswith("sha256:"):
                hexdigest = entry.removeprefix("sha256:")
                hex_digits = "0123456789abcdefABCDEF"
                if len(hexdigest) != 64 or any(c not in hex_digits for c in hexdigest):
                    raise ValueError("a `sha256:` entry must hold 64 hex digits")
            elif len(entry) < 16:
                raise ValueError("each key must be at least 16 characters long")
        return value

    @model_validator(mode="after")
    def _int8_needs_openvino(self):
        if self.model_precision is Precision.INT8 and self.model_engine is ModelEngine.TORCH:
            raise ValueError("MODEL_PRECISION=int8 runs on the OpenVINO engine only "
                             "(MODEL_ENGINE=auto or openvino)")
        return self

    @field_validator("flower_basic_auth")
    @classmethod
    def _basic_auth(cls, value: str) -> str:
        for pair in filter(None, value.split(",")):
            user, sep, password = pair.partition(":")
            if not sep or not user or not password:
                raise ValueError("must be `user:password` pairs separated by commas")
        return value


    @property
    def jobs_in_flight(self) -> int:
        return self.worker_concurrency or 2 * self.batch_max_size


# Settings whose values never appear in an error message.
SECRET_FIELDS = {"api_keys", "flower_basic_auth", "webhook_secret"}


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


def load_settings(**overrides) -> Settings:
    """Build settings from the environment (plus explicit overrides); raise
    `SettingsError` with a readable message when a value is bad."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError("invalid settings:\n" + describe_errors(error)) from None


BAD_SETTINGS_EXIT = 2


def settings_or_exit(program: str) -> Settings:
    """The process-wide settings for a command; bad values print one line each,
    prefixed by `program`, and exit with status 2."""
    try:
        return get_settings()
    except SettingsError as error:
        print(f"{program}: {error}", file=sys.stderr)
        raise SystemExit(BAD_SETTINGS_EXIT) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once from the environment."""
    return load_settings()
