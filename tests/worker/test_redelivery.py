"""The lost-job sweeper against a real Redis: a job whose message vanished (as with
a worker killed between popping it and recording it unacked) is sent again; a job
whose message still waits is left alone; a finished job is forgotten."""

import json
import time

import redis

from bench.stack import await_condition
from shared.celery_app import make_celery
from shared.job_data.keys import QueueKeys
from shared.job_data.store import JobStore
from tests.conftest import running_app
from tests.support.images import jpeg
from worker.redelivery import LostJobSweeper


def queued_ids(client: redis.Redis, queue: str) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange(queue, 0, -1)]


def test_sweeper_resends_only_lost_unfinished_jobs(idle_settings):
    queue = idle_settings.queue_name
    client = redis.Redis.from_url(idle_settings.redis_url)
    store = JobStore(client, make_celery(idle_settings), queue=queue,
                     ttl_seconds=idle_settings.result_ttl_seconds)
    with running_app(idle_settings) as app:
        web = app.test_client()
        lost, waiting, finished = (web.post("/jobs", data=jpeg(), content_type="image/jpeg")
                                   .get_json()["id"] for _ in range(3))
    assert sorted(queued_ids(client, queue)) == sorted([lost, waiting, finished])

    # `lost` vanishes from the queue with no trace in `unacked`; `finished` has its
    # result stored and its message consumed.
    for raw in client.lrange(queue, 0, -1):
        if json.loads(raw)["headers"]["id"] in (lost, finished):
            client.lrem(queue, 1, raw)
    assert store.finish(finished, result={"predictions": []})
    assert queued_ids(client, queue) == [waiting]

    sweeper = LostJobSweeper(client, store, stale_after=60, interval=1)
    assert sweeper.sweep_once(now=time.time()) == []  # nothing is stale yet
    assert sweeper.sweep_once(now=time.time() + 120) == [lost]
    assert sorted(queued_ids(client, queue)) == sorted([lost, waiting])
    open_jobs = [raw.decode() for raw in client.zrange(store.keys.inflight, 0, -1)]
    assert open_jobs == [waiting, lost]  # finished forgotten; lost moved on by its re-send
    # A second sweep finds the re-sent message in the queue and sends nothing more.
    assert sweeper.sweep_once(now=time.time() + 1000) == []
    assert sorted(queued_ids(client, queue)) == sorted([lost, waiting])


def test_a_sweeper_of_another_queue_does_not_hold_this_queues_sweep(idle_settings):
    """The sweep lock is per queue: a busy sweeper elsewhere on the same Redis (a
    second deployment, or the test session's own worker) never starves this one."""
    queue = idle_settings.queue_name
    client = redis.Redis.from_url(idle_settings.redis_url)
    store = JobStore(client, make_celery(idle_settings), queue=queue,
                     ttl_seconds=idle_settings.result_ttl_seconds)
    with running_app(idle_settings) as app:
        lost = app.test_client().post("/jobs", data=jpeg(), content_type="image/jpeg") \
            .get_json()["id"]
    client.delete(queue)  # the message vanishes
    other_lock = QueueKeys("some-other-queue").sweeper_lock
    client.set(other_lock, "1", ex=60)  # another queue's sweeper
    sweeper = LostJobSweeper(client, store, stale_after=0, interval=0.2)
    sweeper.start()
    try:
        await_condition(lambda: queued_ids(client, queue) == [lost], 10, "the sweep")
    finally:
        sweeper.stop()
        client.delete(other_lock)
    assert queued_ids(client, queue) == [lost]


def test_the_sweeper_expires_a_queued_job_past_its_deadline_instead_of_resending_it(
        idle_settings):
    """A job nobody took before its deadline (no worker read it, no client read it)
    ends `expired` at the next sweep, counted, and is never sent again."""
    from prometheus_client import REGISTRY

    queue = idle_settings.queue_name
    client = redis.Redis.from_url(idle_settings.redis_url)
    store = JobStore(client, make_celery(idle_settings), queue=queue,
                     ttl_seconds=idle_settings.result_ttl_seconds)
    job = store.create("expiring-" + queue, top_k=5, form="raw", image=jpeg(),
                       deadline_seconds=1)
    client.delete(queue)  # its message lost too: a resend would be the sweeper's reflex

    def expired_count() -> float:
        return REGISTRY.get_sample_value("resq_worker_jobs_total",
                                         {"outcome": "failed", "code": "expired"}) or 0.0

    before = expired_count()
    sweeper = LostJobSweeper(client, store, stale_after=60, interval=1)
    assert sweeper.sweep_once(now=job.created_at + 120) == []  # nothing re-sent
    record = store.record(job.id)
    assert record.status.value == "failed" and record.error["code"] == "expired"
    assert expired_count() == before + 1
    assert client.llen(queue) == 0
