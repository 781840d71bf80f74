"""The lost-job sweeper's cost grows with the jobs it checks, not with the queue:
at 100,000 queued jobs (real kombu messages in a real Redis, every job older than
the visibility timeout) a sweep reads a few hundred kilobytes, not the queue, and
still finds and re-sends the jobs whose message was lost. Its lock is fenced: a
sweep whose lock has passed to another re-sends nothing."""

import base64
import copy
import json
import time
import uuid

import pytest
import redis

from bench.stack import await_condition, free_port, start_redis
from shared.celery_app import make_celery
from shared.job_data.keys import QueueKeys
from shared.job_data.store import JobStore
from tests.conftest import make_settings
from worker.redelivery import LostJobSweeper

QUEUED = 100_000
LOST = 3
QUEUE = "cost"
LOCK = QueueKeys(QUEUE).sweeper_lock


@pytest.fixture(scope="module")
def backlog(tmp_path_factory):
    """A private Redis holding QUEUED waiting jobs (records, index, messages, as the
    web tier leaves them) and LOST jobs whose message a killed worker took."""
    port = free_port()
    server = start_redis(port, tmp_path_factory.mktemp("cost"))
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    await_condition(client.ping, 10, "redis-server")
    settings = make_settings(url, queue_name=QUEUE)
    store = JobStore(client, make_celery(settings), queue=QUEUE, ttl_seconds=86_400)
    # One real message, as kombu wrote it, is the template of the others.
    store.create("template", top_k=5, form="raw", image=b"x")
    template = json.loads(client.rpop(QUEUE))
    client.delete(QueueKeys.record("template"))
    start = time.time() - 3600  # accepted an hour ago: every job is stale
    lost = [f"lost-{n}" for n in range(LOST)]
    waiting = [str(uuid.uuid4()) for _ in range(QUEUED)]
    with client.pipeline(transaction=False) as pipe:
        for n, job_id in enumerate(lost + waiting):
            accepted = start + n * 0.01  # first in, first out: the lost were taken first
            pipe.hset(QueueKeys.record(job_id), mapping={
                "created_at": repr(accepted), "top_k": 5, "form": "raw", "status": "queued",
                "owner": "", "webhook": "", "bytes": 1})
            pipe.zadd(store.records.inflight_key, {job_id: accepted})
            if n >= LOST:
                message = copy.deepcopy(template)
                message["headers"]["id"] = job_id
                message["body"] = base64.b64encode(json.dumps(
                    [[], {"top_k": 5, "created_at": accepted}, {}]).encode()).decode()
                pipe.lpush(QUEUE, json.dumps(message))
            if n % 5000 == 0:
                pipe.execute()
        pipe.execute()
    yield client, store, lost
    client.close()
    server.stop()


def served_bytes(client: redis.Redis) -> int:
    return client.info("stats")["total_net_output_bytes"]


def test_a_sweep_reads_a_page_of_a_100000_job_queue_and_finds_the_lost(backlog):
    client, store, lost = backlog
    queue_bytes = client.memory_usage(QUEUE)
    sweeper = LostJobSweeper(client, store, stale_after=120, interval=10)
    before = served_bytes(client)
    resent = sweeper.sweep_once()
    first = served_bytes(client) - before
    before = served_bytes(client)
    again = sweeper.sweep_once()
    second = served_bytes(client) - before
    print(f"\n{client.llen(QUEUE) - LOST} jobs waiting ({queue_bytes / 2**20:.0f} MiB of "
          f"messages): a sweep read {first / 1024:.0f} KiB (then {second / 1024:.0f} KiB); "
          f"reading the queue would be {queue_bytes / 2**20:.0f} MiB")
    assert sorted(resent) == lost and again == []
    assert first < 1024 * 1024 and second < 1024 * 1024 < queue_bytes


def test_a_sweep_whose_lock_passed_to_another_resends_nothing(backlog):
    client, store, _ = backlog
    gone = "lost-late"
    client.hset(QueueKeys.record(gone), mapping={"created_at": "1", "top_k": 5, "form": "raw",
                                                 "status": "queued", "bytes": 1})
    client.zadd(store.records.inflight_key, {gone: 1})  # the oldest of all, message lost
    sweeper = LostJobSweeper(client, store, stale_after=120, interval=10)
    client.set(LOCK, "another sweep's token", px=10_000)
    length = client.llen(QUEUE)
    assert sweeper._sweep("this sweep's token (expired)", time.time()) == []
    assert client.llen(QUEUE) == length  # nothing sent
    client.delete(LOCK)
    assert sweeper.sweep_once() == [gone]
    assert client.llen(QUEUE) == length + 1
