"""Measurements in one process, no queue and no HTTP: the seed-style baseline, and
for an engine the pipeline ceiling of resq's own decode, crop and model, and the
model alone."""

from __future__ import annotations

import statistics
import time

import numpy as np

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


def pipeline(images: list[bytes], engine, max_batch: int, seconds: float) -> dict:
    """resq's decode + crop + `engine` (same precision, batch and graph as the service)
    at full batches: images/s, CPU per image, and the latency of one image."""
    limit = 10**9
    batch = (images * max_batch)[:max_batch]

    def one_batch():
        engine.infer(np.stack([preprocess(data, limit) for data in batch]))

    rate = _images_per_second(one_batch, len(batch), seconds)
    latencies = []
    engine.infer(preprocess(images[0], limit)[None])
    for data in (images * 4)[: max(5, len(images))]:
        started = time.perf_counter()
        engine.infer(preprocess(data, limit)[None])
        latencies.append((time.perf_counter() - started) * 1000)
    return {**rate, "latency_ms_1_image": statistics.median(latencies)}


def model_only(images: list[bytes], engine, max_batch: int, seconds: float) -> float:
    """`engine` alone on one full batch of already cropped images."""
    crops = np.stack([preprocess(data, 10**9) for data in (images * max_batch)[:max_batch]])
    return _images_per_second(lambda: engine.infer(crops), len(crops), seconds)["images_per_s"]
