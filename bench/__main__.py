"""`python -m bench [--quick] [--out DIR]`: measure resq on this machine.

In one run: the seed-style baseline and the pipeline ceiling in process, the
worker's cold start without and with the compiled-model cache, and the real
stack (redis-server, gunicorn, `python -m worker`) under 1, 4, 16 and 64
concurrent clients submitting 1600x1200 JPEGs, plus 500x375 and 4000x3000.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import requests

from bench import inprocess, load, report, workload
from shared.capacity import usable_cores
from shared.settings import Precision
from tests.support.processes import await_condition, redis_server, start_gunicorn, start_worker
from worker.precision import resolve_precision
from worker.weights import resolve_weights

ROOT = Path(__file__).resolve().parents[1]


def cold_start(web: str, redis_url: str, queue: str, logs: Path, env: dict, image: bytes):
    """Seconds from starting `python -m worker` to it taking a job already waiting."""
    job = requests.post(f"{web}/jobs", data=image, headers={"Content-Type": "image/jpeg"},
                        timeout=30).json()
    started = time.time()
    worker = start_worker(redis_url, queue, logs / f"worker-{uuid.uuid4().hex[:6]}.log",
                          wait_ready=False, **env)

    def finished():
        if not worker.alive():
            raise RuntimeError(worker.log()[-2000:])
        body = requests.get(f"{web}/jobs/{job['id']}?wait=5", timeout=30).json()
        return body if body["status"] == "succeeded" else None

    body = await_condition(finished, 600, "first job after a cold start", interval=0)
    taken = body["created_at"] + body["result"]["timing_ms"]["queued"] / 1000
    return worker, taken - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="a short run that checks the benchmark works (no compile)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    quick = args.quick
    seconds = 2.0 if quick else 12.0
    sweep_levels = (1, 4) if quick else (1, 4, 16, 64)
    max_batch = int(os.environ.get("BATCH_MAX_SIZE", "8"))
    weights = os.environ.get("MODEL_WEIGHTS", "random")
    precision = resolve_precision(Precision(os.environ.get("MODEL_PRECISION", "auto")))
    compile_model = not quick and os.environ.get("MODEL_COMPILE", "true").lower() != "false"
    source = resolve_weights(weights, download=False)
    work = Path(tempfile.mkdtemp(prefix="resq-bench-"))
    cache_dir = work / "compiled"
    images = {size: workload.jpegs(size, 4 if quick else 8) for size in workload.SIZES}
    main_images = images["1600x1200"]
    env = {"MODEL_WEIGHTS": weights, "MODEL_PRECISION": precision, "BATCH_MAX_SIZE": max_batch,
           "MODEL_COMPILE": str(compile_model).lower(), "COMPILE_CACHE_DIR": cache_dir,
           "TORCH_THREADS": os.environ.get("TORCH_THREADS", "0")}
    results: dict = {"precision": precision, "max_batch": max_batch, "compiled": compile_model,
                     "weights": source.name, "quick": quick, "cores": usable_cores(),
                     "machine": platform.processor() or platform.machine()}
    began = time.perf_counter()

    print("seed baseline (fp32, eager, batch 1, full decode, one at a time) ...", flush=True)
    results["seed_baseline_images_per_s"] = inprocess.seed_baseline(main_images, source, seconds)

    with redis_server(work / "redis") as redis_url:
        queue = "bench"
        web_proc, web = start_gunicorn(redis_url, queue, work / "web.log",
                                       WEB_THREADS=64, WAIT_MAX_SECONDS=120)
        try:
            if compile_model:
                print("cold start without the compiled-model cache ...", flush=True)
                worker, results["cold_start_uncached_s"] = cold_start(
                    web, redis_url, queue, work, env, main_images[0])
                worker.stop()
            print("cold start with the cache ...", flush=True)
            worker, results["cold_start_s"] = cold_start(web, redis_url, queue, work, env,
                                                         main_images[0])
            try:
                sweep = []
                for clients in sweep_levels:
                    print(f"end to end, {clients} clients ...", flush=True)
                    sweep.append(load.drive(web, main_images, clients, seconds,
                                            min_requests=2 * clients))
                results["sweep_1600x1200"] = sweep
                for size in ("500x375", "4000x3000"):
                    print(f"end to end, {size}, {sweep_levels[-1]} clients ...", flush=True)
                    row = load.drive(web, images[size], sweep_levels[-1], seconds,
                                     min_requests=sweep_levels[-1])
                    results[f"e2e_{size}"] = row
            finally:
                worker.stop()
        finally:
            web_proc.stop()

    print("pipeline ceiling (in process, same precision, batch and graph) ...", flush=True)
    cache = inprocess.compile_cache_for(source, cache_dir, max_batch) if compile_model else None
    pipeline = inprocess.pipeline(main_images, source, precision, max_batch, cache, seconds)
    results["pipeline_ceiling_images_per_s"] = pipeline["images_per_s"]
    results["pipeline_latency_ms_1_image"] = pipeline["latency_ms_1_image"]

    best = max(sweep, key=lambda row: row["images_per_s"])
    one = sweep[0]
    results.update({
        "e2e_images_per_s": best["images_per_s"],
        "e2e_best_concurrency": best["concurrency"],
        "wait_p50_ms_1_client": one["p50_ms"],
        "wait_p95_ms_1_client": one["p95_ms"],
        "wait_p99_ms_1_client": one["p99_ms"],
        "failures": sum(row["failures"] for row in sweep),
        "bench_seconds": time.perf_counter() - began,
    })
    results["ratios"] = report.ratios(results)
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(results, args.out / "latest.json")
    report.plot(sweep, results["pipeline_ceiling_images_per_s"],
                results["seed_baseline_images_per_s"], args.out / "latest.png",
                f"resq, 1600x1200 JPEGs, {precision}, batch {max_batch}, {results['cores']} cores")
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.png'}")
    report.print_ratios(results)


if __name__ == "__main__":
    main()
