"""Short waits under a backlog, and what expired jobs cost a worker: the two lanes'
and the deadlines' figures (docs/api.md's "Two lanes" and "Deadlines").

- `interactive_under_backlog`: `backlog` batch jobs queued on one worker, then one
  request with `?wait=30` a second: each one's answer time, against the pipeline's
  latency for one batch.
- `expired_cost`: `count` jobs whose deadline passed while no worker took from the
  queue (the worker's consumers cancelled), then the worker takes them again: its
  CPU seconds per expired job, from its process counters.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import requests

from bench.cpu import ServiceCpu
from bench.load import run_in_threads
from bench.stack import await_condition
from shared.celery_app import make_celery
from shared.job_data.records import JobRecords
from shared.lanes import served_lists
from shared.settings import CommonSettings


def _post(session: requests.Session, base: str, image: bytes, query: str = "") -> dict:
    answer = session.post(f"{base}/jobs{query}", data=image,
                          headers={"Content-Type": "image/jpeg"}, timeout=120)
    answer.raise_for_status()
    return answer.json()


def _fill(base: str, image: bytes, count: int, query: str = "", clients: int = 8) -> list[str]:
    """`count` jobs submitted as fast as `clients` connections allow."""
    ids: list[str] = []
    lock = threading.Lock()
    left = [count]

    def client():
        session = requests.Session()
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            job_id = _post(session, base, image, query)["id"]
            with lock:
                ids.append(job_id)

    run_in_threads(client, clients)
    return ids


def interactive_under_backlog(base: str, images: list[bytes], backlog: int, requests_: int,
                              redis_url: str, queue: str) -> dict:
    """Answer times of `requests_` waits, one a second, behind `backlog` batch jobs."""
    import redis

    client = redis.Redis.from_url(redis_url)
    _fill(base, images[0], backlog)
    session = requests.Session()
    answers, statuses, behind = [], [], []
    for n in range(requests_):
        began = time.perf_counter()
        behind.append(client.llen(queue))
        body = _post(session, base, images[n % len(images)], "?wait=30")
        answers.append((time.perf_counter() - began) * 1000)
        statuses.append(body["status"])
        await_condition(lambda b=began: time.perf_counter() >= b + 1.0, 30, "the next second",
                        interval=0.01)
    values = np.array(answers)
    return {"backlog": backlog, "requests": requests_,
            "succeeded": statuses.count("succeeded"),
            "batch_jobs_waiting_min": int(min(behind)),
            "p50_ms": float(np.percentile(values, 50)),
            "p95_ms": float(np.percentile(values, 95)),
            "max_ms": float(values.max())}


def expired_cost(base: str, image: bytes, count: int, redis_url: str, queue: str,
                 worker_pid: int, node: str) -> dict:
    """Worker CPU seconds per job whose deadline passed while it queued."""
    import redis

    client = redis.Redis.from_url(redis_url)
    control = make_celery(CommonSettings.load(redis_url=redis_url, queue_name=queue)).control
    lists = served_lists(queue)
    for name in lists:
        control.cancel_consumer(name, destination=[node], reply=True, timeout=5)
    ids = _fill(base, image, count, "?deadline_seconds=1")
    await_condition(lambda: time.time() > _created(client, ids[-1]) + 1.0, 60,
                    "every deadline to pass")
    cpu = ServiceCpu(worker_pid)
    idle_before, idle_began = cpu.seconds(), time.perf_counter()
    await_condition(lambda: time.perf_counter() >= idle_began + 1.0, 10, "an idle second")
    idle_rate = (cpu.seconds() - idle_before) / (time.perf_counter() - idle_began)
    before, began = cpu.seconds(), time.perf_counter()
    for name in lists:  # interactive first: the order workers serve them
        control.add_consumer(name, destination=[node], reply=True, timeout=5)

    def all_expired() -> bool:
        return client.llen(lists[1]) == 0 and all(
            status == b"failed" for status in _statuses(client, ids))

    await_condition(all_expired, 300, "every expired job ended")
    seconds = time.perf_counter() - began
    spent = cpu.seconds() - before - idle_rate * seconds
    codes = {_error_code(client, job_id) for job_id in ids[:20]}
    return {"jobs": count, "drain_seconds": seconds, "codes": sorted(codes),
            "worker_cpu_ms_per_expired_job": spent * 1000 / count,
            "jobs_per_second": count / seconds}


def _record(client, job_id: str):
    return JobRecords(client, 3600, "bench").get(job_id)


def _created(client, job_id: str) -> float:
    return _record(client, job_id).created_at


def _statuses(client, ids: list[str]) -> list[bytes | None]:
    records = [_record(client, job_id) for job_id in ids]
    return [record.status.value.encode() if record else None for record in records]


def _error_code(client, job_id: str) -> str:
    record = _record(client, job_id)
    return record.error["code"] if record and record.error else ""

