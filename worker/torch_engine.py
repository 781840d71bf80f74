"""The torch engine: torchvision's ResNet50 in eager mode or compiled ahead of time
(torch.export + AOTInductor, `worker.compiled`), normalising each batch itself.
Kept for machines where OpenVINO does not load, and for GPU work later."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worker.compiled import CompiledModelCache
from worker.engine import model_info
from worker.model import LoadedModel, load_model
from worker.preprocess import normalise
from worker.settings import WorkerSettings
from worker.weights import resolve_weights, weights_identity


@dataclass
class TorchEngine:
    model: LoadedModel
    compile_seconds: float
    name: str = "torch"

    @property
    def precision(self) -> str:
        return self.model.precision

    @property
    def weights_name(self) -> str:
        return self.model.weights_name

    @property
    def compiled(self) -> bool:
        return self.model.compiled

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels

    @property
    def load_seconds(self) -> float:
        return self.model.load_seconds

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.model.logits(torch.from_numpy(normalise(batch))).numpy()

    def info(self) -> dict:
        return model_info(self)


def load_torch_engine(settings: WorkerSettings, precision: str, threads: int) -> TorchEngine:
    if precision == "int8":
        raise ValueError("int8 runs on the OpenVINO engine only")
    torch.set_num_threads(threads)
    source = resolve_weights(settings.model_weights, download=False)
    cache = None
    compiler = None
    if settings.model_compile:
        cache = CompiledModelCache(settings.compile_cache_dir, weights_identity(source),
                                   settings.batch_max_size)
        compiler = cache.compiler(precision)
    model = load_model(source, precision, compiler=compiler)
    seconds = cache.compile_seconds if (cache is not None and model.compiled) else 0.0
    return TorchEngine(model=model, compile_seconds=seconds)
