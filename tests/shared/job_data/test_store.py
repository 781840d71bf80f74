"""The job store's scripts, each against a real Redis: CREATE admits a request whole or
not at all, START, FINISH and DISCARD change one job and every count that goes with
it, and all four complete with Redis at its `maxmemory`."""

import json

import pytest
import redis

from shared.errors import JobCancelled, QueueFull, QuotaExceeded
from shared.job_data.lua import Start
from shared.job_data.records import new_job_id
from shared.job_data.store import NewJob
from shared.lanes import Lane
from tests.shared.job_data.conftest import RESULT, make_store
from tests.support.images import jpeg

IMAGE = jpeg(64, 48)


def new_jobs(n: int, image: bytes = IMAGE) -> list[NewJob]:
    return [NewJob(new_job_id(), image) for _ in range(n)]


def counts(store) -> dict:
    keys, client = store.keys, store.client
    return {"open": client.zcard(keys.inflight), "bytes": int(client.get(keys.queued_bytes) or 0),
            "waiting": sum(client.llen(name) for name in keys.lane_lists),
            "callers": {k.decode(): int(client.get(k) or 0)
                        for k in client.smembers(keys.quota_keys)}}


def test_create_writes_every_job_its_index_entry_and_its_counts(store):
    jobs = new_jobs(3)
    records = store.create_many(jobs, top_k=3, form="multipart", quota_key="k", max_per_key=5,
                                lane=Lane.INTERACTIVE)
    assert [r.id for r in records] == [j.id for j in jobs]
    caller = store.keys.quota_counter("k")
    assert counts(store) == {"open": 3, "bytes": 3 * len(IMAGE), "waiting": 3,
                             "callers": {caller: 3}}
    for job in jobs:
        record = store.record(job.id)
        assert (record.status.value, record.top_k, record.lane) == ("queued", 3, "interactive")
        assert store.client.get(store.keys.image(job.id)) == IMAGE
    assert store.client.llen(store.keys.lane_lists[0]) == 3  # the interactive lane


@pytest.mark.parametrize("limit", ["length", "bytes", "quota"])
def test_create_refuses_a_request_whole_and_writes_nothing(store, limit):
    store.create_many(new_jobs(2), top_k=5, form="raw", quota_key="k", max_per_key=4)
    before = counts(store)
    refused = {"length": {"max_queue_length": 3}, "bytes": {"max_queue_bytes": 3 * len(IMAGE)},
               "quota": {"quota_key": "k", "max_per_key": 3}}[limit]
    options = {"quota_key": "k", "max_per_key": 4, **refused}
    error = QuotaExceeded if limit == "quota" else QueueFull
    with pytest.raises(error):
        store.create_many(new_jobs(2), top_k=5, form="raw", **options)
    assert counts(store) == before
    store.create_many(new_jobs(1), top_k=5, form="raw", **options)  # one still fits
    assert counts(store)["open"] == 3


def test_a_job_starts_once_and_its_message_is_dropped_once_it_has_ended(store):
    job = new_jobs(1)[0]
    store.create_many([job], top_k=5, form="raw", quota_key="k", max_per_key=1)
    assert store.start("never-created", "w").decision is Start.UNKNOWN
    started = store.start(job.id, "worker-1")
    assert (started.decision, started.image, started.crashes) == (Start.RUN, IMAGE, 0)
    assert counts(store)["callers"] == {store.keys.quota_counter("k"): 0}  # left the queue
    again = store.start(job.id, "worker-2")  # redelivered: started again, by another
    assert again.decision is Start.RUN and store.record(job.id).status.value == "started"
    assert store.finish(job.id, result=RESULT)
    assert store.start(job.id, "worker-3").decision is Start.TERMINAL


def test_a_queued_job_past_its_deadline_is_not_started(store):
    job = new_jobs(1)[0]
    store.create_many([job], top_k=5, form="raw", deadline_seconds=0.001)
    import time

    time.sleep(0.01)  # past a 1 ms deadline: the clock, not a state, is the condition
    assert store.start(job.id, "w").decision is Start.EXPIRED
    assert store.record(job.id).status.value == "queued"  # left for the caller to end
    assert store.expire(job.id) and store.record(job.id).error["code"] == "expired"


def test_finish_ends_a_job_once_and_keeps_only_what_its_readers_need(store):
    job = new_jobs(1)[0]
    store.create_many([job], top_k=5, form="raw", owner="alice", quota_key="k", max_per_key=2)
    store.start(job.id, "worker-1")
    assert store.finish(job.id, result=RESULT)
    assert not store.finish(job.id, error=JobCancelled())  # the first end is the only one
    ended = json.loads(store.client.get(store.keys.record(job.id)))
    assert set(ended) == {"status", "created_at", "top_k", "result", "finished_at", "owner",
                          "worker"}
    assert (ended["status"], ended["result"], ended["owner"], ended["worker"]) == \
        ("succeeded", RESULT, "alice", "worker-1")
    assert store.client.ttl(store.keys.record(job.id)) > 0
    assert not store.client.exists(store.keys.image(job.id))
    assert store.client.lrange(store.keys.finished, 0, -1) == [job.id.encode()]
    assert counts(store) == {"open": 0, "bytes": 0, "waiting": 1,  # its message, unread
                             "callers": {store.keys.quota_counter("k"): 0}}


def test_cancel_of_a_queued_job_gives_its_quota_and_bytes_back(store):
    job = new_jobs(1)[0]
    store.create_many([job], top_k=5, form="raw", quota_key="k", max_per_key=1)
    assert store.cancel(job.id)
    assert store.record(job.id).error["code"] == "cancelled"
    assert counts(store)["bytes"] == 0 and counts(store)["open"] == 0
    assert counts(store)["callers"] == {store.keys.quota_counter("k"): 0}


def test_the_ends_webhook_carries_the_job_as_it_ended(store):
    job = new_jobs(1)[0]
    store.create_many([job], top_k=5, form="raw", webhook="http://127.0.0.1:9/hook",
                      webhook_events=("started", "completed"))
    store.start(job.id, "w")
    store.finish(job.id, result=RESULT)
    deliveries = [store.outbox.claim(30) for _ in range(2)]
    assert [d.event for d in deliveries] == ["started", "completed"]
    bodies = [json.loads(d.body) for d in deliveries]
    assert bodies[0]["status"] == "started" and "result" not in bodies[0]
    assert bodies[1]["status"] == "succeeded" and bodies[1]["result"] == RESULT
    assert "owner" not in bodies[1] and "worker" not in bodies[1]  # the client's view only


def test_discard_undoes_a_queued_job_and_nothing_else(store):
    queued, started = new_jobs(2)
    store.create_many([queued, started], top_k=5, form="raw", quota_key="k", max_per_key=2)
    store.start(started.id, "w")
    assert store.discard(queued.id) and not store.discard(started.id)
    assert store.record(queued.id) is None
    assert counts(store) == {"open": 1, "bytes": len(IMAGE), "waiting": 2,
                             "callers": {store.keys.quota_counter("k"): 0}}


def fill_to_maxmemory(client: redis.Redis) -> None:
    """Writes data of no job's until Redis refuses writes (noeviction)."""
    with pytest.raises(redis.OutOfMemoryError):
        for n in range(1_000_000):
            client.set(f"filler-{n}", b"x" * 2048)
    with pytest.raises(redis.OutOfMemoryError):  # then small ones, to the last byte
        for n in range(1_000_000):
            client.set(f"small-{n}", b"x")
    with pytest.raises(redis.OutOfMemoryError):
        client.hset("filler-probe", "a", "b")


def test_start_finish_cancel_and_discard_complete_at_maxmemory(small_redis):
    """Redis full of something else, past its maxmemory: each change of a job still
    completes, since each frees before it writes."""
    url, client = small_redis
    client.config_set("maxmemory", "4mb")
    store = make_store(url)
    to_start, to_finish, to_cancel, to_discard = jobs = new_jobs(4)
    store.create_many(jobs, top_k=5, form="raw", quota_key="k", max_per_key=4,
                      webhook="http://127.0.0.1:9/hook", webhook_events=("started", "completed"))
    store.start(to_finish.id, "w")
    fill_to_maxmemory(client)
    assert store.start(to_start.id, "w").decision is Start.RUN
    assert store.finish(to_finish.id, result=RESULT)
    assert store.cancel(to_cancel.id)
    assert store.discard(to_discard.id)
    assert store.record(to_start.id).status.value == "started"
    assert store.record(to_finish.id).status.value == "succeeded"
    assert store.record(to_cancel.id).error["code"] == "cancelled"
    assert store.client.get(store.keys.quota_counter("k")) == b"0"
    # And a new job is refused as a full queue (503), not a Redis error.
    with pytest.raises(QueueFull):
        store.create_many(new_jobs(1), top_k=5, form="raw")
