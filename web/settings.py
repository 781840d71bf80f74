"""The web tier's settings (`CommonSettings` plus what only the web tier reads)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from shared.settings import CommonSettings


class WebSettings(CommonSettings):
    """The web tier: its address and processes, upload and wait limits, the queue's
    admission limits, API keys and rate limits, URL fetches."""

    web_host: str = "0.0.0.0"
    """Address the web tier listens on: every interface (what a container needs);
    `make run` sets 127.0.0.1, so a laptop does not serve its network."""

    port: int = Field(8000, ge=1, le=65535)
    """TCP port of the web tier (gunicorn)."""

    metrics_dir: Path = Path("/tmp/resq-metrics")
    """Directory where the web tier's gunicorn processes keep their Prometheus
    counters (prometheus-client multiprocess mode); emptied when gunicorn starts,
    so give each web tier on a machine its own."""

    upload_budget_bytes: int = Field(256 * 1024 * 1024, ge=0)
    """Bytes of request bodies one web process holds at once, each upload counted 3
    times (read, kept, packed for Redis) and a URL submission as the largest image it
    may fetch; past it `POST /jobs` answers 503 `server_busy` with `Retry-After` before
    reading the body. 0 means no bound. The default lets 8 uploads of 10 MiB (or
    hundreds of ordinary photos) in at once per process, within the 512 MiB per
    process that the chart's web pod has."""

    wait_max_seconds: float = Field(30.0, ge=0, le=600)
    """Cap on how long `?wait=` / `Prefer: wait=` may hold a request."""

    wait_max_concurrent: int = Field(0, ge=0, le=1024)
    """Requests one web process holds waiting for results at once; past it a request
    that asked to wait is answered at once with 202 (the client polls), so waits never
    take every thread. 0 means three quarters of `WEB_THREADS`."""

    wait_max_per_key: int = Field(0, ge=0, le=1024)
    """Of those, the most one API key holds in one web process (with `API_KEYS`);
    0 means half of `WAIT_MAX_CONCURRENT`."""

    batch_max_items: int = Field(10_000, ge=1, le=1_000_000)
    """Most items one `POST /batches` may hold (more: 422)."""

    batch_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    """Largest body of a `POST /batches` with uploaded images (multipart or an
    archive), in bytes (larger: 413); each image is held to `MAX_UPLOAD_BYTES` too.
    The upload counts against `UPLOAD_BUDGET_BYTES` like any other."""

    batch_stream_max_seconds: float = Field(300.0, ge=0, le=3600)
    """Longest a `GET /batches/<id>/results` stream stays open waiting for items to end
    (it holds a thread and a wait slot); the client resumes with `?after=`."""

    webhooks_enabled: bool | None = None
    """Whether a job may name a webhook (the workers sign and send it with
    `WEBHOOK_SECRET`). Unset: when `WEBHOOK_SECRET` is set here too (one environment
    for every tier, as `make run` and compose give); the chart sets it, so that the
    web tier never holds the secret."""

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

    web_workers: int = Field(2, ge=1, le=64)
    """gunicorn worker processes of the web tier."""

    web_threads: int = Field(64, ge=1, le=1024)
    """Threads per gunicorn worker: each holds one request, so one web process holds
    this many concurrent waits."""

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

    @property
    def webhooks_on(self) -> bool:
        """Whether jobs may name a webhook (`WEBHOOKS_ENABLED`, else `WEBHOOK_SECRET`)."""
        if self.webhooks_enabled is not None:
            return self.webhooks_enabled
        return bool(self.webhook_secret.get_secret_value())
