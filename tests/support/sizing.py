"""What Redis needs per job, measured on a real Redis, and whether a deployment's
defaults (compose.yaml, the chart) keep every result for its RESULT_TTL_SECONDS at
the rate they are sized for (docs/reliability.md, "Memory budget"):

    results = jobs/s × RESULT_TTL_SECONDS × bytes per ended job
    room    = maxmemory × (1 − HEADROOM) − QUEUE_MAX_BYTES
              − QUEUE_MAX_LENGTH × bytes per waiting job (its message, record, index entry)

and the defaults must keep `room ≥ MARGIN × results` even with the queue full."""

from __future__ import annotations

import uuid

import redis

from shared.celery_app import make_celery
from shared.job_data.budget import HEADROOM
from shared.job_data.records import new_job_id
from shared.job_data.store import JobStore, NewJob
from shared.settings import CommonSettings

# What one worker does on 2 cores at its best (make run at int8, the rate the job
# data's issue measured; docs/performance.md has the benchmark's own figures).
JOBS_PER_SECOND_PER_WORKER = 66
MARGIN = 1.25
SAMPLES = 500

# A top-5 result with long labels and full-precision numbers: an ended job at its largest
# for the default top_k.
RESULT = {"predictions": [{"label": "American Staffordshire terrier", "class_id": 180 + n,
                           "score": 0.123456789012345} for n in range(5)],
          "model": {"name": "resnet50", "weights": "IMAGENET1K_V2", "precision": "bf16",
                    "engine": "openvino"},
          "timing_ms": {"queued": 123.456, "preprocess": 12.345, "inference": 45.678,
                        "total": 181.479}}


def bytes_per_job(redis_url: str) -> tuple[float, float]:
    """(bytes Redis holds per ended job, per waiting job less its image), each the
    growth of used memory over SAMPLES jobs."""
    queue = f"sizing-{uuid.uuid4().hex[:8]}"
    settings = CommonSettings.load(redis_url=redis_url, queue_name=queue)
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, make_celery(settings), queue=queue, ttl_seconds=3600)
    try:
        warm_up = [NewJob(new_job_id(), b"") for _ in range(50)]  # Redis's one-time costs
        for job in warm_up:
            store.create_many([job], top_k=5, form="raw")
            store.start(job.id, "w")
            store.finish(job.id, result=RESULT)
        jobs = [NewJob(new_job_id(), b"") for _ in range(SAMPLES)]
        before = client.info("memory")["used_memory"]
        for job in jobs:
            store.create_many([job], top_k=5, form="raw", owner="")
        waiting = (client.info("memory")["used_memory"] - before) / SAMPLES
        client.delete(*store.keys.lane_lists)  # the messages, taken by workers
        for job in jobs:
            store.start(job.id, "resq-worker-7d9f8b6c5d-x2k4q:1:0123abcd")
            store.finish(job.id, result=RESULT)
        ended = (client.info("memory")["used_memory"] - before) / SAMPLES
        return ended, waiting
    finally:
        client.delete(store.keys.finished, store.keys.inflight, store.keys.queued_bytes,
                      *(store.keys.record(job.id) for job in warm_up + jobs))
        client.close()


def results_fit(redis_url: str, *, maxmemory: int, queue_max_bytes: int,
                queue_max_length: int, ttl_seconds: int, workers: int) -> tuple[bool, str]:
    ended, waiting = bytes_per_job(redis_url)
    results = workers * JOBS_PER_SECOND_PER_WORKER * ttl_seconds * ended
    room = maxmemory * (1 - HEADROOM) - queue_max_bytes - queue_max_length * waiting
    said = (f"{workers} workers × {JOBS_PER_SECOND_PER_WORKER} jobs/s × {ttl_seconds} s × "
            f"{ended:.0f} B = {results / 2**20:.0f} MiB of results; room with the queue full "
            f"{room / 2**20:.0f} MiB ({room / results:.2f}×)")
    return room >= MARGIN * results, said
