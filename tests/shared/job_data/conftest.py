"""A job store per test, on the session's real Redis (a queue of its own), or on a
private one (`small_redis`, tests/conftest.py) with a small `maxmemory`."""

import uuid

import pytest
import redis

from shared.celery_app import make_celery
from shared.job_data.store import JobStore
from tests.conftest import make_settings

RESULT = {"predictions": [{"label": "tabby", "class_id": 281, "score": 0.5}],
          "model": {"name": "resnet50", "weights": "random", "precision": "fp32",
                    "engine": "torch"},
          "timing_ms": {"queued": 1.0, "preprocess": 1.0, "inference": 1.0, "total": 3.0}}


def make_store(url: str, queue: str | None = None, ttl: int = 3600) -> JobStore:
    queue = queue or f"data-{uuid.uuid4().hex[:8]}"
    settings = make_settings(url, queue_name=queue)
    return JobStore(redis.Redis.from_url(url), make_celery(settings), queue=queue,
                    ttl_seconds=ttl)


@pytest.fixture()
def store(redis_url):
    made = make_store(redis_url)
    yield made
    made.client.close()

