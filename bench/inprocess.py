"""Measurements in one process, no queue and no HTTP: the seed-style baseline and
the pipeline ceiling of resq's own decode, preprocessing and model."""

from __future__ import annotations

import statistics
import time

import torch

from worker.compiled import CompiledModelCache
from worker.model import load_model
from worker.preprocess import preprocess
from worker.runtime import weights_identity
from worker.weights import WeightsSource


def _images_per_second(run_one_round, images_per_round: int, seconds: float) -> float:
    run_one_round()  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run_one_round()
        done += images_per_round
    return done / (time.perf_counter() - started)


def seed_baseline(images: list[bytes], source: WeightsSource, seconds: float) -> float:
    """fp32, eager, batch 1, full decode, one image at a time."""
    model = load_model(source, "fp32")
    limit = 10**9

    def one_round():
        for data in images:
            model.logits(preprocess(data, limit, draft=False).unsqueeze(0))

    return _images_per_second(one_round, len(images), seconds)


def pipeline(images: list[bytes], source: WeightsSource, precision: str, max_batch: int,
             compile_cache: CompiledModelCache | None, seconds: float) -> dict:
    """resq's decode + preprocessing + model (same precision, batch and compiled graph
    as the service): images/s at full batches, and the latency of one image."""
    compiler = compile_cache.compiler(precision) if compile_cache else None
    model = load_model(source, precision, compiler=compiler)
    limit = 10**9
    batch = (images * max_batch)[:max_batch]

    def one_batch():
        model.logits(torch.stack([preprocess(data, limit) for data in batch]))

    ceiling = _images_per_second(one_batch, len(batch), seconds)
    latencies = []
    model.logits(preprocess(images[0], limit).unsqueeze(0))
    for data in (images * 4)[: max(5, len(images))]:
        started = time.perf_counter()
        model.logits(preprocess(data, limit).unsqueeze(0))
        latencies.append((time.perf_counter() - started) * 1000)
    return {"images_per_s": ceiling, "latency_ms_1_image": statistics.median(latencies),
            "compiled": model.compiled}


def compile_cache_for(source: WeightsSource, directory, max_batch: int) -> CompiledModelCache:
    return CompiledModelCache(directory, weights_identity(source), max_batch)
