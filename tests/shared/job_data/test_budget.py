"""The memory budget against a real Redis with a `maxmemory`: a create that needs room
drops the oldest ended jobs first (never a queued or started one, never a webhook
delivery), counts them, and marks their ids as dropped; the worker's trim does the
same when ends alone fill Redis, and clears records that expired by themselves off
the list; without a maxmemory nothing is dropped."""

import time

from shared.job_data.budget import HEADROOM
from shared.job_data.records import JobRecords, new_job_id
from shared.job_data.store import NewJob
from tests.shared.job_data.conftest import RESULT, make_store

BIG_RESULT = {**RESULT, "predictions": RESULT["predictions"] * 20}


def end_jobs(store, n: int, image: bytes = b"i" * 100) -> list[str]:
    """`n` jobs created, started and finished, in that order."""
    ids = []
    for _ in range(n):
        job = NewJob(new_job_id(), image)
        store.create_many([job], top_k=20, form="raw")
        store.start(job.id, "w")
        store.finish(job.id, result=BIG_RESULT)
        ids.append(job.id)
    return ids


def over_the_line(client) -> bool:
    memory = client.info("memory")
    return memory["used_memory"] > memory["maxmemory"] * (1 - HEADROOM)


def test_new_work_drops_the_oldest_results_and_never_live_jobs(small_redis):
    url, client = small_redis
    client.config_set("maxmemory", "3mb")
    store = make_store(url)
    live = NewJob(new_job_id(), b"q" * 1000)
    store.create_many([live], top_k=5, form="raw", webhook="http://127.0.0.1:9/hook")
    started = NewJob(new_job_id(), b"s" * 1000)
    store.create_many([started], top_k=5, form="raw")
    store.start(started.id, "w")
    ended = []
    while store.budget.dropped_total() == 0:  # until a create has had to make room
        ended += end_jobs(store, 10)
        assert len(ended) < 100_000, "no create ever made room"
    dropped = store.budget.dropped_total()
    kept = [job_id for job_id in ended if store.record(job_id) is not None]
    assert len(kept) == len(ended) - dropped
    assert ended[dropped:] == kept  # the oldest went, in the order they ended
    assert store.record(live.id).status.value == "queued"
    assert store.record(started.id).status.value == "started"
    assert not over_the_line(client)
    records = JobRecords(client, 3600, store.queue)
    assert records.dropped(ended[0]) and not records.dropped(kept[-1])
    assert not records.dropped(new_job_id())  # made after the newest dropped
    assert not records.dropped("4f0c6a8e-5b1b-4c8e-9d65-0f1c2d3e4f50")  # not a UUIDv7


def test_the_trim_makes_room_when_ends_alone_fill_redis(small_redis):
    """Ends take Redis past its line with no create to make room (here: jobs ended
    without a limit, then a maxmemory just above what they hold, as when a worker's
    results are bigger than the images it frees), and only the worker's trim can."""
    url, client = small_redis
    store = make_store(url)
    jobs = [NewJob(new_job_id(), b"i") for _ in range(500)]
    store.create_many(jobs, top_k=20, form="raw")
    for job in jobs:
        store.start(job.id, "w")
        store.finish(job.id, result=BIG_RESULT)
    client.config_set("maxmemory", int(client.info("memory")["used_memory"] / 0.95))
    assert over_the_line(client) and store.budget.dropped_total() == 0
    dropped, _ = store.budget.trim()
    assert dropped > 0 and store.record(jobs[0].id) is None and not over_the_line(client)
    assert store.record(jobs[-1].id) is not None
    assert store.budget.trim() == (0, 0)  # under the line: nothing more goes


def test_records_that_expired_by_themselves_leave_the_list_uncounted(redis_url):
    store = make_store(redis_url, ttl=1)
    ended = end_jobs(store, 3)
    time.sleep(1.1)  # past a one-second TTL: the clock is the condition
    assert store.record(ended[0]) is None
    assert store.budget.trim() == (0, 3)
    assert store.client.llen(store.keys.finished) == 0
    assert store.budget.dropped_total() == 0


def test_without_a_maxmemory_nothing_is_dropped(store):
    assert store.client.config_get("maxmemory")["maxmemory"] == "0"
    ended = end_jobs(store, 20)
    assert store.budget.trim() == (0, 0)
    assert all(store.record(job_id) for job_id in ended)
