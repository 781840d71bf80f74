"""`python -m bench.batches [--items N] [--quick]`: a batch against the same images sent
as separate jobs, on one worker (the default engine), images served from loopback.
Part of `make bench`; the figures of issue #26's targets, each a ratio or a time within
this one run:

- `batch / separate jobs images/s`: N URLs as one batch (fetched by the worker) against
  the same N URLs as N jobs (fetched by the web tier), each from its first submit to its
  last end; Redis's `used_memory` is sampled through both (its peak above the idle
  start says whether a batch's memory stays flat).
- `first progress event ms`: from the batch's 202 to the first event of its stream.
- `eta error at 25 %`: `eta_seconds` read when a quarter of the items had ended,
  against the time the rest then took.
- `other key's queue p95`: while a second batch (a fifth of the items) runs, single
  batch-lane jobs submitted one every half second, each one's `timing_ms.queued`;
  against the same with no batch, and against the time `BATCH_INFLIGHT` items and the
  model batch already running take at the batch's rate (what "behind at most
  BATCH_INFLIGHT of its items" comes to).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import redis
import requests

from bench import report, workload
from bench.stack import await_condition, redis_server, start_gunicorn, start_worker

QUEUE = "bench-batches"
INFLIGHT = 16
BATCH_SIZE = 8  # the worker's BATCH_MAX_SIZE


class MemorySampler:
    """Redis's `used_memory`, every 0.2 s while running: its peak."""

    def __init__(self, redis_url: str):
        self.client = redis.Redis.from_url(redis_url)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, int(self.client.info("memory")["used_memory"]))

    def __enter__(self):
        self.peak = int(self.client.info("memory")["used_memory"])
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def serve_images(images: list[bytes]):
    """A threaded HTTP server on loopback serving `images` as /0.jpg, /1.jpg, ..."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            index = int(self.path.strip("/").split(".")[0]) % len(images)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(images[index])))
            self.end_headers()
            self.wfile.write(images[index])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def drained(web: str) -> bool:
    return requests.get(f"{web}/scaling", timeout=10).json()["open"] == 0


def separate_jobs(web: str, urls: list[str]) -> dict:
    """Every URL as its own job (8 clients, no waits), then until the queue is empty."""
    began = time.perf_counter()
    with ThreadPoolExecutor(8) as pool, requests.Session() as session:
        answers = list(pool.map(lambda url: session.post(f"{web}/jobs", json={"url": url},
                                                         timeout=60).status_code, urls))
    await_condition(lambda: drained(web), 3600, "the separate jobs", interval=0.2)
    elapsed = time.perf_counter() - began
    accepted = sum(a == 202 for a in answers)
    return {"items": len(urls), "refused": len(urls) - accepted,
            "seconds": elapsed, "images_per_s": accepted / elapsed}


def one_batch(web: str, urls: list[str], others: list[float] | None = None) -> dict:
    """The URLs as one batch: its throughput, its first event's delay, its ETA at a
    quarter done; with `others`, single jobs are sent beside it and their queue
    times appended."""
    began = time.perf_counter()
    answer = requests.post(f"{web}/batches", json={"urls": urls}, timeout=120)
    accepted = time.perf_counter()
    assert answer.status_code == 202, answer.text
    batch_id = answer.json()["id"]
    first_event = [None]

    def listen():
        with requests.get(f"{web}/batches/{batch_id}/events", stream=True,
                          timeout=(10, None)) as stream:
            for _ in stream.iter_lines():
                first_event[0] = time.perf_counter()
                return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    stop = threading.Event()
    if others is not None:
        threading.Thread(target=_other_key, args=(web, others, stop), daemon=True).start()
    eta_at_quarter = None
    while True:
        batch = requests.get(f"{web}/batches/{batch_id}", timeout=10).json()
        done = batch["counts"]["status"]["succeeded"] + batch["counts"]["status"]["failed"]
        if eta_at_quarter is None and done >= len(urls) / 4 and batch["eta_seconds"]:
            eta_at_quarter = (time.perf_counter(), batch["eta_seconds"])
        if batch["status"] != "running":
            break
        time.sleep(0.2)
    finished = time.perf_counter()
    stop.set()
    listener.join(10)
    result = {"items": len(urls), "seconds": finished - began,
              "images_per_s": len(urls) / (batch["finished_at"] - batch["created_at"]),
              "failed": batch["counts"]["status"]["failed"],
              "first_event_ms": (first_event[0] - accepted) * 1000 if first_event[0] else None}
    if eta_at_quarter is not None:
        at, eta = eta_at_quarter
        true_left = finished - at
        result.update({"eta_at_quarter_s": eta, "true_left_at_quarter_s": true_left,
                       "eta_error_at_quarter": abs(eta - true_left) / true_left})
    return result


def _other_key(web: str, queued_ms: list[float], stop: threading.Event,
               image: bytes | None = None) -> None:
    """One batch-lane job every half second until `stop`: each one's queue time."""
    image = image or workload.jpegs("500x375", 1)[0]
    with requests.Session() as session:
        while not stop.wait(0.5):
            job = session.post(f"{web}/jobs", data=image,
                               headers={"Content-Type": "image/jpeg"}, timeout=60).json()

            def record(job_id=job["id"]):
                done = session.get(f"{web}/jobs/{job_id}?wait=60", timeout=90).json()
                if done["status"] == "succeeded":
                    queued_ms.append(done["result"]["timing_ms"]["queued"])

            threading.Thread(target=record, daemon=True).start()


def alone_queue_times(web: str, seconds: float) -> list[float]:
    queued: list[float] = []
    stop = threading.Event()
    thread = threading.Thread(target=_other_key, args=(web, queued, stop), daemon=True)
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join()
    await_condition(lambda: drained(web), 120, "the single jobs")
    return queued


def measure(web: str, redis_url: str, items: int, model_batch: int = BATCH_SIZE) -> dict:
    images = workload.jpegs("500x375", 16)
    server, base = serve_images(images)
    urls = [f"{base}/{i}.jpg" for i in range(items)]
    client = redis.Redis.from_url(redis_url)
    try:
        idle_memory = int(client.info("memory")["used_memory"])
        print(f"[batches] {items} URLs as separate jobs ...", flush=True)
        with MemorySampler(redis_url) as memory:
            jobs = separate_jobs(web, urls)
        jobs["redis_peak_above_idle_mb"] = (memory.peak - idle_memory) / 2**20
        print("[batches] single jobs with no batch running ...", flush=True)
        alone = alone_queue_times(web, 15 if items >= 1000 else 5)
        print(f"[batches] {items} URLs as one batch ...", flush=True)
        idle_memory = int(client.info("memory")["used_memory"])
        with MemorySampler(redis_url) as memory:
            batch = one_batch(web, urls)
        batch["redis_peak_above_idle_mb"] = (memory.peak - idle_memory) / 2**20
        beside_items = max(200, items // 5)
        print(f"[batches] {beside_items} URLs as one batch, single jobs beside it ...",
              flush=True)
        beside: list[float] = []
        one_batch(web, urls[:beside_items], beside)
        await_condition(lambda: drained(web), 120, "the single jobs")
    finally:
        server.shutdown()
    p95_alone = float(np.percentile(alone, 95)) if alone else float("nan")
    p95_beside = float(np.percentile(beside, 95)) if beside else float("nan")
    # What "behind at most BATCH_INFLIGHT items" comes to: those items and the model
    # batch already running, at the batch's own rate.
    bound_ms = (INFLIGHT + model_batch) / batch["images_per_s"] * 1000
    return {
        "separate_jobs": jobs, "batch": batch, "batch_inflight": INFLIGHT,
        "other_key_queued_ms": {"alone_p95": p95_alone, "beside_batch_p95": p95_beside,
                                "bound_inflight_plus_one_model_batch": bound_ms,
                                "alone_n": len(alone), "beside_n": len(beside)},
        "ratios": {
            "batch / separate jobs images/s": batch["images_per_s"] / jobs["images_per_s"],
            "first progress event ms": batch["first_event_ms"],
            "eta error at 25 %": batch.get("eta_error_at_quarter"),
            "other key's queue p95 ms, alone": p95_alone,
            "other key's queue p95 ms, beside a batch": p95_beside,
            "other key's queue p95 beside a batch / (BATCH_INFLIGHT + a model batch) time":
                p95_beside / bound_ms,
            "redis peak above idle MB, batch / separate jobs":
                batch["redis_peak_above_idle_mb"] / max(jobs["redis_peak_above_idle_mb"], 1e-9),
        },
    }


def run(work: Path, items: int, env: dict) -> dict:
    """A Redis, gunicorn and one worker of their own (the default engine)."""
    env = {"URL_FETCH_ALLOW_NETWORKS": "127.0.0.1/32", "URL_FETCH_ALLOW_PORTS": "any",
           "BATCH_INFLIGHT": INFLIGHT, **env}
    with redis_server(work / "redis-batches") as redis_url:
        web_proc, web = start_gunicorn(redis_url, QUEUE, work / "web-batches.log",
                                       RATE_LIMIT="", WEB_THREADS=64, QUEUE_MAX_LENGTH=100_000,
                                       QUEUE_MAX_BYTES=0,  # separate jobs hold every image
                                       BATCH_MAX_ITEMS=max(10_000, items), **env)
        worker = start_worker(redis_url, QUEUE, work / "worker-batches.log", **env)
        try:
            return measure(web, redis_url, items, int(env.get("BATCH_MAX_SIZE", BATCH_SIZE)))
        finally:
            worker.stop()
            web_proc.stop()


def main() -> None:
    report.run_alone(__doc__, "batches", ("items", 10_000, 200), run,
                     {"MODEL_WEIGHTS": "random", "BATCH_MAX_SIZE": BATCH_SIZE})


if __name__ == "__main__":
    main()
