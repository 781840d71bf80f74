"""Concurrent clients that submit JPEGs and wait for each result over HTTP."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import requests


def run_in_threads(target, count: int) -> None:
    """`target` in `count` threads at once; returns when every one has."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def drive(base_url: str, images: list[bytes], concurrency: int, seconds: float,
          min_requests: int = 0) -> dict:
    """`concurrency` clients, each submitting one image and waiting for its result
    (`POST /jobs?wait=`), then the next, for `seconds` (and at least `min_requests`
    in all). Returns throughput and wait-latency percentiles."""
    counter = itertools.count()
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    started = time.perf_counter()
    last_done = [started]

    def client():
        session = requests.Session()
        while True:
            index = next(counter)
            if time.perf_counter() - started > seconds and index >= min_requests:
                return
            sent = time.perf_counter()
            try:
                response = session.post(f"{base_url}/jobs?wait=120",
                                        data=images[index % len(images)],
                                        headers={"Content-Type": "image/jpeg"}, timeout=180)
                ok = response.status_code == 200 and response.json()["status"] == "succeeded"
                outcome = None if ok else f"{response.status_code} {response.text[:200]}"
            except requests.RequestException as error:
                outcome = repr(error)
            done = time.perf_counter()
            with lock:
                if outcome is None:
                    latencies.append((done - sent) * 1000)
                    last_done[0] = max(last_done[0], done)
                else:
                    failures.append(outcome)

    run_in_threads(client, concurrency)
    elapsed = last_done[0] - started
    values = np.array(latencies) if latencies else np.array([np.nan])
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "failures": len(failures),
        "failure_examples": failures[:3],
        "images_per_s": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "p99_ms": float(np.percentile(values, 99)),
    }
