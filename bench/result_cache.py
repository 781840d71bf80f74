"""`python -m bench.result_cache [--images N] [--quick]`: the result cache's figures
(issue #27), each within this one run, part of `make bench`:

- `half repeated, cache on / off images/s`: 2N uploads where each of N images comes
  twice (in a shuffled order), sent by 16 clients that wait for each result, through
  a web tier and one worker with `RESULT_CACHE=per-key`, against the same with it off;
- `hit latency p50 ms` (and p95): a single client's `POST /jobs` of an image already
  cached, answered by the web tier without queueing it.
"""

from __future__ import annotations

import io
import itertools
import random
import threading
import time
from pathlib import Path

import numpy as np
import requests

from bench import report, workload
from bench.load import run_in_threads
from bench.photos import encode
from bench.stack import redis_server, start_gunicorn, start_worker

CLIENTS = 16


def distinct_images(count: int) -> list[bytes]:
    """`count` different JPEGs of 500×375 (the same photos, each a little changed)."""
    from PIL import Image

    base = workload.jpegs("500x375", 8)
    images = []
    for index in range(count):
        photo = Image.open(io.BytesIO(base[index % len(base)])).convert("RGB")
        photo.putpixel((index // len(base) % 500, 0), (index % 256, 0, 0))
        images.append(encode(photo, "JPEG", quality=90))
    return images


def drive(web: str, sequence: list[bytes]) -> dict:
    """The images in order, CLIENTS at a time, each waiting for its result."""
    counter = itertools.count()
    lock = threading.Lock()
    done, cached, failures = [0], [0], []

    def client():
        with requests.Session() as session:
            while (index := next(counter)) < len(sequence):
                answer = session.post(f"{web}/jobs?wait=120", data=sequence[index],
                                      headers={"Content-Type": "image/jpeg"}, timeout=180)
                job = answer.json()
                with lock:
                    if answer.status_code == 200 and job.get("status") == "succeeded":
                        done[0] += 1
                        cached[0] += bool(job["result"].get("cached"))
                    else:
                        failures.append(answer.status_code)

    began = time.perf_counter()
    run_in_threads(client, CLIENTS)
    elapsed = time.perf_counter() - began
    return {"requests": len(sequence), "succeeded": done[0], "cached": cached[0],
            "failures": len(failures), "seconds": elapsed, "images_per_s": done[0] / elapsed}


def hit_latency(web: str, image: bytes, count: int) -> dict:
    times = []
    with requests.Session() as session:
        for _ in range(count):
            sent = time.perf_counter()
            job = session.post(f"{web}/jobs", data=image, headers={"Content-Type": "image/jpeg"},
                               timeout=30).json()
            times.append((time.perf_counter() - sent) * 1000)
            assert job["result"]["cached"], job
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
            "count": count}


def one_stack(work: Path, name: str, cache: str, sequence: list[bytes], env: dict,
              hits: int = 0) -> dict:
    env = {**env, "RESULT_CACHE": cache}
    with redis_server(work / f"redis-{name}") as redis_url:
        web_proc, web = start_gunicorn(redis_url, f"bench-{name}", work / f"web-{name}.log",
                                       RATE_LIMIT="", WEB_THREADS=64, **env)
        worker = start_worker(redis_url, f"bench-{name}", work / f"worker-{name}.log", **env)
        try:
            result = drive(web, sequence)
            if hits:
                result["hit_latency"] = hit_latency(web, sequence[0], hits)
            return result
        finally:
            worker.stop()
            web_proc.stop()


def run(work: Path, images: int, env: dict) -> dict:
    distinct = distinct_images(images)
    sequence = distinct * 2
    random.Random(27).shuffle(sequence)
    print(f"[result cache] {2 * images} uploads, each image twice, cache off ...", flush=True)
    off = one_stack(work, "cache-off", "off", sequence, env)
    print(f"[result cache] {2 * images} uploads, each image twice, cache on ...", flush=True)
    on = one_stack(work, "cache-on", "per-key", sequence, env, hits=200)
    return {"off": off, "on": on, "ratios": {
        "half repeated, cache on / off images/s": on["images_per_s"] / off["images_per_s"],
        "hit latency p50 ms": on["hit_latency"]["p50_ms"],
        "hit latency p95 ms": on["hit_latency"]["p95_ms"],
    }}


def main() -> None:
    report.run_alone(__doc__, "result_cache", ("images", 300, 60), run,
                     {"MODEL_WEIGHTS": "random", "BATCH_MAX_SIZE": 8})


if __name__ == "__main__":
    main()
