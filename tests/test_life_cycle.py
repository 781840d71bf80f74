"""Every job ends exactly once (`shared.job_data.store`), tested against a real Redis,
a real worker process and a real local webhook receiver, with each race forced
deterministically: a job held in the middle of its run by a gate
(tests/support/gated_worker.py), a duplicated message pushed by hand, a delivery
leased by a dispatcher that never comes back, an enqueue that fails."""

import io
import ipaddress
import time
import uuid

import pytest
import redis

from bench.stack import await_condition, free_port, start_worker
from shared.celery_app import make_celery
from shared.job_data.store import JobStore
from shared.settings import webhook_keys
from shared.url_guard import AddressPolicy
from tests.conftest import make_settings, running_app
from tests.support.gated_worker import GATE_DIR_VAR, GATE_MARKER
from tests.support.images import jpeg
from tests.support.webhook_receiver import SECRET, WEBHOOK_ENV, Receiver
from worker.redelivery import LostJobSweeper
from worker.webhooks import WebhookDispatcher, WebhookSender

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def gated(redis_url, tmp_path_factory):
    """A gated worker with webhooks on its own queue, and an app and a store on it."""
    queue = f"life-{uuid.uuid4().hex[:6]}"
    gate = tmp_path_factory.mktemp("gate")
    worker = start_worker(redis_url, queue, tmp_path_factory.mktemp("life") / "worker.log",
                          module="tests.support.gated_worker", **WEBHOOK_ENV,
                          URL_FETCH_ALLOW_NETWORKS="127.0.0.1/32", URL_FETCH_ALLOW_PORTS="any",
                          **{GATE_DIR_VAR: gate})
    settings = make_settings(redis_url, queue_name=queue, webhook_secret=SECRET)
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, make_celery(settings), queue=queue,
                     ttl_seconds=settings.result_ttl_seconds)
    try:
        with running_app(settings) as app, Receiver() as receiver:
            yield app.test_client(), store, worker, gate, receiver
    finally:
        worker.stop()
        client.close()


def submit(client, image: bytes, webhook: str, wait: float = 0) -> dict:
    response = client.post(f"/jobs?webhook={webhook}&wait={wait}",
                           data={"image": (io.BytesIO(image), "a.jpg")})
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    return response.get_json()


def outbox_drained(store: JobStore) -> bool:
    return store.client.zcard(store.keys.outbox) == 0


def worker_said(worker, job_id: str, words: str) -> bool:
    return any(job_id in line and words in line for line in worker.log().splitlines())


def close_gate(gate):
    for name in ("entered", "open"):
        (gate / name).unlink(missing_ok=True)


def test_cancel_wins_over_a_running_job_and_only_one_webhook_goes_out(gated):
    """Defect 2: a running job cancelled. DELETE ends it `cancelled` at once; the
    worker's result, stored later, is discarded; GET never changes its answer, and
    exactly one webhook is sent (it was two, one from each tier, and the job later
    read `succeeded`)."""
    client, store, worker, gate, receiver = gated
    close_gate(gate)
    job = submit(client, jpeg() + GATE_MARKER, receiver.url)
    await_condition(lambda: (gate / "entered").exists(), 60, "the job to be in the worker")
    assert client.get(f"/jobs/{job['id']}").get_json()["status"] == "started"

    cancelled = client.delete(f"/jobs/{job['id']}").get_json()
    assert cancelled["status"] == "failed" and cancelled["error"]["code"] == "cancelled"
    (gate / "open").touch()  # the worker finishes its run now
    await_condition(lambda: worker_said(worker, job["id"], "ended meanwhile"), 60,
                    "the worker to finish the cancelled job")
    await_condition(lambda: receiver.of(job["id"]) and outbox_drained(store), 30,
                    "the webhook")
    assert client.get(f"/jobs/{job['id']}").get_json() == cancelled
    assert client.delete(f"/jobs/{job['id']}").get_json() == cancelled  # still as it was
    deliveries = receiver.of(job["id"])
    assert len(deliveries) == 1 and deliveries[0]["verified"]
    assert b'"cancelled"' in deliveries[0]["body"]


def test_a_duplicated_message_of_an_ended_job_is_dropped_unrun(gated):
    """Defect 1: the lost-job sweeper can send a copy of a message a live worker
    holds (it has no `redelivered` flag). A copy of a finished job's message, or of
    a cancelled one's, is acknowledged and dropped: the job is not run again, its
    result and its error stay as they were, and no second webhook goes out."""
    client, store, worker, _, receiver = gated
    done = submit(client, jpeg(), receiver.url, wait=30)
    assert done["status"] == "succeeded"
    cancelled = submit(client, jpeg(), receiver.url)
    queued_ended = client.delete(f"/jobs/{cancelled['id']}").get_json()
    await_condition(lambda: receiver.of(done["id"]) and receiver.of(cancelled["id"])
                    and outbox_drained(store), 30, "the two webhooks")

    for job in (done, cancelled):
        store.resend(store.record(job["id"]))  # exactly what the sweeper sends
    for job in (done, cancelled):
        await_condition(lambda job=job: worker_said(worker, job["id"], "dropped unrun"), 60,
                        "the copy to be dropped")
    assert client.get(f"/jobs/{done['id']}").get_json() == done
    assert client.get(f"/jobs/{cancelled['id']}").get_json() == queued_ended
    runs = [line for line in worker.log().splitlines()
            if done["id"] in line and "classified" in line]
    assert len(runs) == 1
    assert len(receiver.of(done["id"])) == 1 and len(receiver.of(cancelled["id"])) == 1


def test_a_redis_blip_as_a_job_ends_loses_neither_its_end_nor_its_webhook(gated):
    """Defect 3: Redis stops taking writes (CLIENT PAUSE, longer than the clients'
    2 s socket timeout) just as the worker ends a job. The end and its webhook are
    one step that the worker retries until Redis is back: the job succeeds and its
    webhook goes out once (it used to be published after the end, retried once
    after 0.2 s, and lost)."""
    client, store, worker, gate, receiver = gated
    close_gate(gate)
    job = submit(client, jpeg() + GATE_MARKER, receiver.url)
    await_condition(lambda: (gate / "entered").exists(), 60, "the job to be in the worker")
    store.client.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
    (gate / "open").touch()  # the worker ends the job while Redis takes no writes
    ended = client.get(f"/jobs/{job['id']}?wait=60").get_json()
    assert ended["status"] == "succeeded"
    await_condition(lambda: receiver.of(job["id"]) and outbox_drained(store), 60,
                    "the webhook")
    assert len(receiver.of(job["id"])) == 1
    assert client.get(f"/jobs/{job['id']}").get_json() == ended


def test_a_delivery_whose_dispatcher_died_is_sent_by_another_once(idle_settings):
    """Defect 3: a webhook delivery lives in the outbox from the moment its job ends
    (written in the same step) until a receiver took it; a dispatcher that dies
    with it in hand loses nothing: its lease runs out and another sends it, with
    the same delivery id (for receivers to drop a repeat)."""
    client = redis.Redis.from_url(idle_settings.redis_url)
    store = JobStore(client, make_celery(idle_settings), queue=idle_settings.queue_name,
                     ttl_seconds=idle_settings.result_ttl_seconds)
    with Receiver() as receiver:
        store.create("job-1", top_k=5, form="raw", image=jpeg(), webhook=receiver.url)
        assert store.finish("job-1", result=RESULT)
        assert not store.finish("job-1", result=RESULT)  # the first end is the only one
        taken = store.outbox.claim(lease_seconds=0.5)  # ...by a dispatcher that dies
        assert taken is not None and taken.job_id == "job-1"
        assert store.outbox.claim(lease_seconds=0.5) is None  # leased, not handed twice
        sender = WebhookSender(store, keys=webhook_keys(SECRET), timeout=5,
                               http_networks=(ipaddress.ip_network("127.0.0.1/32"),),
                               policy=AddressPolicy((ipaddress.ip_network("127.0.0.1/32"),),
                                                     allow_ports=None))
        dispatcher = WebhookDispatcher(store, sender, max_attempts=3, threads=1)
        dispatcher.start()
        try:
            await_condition(lambda: receiver.deliveries and outbox_drained(store), 30,
                            "the delivery after the lease")
        finally:
            dispatcher.stop()
    assert [d["delivery_id"] for d in receiver.deliveries] == [taken.id]
    assert receiver.deliveries[0]["verified"]
    client.close()


def test_a_job_whose_message_could_not_be_sent_leaves_nothing_to_run(idle_settings):
    """Defect 6: the record is written, then the message cannot be sent. The client
    gets the error (503), and nothing is left behind: no record, no image, no entry
    in the lost-job index that the sweeper would later run as an orphan."""
    client = redis.Redis.from_url(idle_settings.redis_url)
    nowhere = make_settings(f"redis://127.0.0.1:{free_port()}/0",
                            queue_name=idle_settings.queue_name)
    store = JobStore(client, make_celery(nowhere), queue=idle_settings.queue_name,
                     ttl_seconds=idle_settings.result_ttl_seconds)
    with pytest.raises(Exception):  # noqa: B017 (kombu's error, whichever it is)
        store.create("orphan", top_k=5, form="raw", image=jpeg())
    assert store.record("orphan") is None and not client.exists(store.keys.image("orphan"))
    assert store.queued_bytes() == 0
    sweeper = LostJobSweeper(client, store, stale_after=0, interval=1)
    assert sweeper.sweep_once(now=time.time() + 3600) == []
    client.close()


RESULT = {"predictions": [], "model": {"name": "resnet50", "weights": "random",
                                       "precision": "fp32"},
          "timing_ms": {"queued": 1.0, "preprocess": 1.0, "inference": 1.0, "total": 3.0}}
