"""Measurements in one process, no queue and no HTTP: the seed-style baseline, and
for an engine the pipeline ceiling of resq's own decode, crop and model (the
worker's batcher, fed by as many job threads as a worker holds jobs), and the model
alone."""

from __future__ import annotations

import itertools
import statistics
import threading
import time

import numpy as np

from bench.load import run_in_threads
from worker.preprocess import normalise, preprocess
from worker.weights import WeightsSource


def _images_per_second(run_one_round, images_per_round: int, seconds: float) -> dict:
    """Rate of `run_one_round`, and this process's CPU seconds per image meanwhile."""
    run_one_round()  # warm-up
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        run_one_round()
        done += images_per_round
    elapsed = time.perf_counter() - started
    return {"images_per_s": done / elapsed, "cpu_s_per_image": (time.process_time() - cpu) / done}


def seed_baseline(images: list[bytes], source: WeightsSource, seconds: float) -> float:
    """torch, fp32, eager, batch 1, full decode, one image at a time."""
    import torch

    from worker.model import load_model

    model = load_model(source, "fp32")
    limit = 10**9

    def one_round():
        for data in images:
            model.logits(torch.from_numpy(normalise(preprocess(data, limit, draft=False)[None])))

    return _images_per_second(one_round, len(images), seconds)["images_per_s"]


def pipeline(images: list[bytes], engine, settings, threads: int, seconds: float) -> dict:
    """resq's decode + crop + `engine` as a worker runs them (its batch runner and
    batcher, overlap included, `settings.jobs_in_flight` job threads each handing it
    one image after another): images/s, CPU per image, and the latency of one image."""
    from worker.batching import Batcher
    from worker.runtime import batch_pipeline

    batcher = Batcher(batch_pipeline(engine, settings, threads),
                      max_size=settings.batch_max_size,
                      max_wait_seconds=settings.batch_max_wait_ms / 1000,
                      overlap=settings.batch_overlap)
    try:
        def classify(data: bytes) -> None:
            with batcher.slot() as slot:
                future = slot.submit(data)
            future.result(timeout=120)

        def one_round() -> None:
            jobs = itertools.cycle(images)
            lock = threading.Lock()
            left = [settings.jobs_in_flight * 4]

            def job_thread() -> None:
                while True:
                    with lock:
                        if left[0] == 0:
                            return
                        left[0] -= 1
                        data = next(jobs)
                    classify(data)

            run_in_threads(job_thread, settings.jobs_in_flight)

        rate = _images_per_second(one_round, settings.jobs_in_flight * 4, seconds)
        latencies = []
        for data in (images * 4)[: max(5, len(images))]:
            started = time.perf_counter()
            classify(data)
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        batcher.stop()
    return {**rate, "latency_ms_1_image": statistics.median(latencies)}


def model_only(images: list[bytes], engine, max_batch: int, seconds: float) -> float:
    """`engine` alone on one full batch of already cropped images."""
    crops = np.stack([preprocess(data, 10**9) for data in (images * max_batch)[:max_batch]])
    return _images_per_second(lambda: engine.infer(crops), len(crops), seconds)["images_per_s"]
