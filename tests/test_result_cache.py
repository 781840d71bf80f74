"""The result cache end to end (issue #27): real gunicorn, a real worker and Redis. The
same bytes classified again by the same model are answered from the cache (no decode,
no model: `cached: true`), within one API key's jobs by default and across keys only
with `RESULT_CACHE=shared`; another model never reads an entry; a URL job hits after
its fetch."""

import uuid
from contextlib import contextmanager

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.stack import await_condition, start_gunicorn, start_worker
from shared.job_data.cache import image_digest
from shared.job_data.keys import QueueKeys
from tests.support.http_server import serve
from tests.support.images import jpeg
from tests.support.webhook_receiver import WEBHOOK_ENV, Receiver

pytestmark = pytest.mark.processes

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef00"


@contextmanager
def stack(redis_url, tmp_path_factory, scope: str):
    """gunicorn and one worker on a queue of their own, with `RESULT_CACHE=scope`: the
    base URL and the queue."""
    queue = f"cache-{scope}-{uuid.uuid4().hex[:6]}"
    logs = tmp_path_factory.mktemp(f"cache-{scope}")
    env = {"RESULT_CACHE": scope, "API_KEYS": f"{ALICE},{BOB}", **WEBHOOK_ENV,
           "URL_FETCH_ALLOW_NETWORKS": "127.0.0.1/32", "URL_FETCH_ALLOW_PORTS": "any"}
    worker = start_worker(redis_url, queue, logs / "worker.log", **env)
    web, base = start_gunicorn(redis_url, queue, logs / "web.log", RATE_LIMIT="", **env)
    try:
        yield base, queue
    finally:
        web.stop()
        worker.stop()


@pytest.fixture(scope="module")
def per_key(redis_url, tmp_path_factory):
    with stack(redis_url, tmp_path_factory, "per-key") as running:
        yield running


@pytest.fixture(scope="module")
def shared(redis_url, tmp_path_factory):
    with stack(redis_url, tmp_path_factory, "shared") as running:
        yield running


def classify(base: str, image: bytes, key: str, top_k: int = 5) -> dict:
    answer = requests.post(f"{base}/jobs", params={"wait": 60, "top_k": top_k}, data=image,
                           headers={"Content-Type": "image/jpeg",
                                    "Authorization": f"Bearer {key}"}, timeout=90)
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["status"] == "succeeded", job
    return job["result"]


def test_the_same_image_again_is_answered_from_the_cache_for_any_top_k(per_key):
    base, _ = per_key
    image = jpeg(200, 150, "chelsea")
    first = classify(base, image, ALICE)
    assert first["cached"] is False and first["timing_ms"]["inference"] > 0
    again = classify(base, image, ALICE)
    assert again["cached"] is True
    assert again["predictions"] == first["predictions"] and again["model"] == first["model"]
    assert again["timing_ms"]["preprocess"] == again["timing_ms"]["inference"] == 0
    fewer, more = classify(base, image, ALICE, top_k=2), classify(base, image, ALICE, top_k=20)
    assert fewer["cached"] and fewer["predictions"] == first["predictions"][:2]
    assert more["cached"] and len(more["predictions"]) == 20
    assert more["predictions"][:5] == first["predictions"]
    other = classify(base, jpeg(200, 150, "rocket"), ALICE)
    assert other["cached"] is False  # another image: a miss


def test_per_key_one_key_never_reads_anothers_entries(per_key):
    base, _ = per_key
    image = jpeg(180, 120, "coffee")
    assert classify(base, image, ALICE)["cached"] is False
    assert classify(base, image, BOB)["cached"] is False  # 0 hits across keys
    assert classify(base, image, BOB)["cached"] is True  # its own entry, now


def test_shared_lets_every_key_reuse_a_result(shared):
    base, _ = shared
    image = jpeg(180, 120, "astronaut")
    assert classify(base, image, ALICE)["cached"] is False
    assert classify(base, image, BOB)["cached"] is True


def test_an_entry_of_another_model_is_never_read(per_key, redis_url):
    base, queue = per_key
    image = jpeg(160, 120, "camera")
    first = classify(base, image, ALICE)
    client = redis.Redis.from_url(redis_url)
    digest = image_digest(image)
    [entry] = client.keys(QueueKeys.cache_entry("*", "*", digest))
    model = entry.decode().split(":")[2]
    # The worker's model identity is in the key: rename the entry as another model's
    # (new weights, engine, precision or preprocessing), and this model no longer has one.
    client.rename(entry, entry.decode().replace(f":{model}:", ":another-model:"))
    again = classify(base, image, ALICE)
    assert again["cached"] is False and again["predictions"] == first["predictions"]


def test_a_url_job_hits_after_its_fetch(per_key):
    base, _ = per_key
    image = jpeg(150, 100, "chelsea")
    assert classify(base, image, ALICE)["cached"] is False
    with serve({"/cat.jpg": (200, "image/jpeg", image)}) as (served, requested):
        answer = requests.post(f"{base}/jobs?wait=60", json={"url": f"{served}/cat.jpg"},
                               headers={"Authorization": f"Bearer {ALICE}"}, timeout=90)
    assert answer.json()["result"]["cached"] is True and requested == ["/cat.jpg"]


def test_an_upload_that_hits_is_created_succeeded_never_queued_and_sends_its_webhook(
        per_key, redis_url):
    base, queue = per_key
    image = jpeg(140, 100, "rocket")
    first = classify(base, image, ALICE)
    assert first["cached"] is False
    client = redis.Redis.from_url(redis_url)
    lists = QueueKeys(queue).lane_lists
    with Receiver() as receiver:
        answer = requests.post(f"{base}/jobs", params={"webhook": receiver.url}, data=image,
                               headers={"Content-Type": "image/jpeg",
                                        "Authorization": f"Bearer {ALICE}"}, timeout=30)
        assert answer.status_code == 200  # no ?wait: it was never anything but done
        await_condition(lambda: receiver.deliveries, 30, "the cached job's webhook")
        [delivery] = receiver.deliveries
    assert delivery["verified"] and delivery["event"] == "completed"
    assert delivery["job"]["result"]["cached"] is True
    job = answer.json()
    assert job["status"] == "succeeded" and job["result"]["cached"] is True
    assert job["result"]["predictions"] == first["predictions"]
    assert job["result"]["timing_ms"]["queued"] == 0
    assert sum(client.llen(name) for name in lists) == 0
    assert requests.get(f"{base}/jobs/{job['id']}", timeout=10,
                        headers={"Authorization": f"Bearer {ALICE}"}).json() == job
    samples = {(s.name, s.labels.get("outcome")): s.value
               for m in text_string_to_metric_families(
                   requests.get(f"{base}/metrics", timeout=10).text) for s in m.samples}
    assert samples[("resq_result_cache_lookups_total", "hit")] >= 1
    assert samples[("resq_result_cache_bytes", None)] > 0
