"""`python -m worker.bake`: what the worker image runs at build time. It downloads
the weights into `TORCH_HOME` and builds the runtime once, which converts the model
for `MODEL_ENGINE` and `MODEL_PRECISION` into `COMPILE_CACHE_DIR` (OpenVINO's IR,
int8 quantization included); a pod then starts without the network and without
torch."""

from __future__ import annotations

import sys

from shared.log_format import configure
from worker.settings import WorkerSettings


def main() -> int:
    settings = WorkerSettings.or_exit("resq bake")
    configure(settings.log_level, settings.log_format)
    from worker.runtime import build_classifier
    from worker.weights import resolve_weights

    resolve_weights(settings.model_weights, download=True)
    build_classifier(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
