"""`python -m bench [--quick] [--out DIR]`: measure resq on this machine.

In one run, on the same machine: the seed-style baseline in process; then for each
engine and precision (OpenVINO at auto, fp32 and int8; torch at auto) the worker's
cold start without and with its model cache, the real stack (redis-server,
gunicorn, `python -m worker`) under 1, 4, 16 and 64 concurrent clients submitting
1600x1200 JPEGs (plus 500x375 and 4000x3000 for the default engine), the pipeline
ceiling and the model alone in process, and the CPU a job costs outside decode and
the model; then a 10,000-image batch against the same images as separate jobs
(`bench.batches`), and a workload where half the images repeat, with the result cache
on and off (`bench.result_cache`). `--quick` checks the default engine only, a
200-image batch and 60 images sent twice.
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

import redis
import requests

from bench import batches, inprocess, lanes, load, report, result_cache, workload
from bench.cpu import ServiceCpu
from bench.stack import await_condition, redis_server, start_gunicorn, start_worker
from shared.capacity import usable_cores
from worker.precision import cpu_flags
from worker.settings import ModelEngine, Precision, WorkerSettings
from worker.weights import resolve_weights

NOTABLE_FLAGS = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16",
                           "amx_int8", "amx_tile", "avx_vnni"})


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()

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


ENGINES = (("openvino", "auto"), ("torch", "auto"), ("openvino", "fp32"),
           ("openvino", "int8"))
DEFAULT = ("openvino", "auto")
QUEUE = "bench"


def measure_engine(name: str, setting: str, *, web: str, redis_url: str, work: Path,
                   images: dict, env: dict, settings, sweep_levels, seconds: float,
                   web_pid: int, redis_pid: int, sizes: bool) -> dict:
    """One engine at one precision: cold starts (building its model, then from the
    cache), end to end under each concurrency, the pipeline ceiling and the model
    alone in process, and the CPU a job costs outside decode and the model."""
    from worker.engine import load_engine
    from worker.runtime import torch_threads

    main_images = images["1600x1200"]
    env = {**env, "MODEL_ENGINE": name, "MODEL_PRECISION": setting}
    queue = QUEUE  # the web tier's: one worker at a time serves it
    row: dict = {"engine": name, "precision_setting": setting}
    if settings.model_compile:
        print(f"[{name} {setting}] cold start, building its model ...", flush=True)
        worker, row["cold_start_uncached_s"] = cold_start(web, redis_url, queue, work, env,
                                                          main_images[0])
        worker.stop()
    print(f"[{name} {setting}] cold start with its cache ...", flush=True)
    worker, row["cold_start_s"] = cold_start(web, redis_url, queue, work, env, main_images[0])
    cpu = ServiceCpu(web_pid, redis_pid, worker.pid)
    try:
        sweep = []
        for clients in sweep_levels:
            print(f"[{name} {setting}] end to end, {clients} clients ...", flush=True)
            before = cpu.seconds()
            result = load.drive(web, main_images, clients, seconds, min_requests=2 * clients)
            result["cpu_ms_per_job"] = (cpu.seconds() - before) * 1000 / max(1, result["requests"])
            sweep.append(result)
        row["sweep_1600x1200"] = sweep
        if sizes:
            for size in ("500x375", "4000x3000"):
                print(f"[{name} {setting}] end to end, {size} ...", flush=True)
                row[f"e2e_{size}"] = load.drive(web, images[size], sweep_levels[-1], seconds,
                                                min_requests=sweep_levels[-1])
    finally:
        worker.stop()

    print(f"[{name} {setting}] pipeline ceiling and model alone, in process ...", flush=True)
    engine_settings = settings.model_copy(update={"model_engine": ModelEngine(name),
                                                  "model_precision": Precision(setting)})
    engine = load_engine(engine_settings, torch_threads(engine_settings))
    max_batch = settings.batch_max_size
    pipe = inprocess.pipeline(main_images, engine, engine_settings,
                              torch_threads(engine_settings), seconds)
    model = inprocess.model_only(main_images, engine, max_batch, seconds)
    best = max(sweep, key=lambda r: r["images_per_s"])
    outside = best["cpu_ms_per_job"] - pipe["cpu_s_per_image"] * 1000
    row.update({
        "engine": engine.name, "precision": engine.precision,
        "e2e_images_per_s": best["images_per_s"], "e2e_best_concurrency": best["concurrency"],
        "pipeline_ceiling_images_per_s": pipe["images_per_s"],
        "pipeline_latency_ms_1_image": pipe["latency_ms_1_image"],
        "model_only_images_per_s": model,
        "wait_p50_ms_1_client": sweep[0]["p50_ms"], "wait_p95_ms_1_client": sweep[0]["p95_ms"],
        "wait_p99_ms_1_client": sweep[0]["p99_ms"],
        "cpu_ms_per_job": best["cpu_ms_per_job"],
        "decode_and_model_cpu_ms_per_image": pipe["cpu_s_per_image"] * 1000,
        "cpu_outside_decode_and_model_share": max(0.0, outside) / best["cpu_ms_per_job"],
        "e2e / pipeline ceiling": best["images_per_s"] / pipe["images_per_s"],
        "e2e / model only": best["images_per_s"] / model,
        "failures": sum(r["failures"] for r in sweep),
    })
    del engine
    return row


def measure_lanes(web: str, redis_url: str, work: Path, images: dict, env: dict,
                  quick: bool) -> dict:
    """The default engine's worker behind a backlog: waits through the interactive
    lane, then the CPU an expired job costs it (`bench.lanes`)."""
    name, setting = DEFAULT
    worker = start_worker(redis_url, QUEUE, work / "lanes-worker.log",
                          **{**env, "MODEL_ENGINE": name, "MODEL_PRECISION": setting})
    try:
        print(f"[lanes] {50 if quick else 1000} batch jobs queued, then a wait a second ...",
              flush=True)
        waits = lanes.interactive_under_backlog(web, images["1600x1200"],
                                                50 if quick else 1000, 3 if quick else 20,
                                                redis_url, QUEUE)
        await_condition(lambda: requests.get(f"{web}/scaling", timeout=5).json()["open"] == 0,
                        600, "the backlog to drain")
        print(f"[lanes] {50 if quick else 1000} jobs past their deadline ...", flush=True)
        expired = lanes.expired_cost(web, images["500x375"][0], 50 if quick else 1000,
                                     redis_url, QUEUE, worker.pid, worker.node)
    finally:
        worker.stop()
    return {"interactive_under_backlog": waits, "expired": expired}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="a short run that checks the benchmark works (no compile cache, "
                             "the default engine only)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    quick = args.quick
    seconds = 2.0 if quick else 12.0
    sweep_levels = (1, 4) if quick else (1, 4, 16, 64)
    max_batch = int(os.environ.get("BATCH_MAX_SIZE", "8"))
    weights = os.environ.get("MODEL_WEIGHTS", "random")
    compile_model = not quick and os.environ.get("MODEL_COMPILE", "true").lower() != "false"
    source = resolve_weights(weights, download=False)
    work = Path(tempfile.mkdtemp(prefix="resq-bench-"))
    cache_dir = work / "compiled"
    threads = os.environ.get("TORCH_THREADS", "0")
    settings = WorkerSettings.load(model_weights=weights, batch_max_size=max_batch,
                             model_compile=compile_model, compile_cache_dir=cache_dir,
                             torch_threads=int(threads))
    images = {size: workload.jpegs(size, 4 if quick else 8) for size in workload.SIZES}
    env = {"MODEL_WEIGHTS": weights, "BATCH_MAX_SIZE": max_batch,
           "MODEL_COMPILE": str(compile_model).lower(), "COMPILE_CACHE_DIR": cache_dir,
           "TORCH_THREADS": threads}
    results: dict = {"max_batch": max_batch, "compiled": compile_model,
                     "weights": source.name, "quick": quick, "cores": usable_cores(),
                     "machine": platform.processor() or platform.machine(),
                     "cpu": cpu_model(), "cpu_flags": sorted(cpu_flags() & NOTABLE_FLAGS)}
    began = time.perf_counter()

    print("seed baseline (torch fp32, eager, batch 1, full decode, one at a time) ...",
          flush=True)
    results["seed_baseline_images_per_s"] = inprocess.seed_baseline(
        images["1600x1200"], source, seconds)

    engines = {}
    with redis_server(work / "redis") as redis_url:
        web_proc, web = start_gunicorn(redis_url, QUEUE, work / "web.log",
                                       WEB_THREADS=64, WAIT_MAX_SECONDS=120)
        redis_pid = redis.Redis.from_url(redis_url).info("server")["process_id"]
        try:
            for name, setting in ([DEFAULT] if quick else ENGINES):
                engines[f"{name}-{setting}"] = measure_engine(
                    name, setting, web=web, redis_url=redis_url, work=work, images=images,
                    env=env, settings=settings, sweep_levels=sweep_levels, seconds=seconds,
                    web_pid=web_proc.pid, redis_pid=redis_pid, sizes=(name, setting) == DEFAULT)
            results["lanes"] = measure_lanes(web, redis_url, work, images, env, quick)
        finally:
            web_proc.stop()

    print("[batches] a batch against the same images as separate jobs ...", flush=True)
    results["batches"] = batches.run(work, 200 if quick else 10_000,
                                     {**env, "MODEL_ENGINE": DEFAULT[0],
                                      "MODEL_PRECISION": DEFAULT[1]})

    print("[result cache] half the images repeated, cache on and off ...", flush=True)
    results["result_cache"] = result_cache.run(work, 60 if quick else 300,
                                               {**env, "MODEL_ENGINE": DEFAULT[0],
                                                "MODEL_PRECISION": DEFAULT[1]})

    default = engines["-".join(DEFAULT)]
    # The default engine's figures also under the flat keys of earlier results.
    for key in ("engine", "precision", "cold_start_s", "cold_start_uncached_s",
                "sweep_1600x1200", "e2e_500x375", "e2e_4000x3000", "e2e_images_per_s",
                "e2e_best_concurrency", "pipeline_ceiling_images_per_s",
                "pipeline_latency_ms_1_image", "model_only_images_per_s",
                "wait_p50_ms_1_client", "wait_p95_ms_1_client", "wait_p99_ms_1_client",
                "failures"):
        if key in default:
            results[key] = default[key]
    results["engines"] = engines
    results["bench_seconds"] = time.perf_counter() - began
    results["ratios"] = report.ratios(results)
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(results, args.out / "latest.json")
    report.plot(default["sweep_1600x1200"], default["pipeline_ceiling_images_per_s"],
                results["seed_baseline_images_per_s"], args.out / "latest.png",
                f"resq, 1600x1200 JPEGs, {default['engine']} {default['precision']}, "
                f"batch {max_batch}, {results['cores']} cores")
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.png'}")
    report.print_ratios(results)


if __name__ == "__main__":
    main()
