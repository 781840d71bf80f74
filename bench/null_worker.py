"""`python -m bench.null_worker`: the real worker (`python -m worker`: Celery, the job
store, the heartbeat, the sweeper, webhooks) with the model taken out of the way:
every image is "classified" at once with a fixed prediction, with no decode and no
forward pass. For measuring what the queue, the web tier and Redis carry on their
own (`bench/redis_capacity.py`); never for a deployment."""

import sys

import worker.runtime
from worker.__main__ import main
from worker.classifier import Classification

MODEL = {"name": "resnet50", "weights": "none", "precision": "none", "engine": "none"}


class _NoBatcher:
    def stalled_seconds(self) -> None:
        return None


class NullClassifier:
    """What `worker.classifier.Classifier` answers, at no cost."""

    batcher = _NoBatcher()

    def classify(self, data: bytes, top_k: int, **_) -> Classification:
        return Classification(predictions=[{"label": "tabby", "class_id": 281, "score": 1.0}],
                              model=MODEL, preprocess_ms=0.0, inference_ms=0.0, batch_size=1)


worker.runtime.build_classifier = lambda settings: NullClassifier()

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
