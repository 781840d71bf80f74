"""The batch scripts against a real Redis (shared/job_data/batches.py): CREATE_BATCH
stores the batch and releases nothing by itself; RELEASE keeps at most
BATCH_INFLIGHT items waiting; FINISH counts each item's end in its batch; CANCEL_BATCH
ends what was never released; the counts the queue keeps (bytes, open jobs, the
unreleased items /scaling reads) stay true throughout."""

import json

import pytest

from shared.api_models import BatchStatus, JobStatus
from shared.errors import BadImage, JobCancelled
from shared.job_data.batches import NewItem, item_id, split_item_id
from shared.job_data.lua import Start
from shared.job_data.reconcile import Reconciler
from shared.queue_load import read_load
from tests.shared.job_data.conftest import RESULT, make_store
from tests.support.images import jpeg

INFLIGHT = 4
IMAGE = jpeg(64, 48)


@pytest.fixture()
def store(redis_url):
    made = make_store(redis_url)
    made.batches.inflight = INFLIGHT
    yield made
    made.client.close()


def waiting(store) -> int:
    return sum(store.client.llen(name) for name in store.keys.lane_lists)


def url_items(n: int) -> list[NewItem]:
    return [NewItem(input=f"http://127.0.0.1:9/{i}.jpg", url=f"http://127.0.0.1:9/{i}.jpg")
            for i in range(n)]


def pop(store) -> str:
    """Take the next message from the batch lane, as a worker would: its job id."""
    raw = store.client.rpop(store.keys.lane_lists[1])
    return json.loads(raw)["headers"]["id"]


def test_a_batch_releases_at_most_its_inflight_items_and_the_rest_as_workers_take_them(store):
    batch_id = store.batches.create(url_items(10), top_k=3, form="url")
    assert waiting(store) == INFLIGHT
    load = read_load(store.client, store.queue)
    assert load.unreleased == 10 - INFLIGHT and load.open == 10
    assert store.batches.release(batch_id) == 0  # room for none until one is taken
    first = pop(store)
    assert split_item_id(first) == (batch_id, 0)
    started = store.start(first, worker="w")
    assert started.decision is Start.RUN and started.url == "http://127.0.0.1:9/0.jpg"
    assert started.image is None
    assert store.batches.release(batch_id) == 1 and waiting(store) == INFLIGHT
    record = store.record(item_id(batch_id, 4))
    assert record.status is JobStatus.QUEUED and record.top_k == 3


def test_each_item_end_is_counted_in_its_batch_and_the_last_ends_it(store):
    batch_id = store.batches.create(url_items(3), top_k=2, form="url")
    ids = [pop(store) for _ in range(3)]
    for job_id in ids:
        store.start(job_id, worker="w")
    store.finish(ids[1], result=RESULT)
    store.finish(ids[0], error=BadImage())
    view = store.batches.batch(batch_id)
    assert view.status is BatchStatus.RUNNING and view.finished_at is None
    assert view.counts.status == {"queued": 0, "started": 1, "succeeded": 1, "failed": 1}
    assert view.counts.error == {"bad_image": 1}
    store.finish(ids[2], result=RESULT)
    view = store.batches.batch(batch_id)
    assert view.status is BatchStatus.SUCCEEDED and view.finished_at and view.eta_seconds == 0
    record = store.batches.record(batch_id)
    lines, cursor = store.batches.results(record, 0, 2, store.records.get_many)
    assert [line.index for line in lines] == [1, 0] and cursor == 2
    assert lines[0].status is JobStatus.SUCCEEDED and lines[0].input.endswith("/1.jpg")
    assert lines[1].error.code == "bad_image"
    rest, cursor = store.batches.results(record, cursor, 10, store.records.get_many)
    assert [line.index for line in rest] == [2] and cursor == 3
    assert read_load(store.client, store.queue).open == 0


def test_uploaded_images_count_in_the_queues_bytes_until_their_items_end(store):
    batch_id = store.batches.create([NewItem(input=f"{i}.jpg", image=IMAGE) for i in range(6)],
                                    top_k=1, form="multipart")
    assert store.queued_bytes() == 6 * len(IMAGE)
    assert not Reconciler(store.client, store.queue).reconcile()  # nothing to correct
    job_id = pop(store)
    assert store.start(job_id, worker="w").image == IMAGE
    store.finish(job_id, result=RESULT)
    assert store.queued_bytes() == 5 * len(IMAGE)
    assert not Reconciler(store.client, store.queue).reconcile()
    assert store.batches.cancel(batch_id, store.cancel)
    assert store.queued_bytes() == 0
    assert not store.client.exists(store.keys.image(item_id(batch_id, 5)))


def test_cancel_ends_the_unreleased_items_at_once_and_the_released_ones_through_finish(store):
    batch_id = store.batches.create(url_items(10), top_k=1, form="url")
    running = pop(store)
    store.start(running, worker="w")
    assert store.batches.unreleased_job(item_id(batch_id, 9)).status is JobStatus.QUEUED
    assert store.batches.cancel(batch_id, store.cancel)
    assert not store.batches.cancel(batch_id, store.cancel)  # once
    view = store.batches.batch(batch_id)
    assert view.status is BatchStatus.CANCELLED and view.finished_at
    assert view.counts.status["failed"] == 10 and view.counts.error == {"cancelled": 10}
    assert store.record(running).error["code"] == JobCancelled.code
    unreleased = store.batches.unreleased_job(item_id(batch_id, 9))
    assert unreleased.status is JobStatus.FAILED and unreleased.error.code == "cancelled"
    assert read_load(store.client, store.queue).unreleased == 0
    assert store.client.zcard(store.keys.inflight) == 0
    # A message already in the lane finds its job ended and is dropped unrun.
    assert store.start(pop(store), worker="w").decision is Start.TERMINAL


def test_a_batch_that_asked_for_its_webhooks_gets_started_and_completed_once(store):
    batch_id = store.batches.create(url_items(2), top_k=1, form="url",
                                    webhook="https://hooks.example/b",
                                    webhook_events=("started", "completed"))
    ids = [pop(store), pop(store)]
    for job_id in ids:
        store.start(job_id, worker="w")
    for job_id in ids:
        store.finish(job_id, result=RESULT)
    due = store.client.zrange(store.keys.outbox, 0, -1)
    events = [store.client.hget(store.keys.delivery(d.decode()), "event").decode()
              for d in due]
    assert sorted(events) == ["batch.completed", "batch.started"]
    assert {store.client.hget(store.keys.delivery(d.decode()), "job_id").decode()
            for d in due} == {batch_id}


def test_a_batch_whose_record_expired_unreleased_is_healed_out_of_the_counts(store):
    kept = store.batches.create(url_items(10), top_k=1, form="url")
    gone = store.batches.create([NewItem(input="a.jpg", image=IMAGE)] * 8, top_k=1,
                                form="multipart")
    store.client.delete(store.keys.batch(gone))  # its TTL ran out while no worker ran
    corrections = Reconciler(store.client, store.queue).reconcile()
    assert corrections.batch_unreleased == 1 and corrections.queued_bytes == 1
    assert read_load(store.client, store.queue).unreleased == 10 - INFLIGHT
    assert store.client.zrange(store.keys.batches, 0, -1) == [kept.encode()]
    assert store.queued_bytes() == 4 * len(IMAGE)  # the released four (open jobs) only
    assert not Reconciler(store.client, store.queue).reconcile()  # and it stays right
