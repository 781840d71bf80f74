"""`python -m bench.redis_capacity [--seconds S] [--out DIR]` (`make bench-redis`): how
far one Redis goes, and what waiting for a replica costs. Loopback only.

1. The model out of the way: one web tier (gunicorn, 2 processes) and one worker
   whose classifier answers at once (`bench.null_worker`: no decode, no forward
   pass), 16 clients submitting a small JPEG as fast as they are answered (no wait),
   for `--seconds`. Measured: jobs/s through the queue, and the CPU each part spent
   per job. Redis runs its commands on one thread, so `1 / Redis CPU per job` is the
   most jobs/s one Redis carries on one core, whatever the workers could do.
2. `REDIS_REPLICA_ACKS`: a primary, a replica and three sentinels (`bench.sentinel`);
   one client submits one job at a time to a web tier that waits for the replica's
   acknowledgement (`WAIT 1`), then to one that does not. p50 and p95 of a submit.

Writes `redis_capacity.json` under `--out` (default bench/results) and prints it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import redis
import requests

from bench.cpu import ServiceCpu
from bench.load import run_in_threads
from bench.photos import encode, photo
from bench.sentinel import SentinelCluster
from bench.stack import await_condition, free_port, start_gunicorn, start_redis, start_worker
from shared.job_data.keys import QueueKeys

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 16


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return info["used_cpu_sys"] + info["used_cpu_user"]


def capacity(tmp: Path, seconds: float, image: bytes) -> dict:
    port = free_port()
    server = start_redis(port, tmp / "redis", appendonly=True)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    await_condition(client.ping, 10, "redis-server")
    queue = "capacity"
    worker = start_worker(url, queue, tmp / "worker.log", module="bench.null_worker",
                          WORKER_CONCURRENCY=64, BATCH_MAX_SIZE=32)
    web, base = start_gunicorn(url, queue, tmp / "web.log", RATE_LIMIT="", WEB_THREADS=32,
                               QUEUE_MAX_LENGTH=1_000_000)
    counter = itertools.count()
    accepted = itertools.count()
    try:
        cpu = {"web": ServiceCpu(web.pid), "worker": ServiceCpu(worker.pid)}
        before = {name: meter.seconds() for name, meter in cpu.items()}
        redis_before = redis_cpu(client)
        began = time.perf_counter()

        def client_loop():
            session = requests.Session()
            while time.perf_counter() - began < seconds:
                next(counter)
                answer = session.post(f"{base}/jobs", data=image,
                                      headers={"Content-Type": "image/jpeg"}, timeout=30)
                if answer.status_code == 202:
                    next(accepted)

        run_in_threads(client_loop, CLIENTS)
        await_condition(lambda: client.zcard(QueueKeys(queue).inflight) == 0, 300,
                        "every job ended", interval=0.2)
        elapsed = time.perf_counter() - began
        jobs = next(accepted)
        spent = {name: (meter.seconds() - before[name]) * 1000 / jobs
                 for name, meter in cpu.items()}
        spent["redis"] = (redis_cpu(client) - redis_before) * 1000 / jobs
        commands = client.info("commandstats")
    finally:
        web.stop()
        worker.stop()
        client.close()
        server.stop()
    busiest = sorted(((name.removeprefix("cmdstat_"), stats["calls"])
                      for name, stats in commands.items()), key=lambda c: -c[1])[:8]
    return {"clients": CLIENTS, "seconds": round(elapsed, 1), "jobs": jobs,
            "jobs_per_second": round(jobs / elapsed, 1),
            "cpu_ms_per_job": {k: round(v, 3) for k, v in spent.items()},
            "one_redis_core_carries_jobs_per_second": round(1000 / spent["redis"]),
            "redis_commands_per_job": {name: round(calls / jobs, 2) for name, calls in busiest}}


def submit_latency(base: str, image: bytes, count: int) -> dict:
    session = requests.Session()
    times = []
    for _ in range(count):
        sent = time.perf_counter()
        answer = session.post(f"{base}/jobs", data=image, headers={"Content-Type": "image/jpeg"},
                              timeout=30)
        assert answer.status_code == 202, answer.text
        times.append((time.perf_counter() - sent) * 1000)
    values = np.array(times[count // 10:])  # the first tenth warms up
    return {"p50_ms": round(float(np.percentile(values, 50)), 2),
            "p95_ms": round(float(np.percentile(values, 95)), 2)}


def replica_acks(tmp: Path, image: bytes, count: int = 400) -> dict:
    cluster = SentinelCluster(tmp / "sentinel").start()
    results = {}
    try:
        for acks in (1, 0):
            web, base = start_gunicorn(cluster.env["REDIS_URL"], f"acks-{acks}",
                                       tmp / f"web-acks-{acks}.log", RATE_LIMIT="",
                                       REDIS_REPLICA_ACKS=acks, **cluster.env)
            try:
                results[f"REDIS_REPLICA_ACKS={acks}"] = submit_latency(base, image, count)
            finally:
                web.stop()
    finally:
        cluster.stop()
    return {"submits": count, **results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_capacity", description=__doc__)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    image = encode(photo("chelsea").resize((160, 120)), quality=85)
    threading.current_thread().name = "bench"
    with tempfile.TemporaryDirectory(prefix="resq-redis-capacity-") as tmp:
        result = {"image_bytes": len(image),
                  "model_out_of_the_way": capacity(Path(tmp), args.seconds, image),
                  "waiting_for_a_replica": replica_acks(Path(tmp), image)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "redis_capacity.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
