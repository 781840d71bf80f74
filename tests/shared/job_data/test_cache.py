"""The result cache's entries against a real Redis (shared/job_data/cache.py): kept for
their TTL, listed for the memory budget, and dropped before any job's result when new
work needs the room; the scopes keep keys apart."""

from shared.job_data.budget import HEADROOM
from shared.job_data.cache import CACHED_PREDICTIONS, ResultCache, image_digest, scope_of
from shared.settings import ResultCacheScope
from tests.shared.job_data.conftest import make_store
from tests.shared.job_data.test_budget import end_jobs

PREDICTIONS = [{"label": f"class {i}", "class_id": i, "score": 0.01} for i in range(30)]
MODEL = {"name": "resnet50", "weights": "random", "precision": "fp32", "engine": "openvino"}


def test_an_entry_keeps_the_top_20_under_its_model_scope_and_image(store):
    cache = ResultCache(store.client, store.queue, ttl_seconds=60)
    digest = image_digest(b"an image")
    cache.put("model-a", "key-alice", digest, PREDICTIONS, MODEL)
    entry = cache.get("model-a", "key-alice", digest)
    assert len(entry["predictions"]) == CACHED_PREDICTIONS and entry["model"] == MODEL
    assert cache.get("model-b", "key-alice", digest) is None  # another model: no entry
    assert cache.get("model-a", "key-bob", digest) is None  # another key: none either
    assert 0 < store.client.ttl(store.keys.cache_entry("model-a", "key-alice", digest)) <= 60


def test_the_scope_follows_the_setting():
    assert scope_of(ResultCacheScope.PER_KEY, "alice") != scope_of(ResultCacheScope.PER_KEY, "bob")
    assert scope_of(ResultCacheScope.SHARED, "alice") == scope_of(ResultCacheScope.SHARED, "bob")
    assert scope_of(ResultCacheScope.OFF, "alice") is None


def test_new_work_drops_cached_results_before_any_jobs_result(small_redis):
    url, client = small_redis
    client.config_set("maxmemory", "3mb")
    store = make_store(url)
    cache = ResultCache(client, store.queue, ttl_seconds=3600)
    ended = end_jobs(store, 20)
    filled = 0
    while client.info("memory")["used_memory"] < client.info("memory")["maxmemory"] * (
            1 - HEADROOM) - 20_000:
        cache.put("model-a", "shared", image_digest(str(filled).encode()), PREDICTIONS, MODEL)
        filled += 1
    ended += end_jobs(store, 30)  # creates that need room
    assert store.budget.dropped_total() == 0  # no job's result went ...
    assert all(store.record(job_id) is not None for job_id in ended)
    left = sum(1 for i in range(filled) if cache.get(
        "model-a", "shared", image_digest(str(i).encode())))
    assert left < filled  # ... cached ones did, oldest first
    assert cache.get("model-a", "shared", image_digest(str(filled - 1).encode()))
