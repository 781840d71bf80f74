"""The worker tier's settings (`CommonSettings` plus what only workers read): the
model, batching, the worker's processes and probes, webhook delivery."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from shared.settings import CommonSettings


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


class WorkerSettings(CommonSettings):
    """A worker: the model, its batches, its processes and probes, webhooks."""

    worker_metrics_port: int = Field(9540, ge=0, le=65535)
    """TCP port of a worker's Prometheus endpoint (`/metrics`); 0 turns it off."""

    worker_ready_file: Path = Path("/tmp/resq-worker-ready")
    """File a worker writes once its model is loaded and warmed up (and removes at
    start): what a startup probe checks."""

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

    batch_max_size: int = Field(8, ge=1, le=256)
    """Most images in one forward pass."""

    batch_max_wait_ms: float = Field(10.0, ge=0, le=10_000)
    """Longest a batch waits for more images after its first, while more are being
    decoded; a batch runs at once when nothing more is on its way."""

    batch_overlap: bool = True
    """Decode the next batch while the model runs the current one (the model on a
    thread of its own); false: one phase at a time."""

    worker_stall_seconds: float = Field(60.0, ge=1, le=3600)
    """A batch (decoding and forward pass) that runs longer than this means the worker
    is wedged (a hung decode, a deadlock): its jobs fail with `worker_stalled` instead
    of waiting forever, and the worker's `/healthz` answers 503, so its liveness
    probe (the chart's, and `make run`'s watch) restarts it. Keep it far above the
    slowest batch (about a second on one core)."""

    worker_heartbeat_seconds: float = Field(2.0, gt=0, le=60)
    """How often a worker renews its heartbeat. A worker silent for 5 times this is
    dead: the jobs it held are delivered again at once (within about 6 times this),
    whatever `VISIBILITY_TIMEOUT_SECONDS` says. After a Redis outage, workers wait
    out a lapse of their own beats before they judge others dead."""

    reconcile_interval_seconds: float = Field(60.0, gt=0, le=86_400)
    """How often a worker of the queue recomputes the job counts (the bytes of waiting
    images, each key's queued jobs) from the records and corrects any drift
    (`resq_counter_corrections_total`). One script over the open jobs: about a
    millisecond per thousand."""

    job_max_attempts: int = Field(3, ge=1, le=100)
    """Times a job's worker may die while the job's batch runs (a crash, an OOM
    kill). Such a job is delivered again and then runs in a batch of its own; after
    this many deaths it ends `failed` with `job_killed_worker`, so a poison input
    cannot take workers down forever."""

    webhook_max_attempts: int = Field(5, ge=1, le=20)
    """Deliveries tried per webhook (with backoff: 1, 2, 4, ... s, at most 60 s)."""

    webhook_timeout_seconds: float = Field(5.0, gt=0, le=60)
    """Time allowed for one webhook delivery (connect and answer)."""

    webhook_threads: int = Field(4, ge=1, le=64)
    """Threads per worker that send webhook deliveries, apart from the threads that
    classify: a slow receiver never takes a thread from the jobs."""

    worker_concurrency: int = Field(0, ge=0, le=1024)
    """Jobs one worker process holds at once (Celery threads: each decodes one
    image and waits for its batch); 0 means twice `BATCH_MAX_SIZE`, so the next
    batch is decoded while the current one is in the model."""

    torch_threads: int = Field(0, ge=0, le=256)
    """Intra-op threads of the model; 0 means the cores this worker may use (CPU
    affinity and cgroup quota). One model per process: the worker never runs more
    model threads than that."""

    @field_validator("model_weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        # Only the form: a file is checked by the worker that loads it (exit 3), since
        # every tier reads these settings and only workers mount the weights.
        value = value.strip()
        if not value:
            raise ValueError("must be `imagenet`, `random` or a path to a state_dict file")
        return value

    @model_validator(mode="after")
    def _int8_needs_openvino(self):
        if self.model_precision is Precision.INT8 and self.model_engine is ModelEngine.TORCH:
            raise ValueError("MODEL_PRECISION=int8 runs on the OpenVINO engine only "
                             "(MODEL_ENGINE=auto or openvino)")
        return self

    @property
    def jobs_in_flight(self) -> int:
        return self.worker_concurrency or 2 * self.batch_max_size
