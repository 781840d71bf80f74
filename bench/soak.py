"""`python -m bench.soak [--jobs N] [--killed-jobs N] [--out DIR]` (`make soak`): resq at
full speed for longer than Redis can keep its results, then with web processes
SIGKILLed in the middle of creates. The real stack (redis-server, gunicorn, one
`python -m worker` with random weights), loopback only.

1. Full speed: Redis at `maxmemory 8mb` (noeviction, as compose and the chart run it)
   and the default RESULT_TTL_SECONDS (a day); 8 clients each submit a small JPEG
   and wait for its result, until `--jobs` have been submitted (far more than 8 MiB
   can keep). Counted: refusals, jobs lost (never ended) and jobs run twice (the
   worker's log), the results dropped, the bytes an ended job keeps, and every
   count the job data keeps once the queue is empty (all 0).
2. Kills: 8 clients submit without waiting while a gunicorn worker process is
   SIGKILLed every 0.2 s; each request cut off is sent again. Once the queue has
   drained: the jobs re-sent by the sweeper (created but never sent: a kill between
   the create script and the message), and the counts (all 0).

Writes `soak.json` under `--out` (default bench/results) and prints it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil
import redis
import requests

from bench.load import run_in_threads
from bench.photos import encode, photo
from bench.stack import await_condition, free_port, start_gunicorn, start_redis, start_worker
from shared.job_data.keys import QueueKeys
from shared.job_data.records import JobRecords

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 8


def counts(client: redis.Redis, queue: str) -> dict:
    """Every count the job data keeps for `queue` (0 each once the queue is empty)."""
    keys = QueueKeys(queue)
    callers = sum(int(client.get(key) or 0) for key in client.smembers(keys.quota_keys))
    return {"queued_bytes": int(client.get(keys.queued_bytes) or 0),
            "open_jobs": client.zcard(keys.inflight),
            "queued_by_key": callers,
            "waiting": sum(client.llen(name) for name in keys.lane_lists)}


def runs_per_job(log: str) -> Counter:
    """How many times the worker classified each job (from its log)."""
    return Counter(re.findall(r"job ([0-9a-f-]{36}) classified", log))


def full_speed(tmp: Path, jobs: int, image: bytes) -> dict:
    port = free_port()
    server = start_redis(port, tmp / "redis-full", maxmemory="8mb")
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    await_condition(client.ping, 10, "redis-server")
    queue = "soak"
    # The worker's own defaults (the suite's helper sets a small batch and one thread).
    worker = start_worker(url, queue, tmp / "worker-full.log", BATCH_MAX_SIZE=8,
                          TORCH_THREADS=0)
    web, base = start_gunicorn(url, queue, tmp / "web-full.log", RATE_LIMIT="",
                               QUEUE_MAX_PER_KEY=1000, WEB_THREADS=32)
    answers: Counter = Counter()
    refused: list[str] = []
    accepted: list[str] = []
    ended: Counter = Counter()  # how each accepted job ended, as its client read it
    lock = threading.Lock()
    counter = itertools.count()
    started = time.perf_counter()

    def client_loop():
        """Submit, then wait for the job's end (polling on when the wait was
        declined or ran out) before the next: at most one job of its own open."""
        session = requests.Session()
        while next(counter) < jobs:
            response = session.post(f"{base}/jobs?wait=30", data=image,
                                    headers={"Content-Type": "image/jpeg"}, timeout=60)
            with lock:
                answers[response.status_code] += 1
            if response.status_code not in (200, 202):
                with lock:
                    refused.append(response.text[:200])
                continue
            job = response.json()
            while job.get("status") in ("queued", "started"):
                time.sleep(float(response.headers.get("Retry-After", 0)))  # a declined wait
                response = session.get(f"{base}/jobs/{job['id']}?wait=30", timeout=60)
                job = response.json()
            with lock:
                accepted.append(job["id"])
                ended[job.get("status") or job["error"]["code"]] += 1

    try:
        run_in_threads(client_loop, CLIENTS)
        seconds = time.perf_counter() - started
        await_condition(lambda: counts(client, queue)["open_jobs"] == 0, 120, "the queue empty")
        sample = next(job_id for job_id in reversed(accepted)
                      if JobRecords(client, 86_400, queue).get(job_id))
        ended_bytes = client.memory_usage(QueueKeys.record(sample))
        dropped = int(client.get(QueueKeys(queue).results_dropped) or 0)
        memory = client.info("memory")
        final = counts(client, queue)
    finally:
        web.stop()
        worker.stop()
        client.close()
        server.stop()
    runs = runs_per_job(worker.log())
    return {"jobs": jobs, "clients": CLIENTS, "seconds": round(seconds, 1),
            "jobs_per_second": round(jobs / seconds, 1), "answers": dict(answers),
            "refused": len(refused), "refusals": refused[:5],
            "ended_as_read": dict(ended),
            "lost": sum(1 for job_id in accepted if job_id not in runs),
            "run_twice": sum(1 for n in runs.values() if n > 1),
            "results_dropped": dropped, "ended_job_bytes": ended_bytes,
            "redis_maxmemory": memory["maxmemory"], "redis_used_memory": memory["used_memory"],
            "counts_at_end": final}


def with_kills(tmp: Path, jobs: int, image: bytes) -> dict:
    port = free_port()
    server = start_redis(port, tmp / "redis-kills")
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    await_condition(client.ping, 10, "redis-server")
    queue = "soak-kills"
    # The sweeper looks for jobs whose message never left after this long.
    worker = start_worker(url, queue, tmp / "worker-kills.log", VISIBILITY_TIMEOUT_SECONDS=10)
    web, base = start_gunicorn(url, queue, tmp / "web-kills.log", RATE_LIMIT="",
                               QUEUE_MAX_PER_KEY=100_000, WEB_WORKERS=2)
    answers: Counter = Counter()
    cut_off = [0]
    kills = [0]
    lock = threading.Lock()
    counter = itertools.count()
    stop = threading.Event()

    def killer():
        master = psutil.Process(web.pid)
        while not stop.wait(0.2):
            children = master.children()
            if children:
                random.choice(children).send_signal(signal.SIGKILL)
                kills[0] += 1

    def client_loop():
        session = requests.Session()
        while next(counter) < jobs:
            while True:
                try:
                    response = session.post(f"{base}/jobs", data=image,
                                            headers={"Content-Type": "image/jpeg"},
                                            timeout=30)
                except requests.RequestException:
                    with lock:
                        cut_off[0] += 1
                    session = requests.Session()
                    continue
                with lock:
                    answers[response.status_code] += 1
                break

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        run_in_threads(client_loop, CLIENTS)
        stop.set()
        thread.join()
        await_condition(lambda: counts(client, queue) == {
            "queued_bytes": 0, "open_jobs": 0, "queued_by_key": 0, "waiting": 0}, 600,
            "the queue drained and every count at 0", interval=1)
        final = counts(client, queue)
    finally:
        stop.set()
        web.stop()
        worker.stop()
        client.close()
        server.stop()
    resent = sum(int(n) for n in re.findall(r"re-sent (\d+) jobs whose message was lost",
                                            worker.log()))
    runs = runs_per_job(worker.log())
    return {"submissions": jobs, "web_processes_killed": kills[0],
            "requests_cut_off": cut_off[0], "answers": dict(answers),
            "jobs_run": len(runs), "run_twice": sum(1 for n in runs.values() if n > 1),
            "resent_by_the_sweeper": resent, "counts_at_end": final}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--killed-jobs", type=int, default=3_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    image = encode(photo("chelsea").resize((160, 120)), quality=85)
    with tempfile.TemporaryDirectory(prefix=f"resq-soak-{uuid.uuid4().hex[:6]}-") as tmp:
        result = {"image_bytes": len(image),
                  "full_speed": full_speed(Path(tmp), args.jobs, image),
                  "kills": with_kills(Path(tmp), args.killed_jobs, image)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
