"""Webhooks against a real local HTTP receiver that verifies each delivery with the
`standardwebhooks` library: a job that asks for one is POSTed, signed (Standard
Webhooks 1.0), when it finishes (the body's `data` is what GET /jobs/<id> answers); a
failing receiver is retried with backoff; the URL passes the SSRF guard at submission
and at delivery; plain http only to WEBHOOK_HTTP_NETWORKS; without WEBHOOK_SECRET,
webhooks are refused. Every listener is on loopback."""

import itertools
import time
import uuid
from contextlib import contextmanager

import pytest

from bench.stack import await_condition, start_worker
from shared.celery_app import make_celery
from shared.lanes import served_lists
from tests.conftest import make_settings, running_app
from tests.support.http_server import Trap
from tests.support.images import jpeg
from tests.support.webhook_receiver import SECRET, WEBHOOK_ENV, Receiver

pytestmark = pytest.mark.processes

@pytest.fixture(scope="module")
def hooked_stack(redis_url, tmp_path_factory):
    """A worker and an app that share WEBHOOK_SECRET; webhooks may reach 127.0.0.1
    (where the receivers listen) and nothing else that is not public."""
    queue = f"hooks-{uuid.uuid4().hex[:6]}"
    worker = start_worker(redis_url, queue, tmp_path_factory.mktemp("hooks") / "worker.log",
                          URL_FETCH_ALLOW_NETWORKS="127.0.0.1/32", URL_FETCH_ALLOW_PORTS="any",
                          **WEBHOOK_ENV)
    settings = make_settings(redis_url, queue_name=queue, webhook_secret=SECRET)
    with running_app(settings) as app:
        yield app.test_client(), worker, settings
    worker.stop()


@pytest.fixture()
def hooked(hooked_stack):
    return hooked_stack[0]


@contextmanager
def taking_no_jobs(worker, settings):
    """The worker stops taking jobs (Celery's remote control cancels its consumers)
    while its webhook dispatchers go on; it takes them again afterwards, in its order."""
    control = make_celery(settings).control
    for name in served_lists(settings.queue_name):
        control.cancel_consumer(name, destination=[worker.node], reply=True, timeout=10)
    try:
        yield
    finally:
        for name in served_lists(settings.queue_name):
            control.add_consumer(name, destination=[worker.node], reply=True, timeout=10)


def test_a_finished_job_is_posted_signed_to_its_webhook(hooked):
    receiver = Receiver()
    try:
        job = hooked.post(f"/jobs?webhook={receiver.url}", data=jpeg(), content_type="image/jpeg")
        assert job.status_code == 202
        job_id = job.get_json()["id"]
        await_condition(lambda: receiver.deliveries, 60, "the webhook delivery")
        final = hooked.get(f"/jobs/{job_id}").get_json()
    finally:
        receiver.close()
    delivery = receiver.deliveries[0]
    assert delivery["verified"] and delivery["tampered_fails"]
    assert delivery["job_id"] == job_id and delivery["path"] == "/hook"
    assert delivery["job"] == final and final["status"] == "succeeded"
    assert delivery["envelope"]["type"] == "job.completed"
    assert len(receiver.deliveries) == 1


def test_a_job_that_asks_for_started_gets_it_before_completed(hooked):
    """`webhook_events=started,completed`: one delivery when a worker starts the job,
    one when it ends, each named in the body's `type`; the default sends only the end."""
    receiver = Receiver()
    try:
        both = hooked.post(f"/jobs?webhook={receiver.url}&webhook_events=started,completed",
                           data=jpeg(), content_type="image/jpeg").get_json()["id"]
        default = hooked.post(f"/jobs?webhook={receiver.url}", data=jpeg(),
                              content_type="image/jpeg").get_json()["id"]
        await_condition(lambda: len(receiver.deliveries) >= 3, 60, "three deliveries")
        assert hooked.get(f"/jobs/{both}?wait=30").get_json()["status"] == "succeeded"
    finally:
        receiver.close()
    events = sorted((d["job_id"], d["event"]) for d in receiver.deliveries)
    assert events == sorted([(both, "started"), (both, "completed"), (default, "completed")])
    assert all(d["verified"] for d in receiver.deliveries)
    assert len({d["delivery_id"] for d in receiver.deliveries}) == 3


def test_a_job_that_expires_in_the_queue_still_gets_its_webhook(hooked_stack):
    """While no worker takes jobs, a job's deadline passes: reading it ends it
    `expired`, unrun, and its webhook (sent by the worker's dispatchers) says so."""
    hooked, worker, settings = hooked_stack
    receiver = Receiver()
    try:
        with taking_no_jobs(worker, settings):
            job = hooked.post(f"/jobs?webhook={receiver.url}&deadline_seconds=0.2",
                              data=jpeg(), content_type="image/jpeg").get_json()
            job_id = job["id"]
            await_condition(lambda: time.time() > job["created_at"] + 0.2, 30,
                            "the deadline to pass")
            assert hooked.get(f"/jobs/{job_id}").get_json()["error"]["code"] == "expired"
            await_condition(lambda: receiver.deliveries, 60, "the webhook delivery")
    finally:
        receiver.close()
    (delivery,) = receiver.deliveries
    body = delivery["job"]
    assert delivery["job_id"] == job_id and delivery["event"] == "completed"
    assert body["status"] == "failed" and body["error"]["code"] == "expired"


def test_a_failing_receiver_is_retried_with_backoff(hooked):
    receiver = Receiver(failures=2)
    try:
        job_id = hooked.post(f"/jobs?webhook={receiver.url}", data=jpeg(),
                             content_type="image/jpeg").get_json()["id"]
        await_condition(lambda: len(receiver.deliveries) >= 3, 60, "three delivery attempts")
    finally:
        receiver.close()
    assert [d["job_id"] for d in receiver.deliveries] == [job_id] * 3
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(receiver.deliveries)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.8, gaps  # 1 s, then 2 s


def test_a_failed_job_and_a_url_job_deliver_too(hooked):
    receiver = Receiver()
    whole = jpeg(640, 480)
    try:
        broken = hooked.post(f"/jobs?webhook={receiver.url}", data=whole[: len(whole) // 3],
                             content_type="image/jpeg").get_json()["id"]
        await_condition(lambda: receiver.deliveries, 60, "the webhook delivery")
    finally:
        receiver.close()
    body = receiver.deliveries[0]["job"]
    assert body["id"] == broken and body["status"] == "failed"
    assert body["error"]["code"] == "bad_image"


def test_webhooks_to_refused_addresses_are_400_and_reach_nothing(hooked):
    trap = Trap("127.0.0.2")
    try:
        for url in (f"http://127.0.0.2:{trap.port}/hook", f"http://[::1]:{trap.port}/",
                    "ftp://127.0.0.1/hook", f"http://0.0.0.0:{trap.port}/hook"):
            response = hooked.post("/jobs", query_string={"webhook": url}, data=jpeg(),
                                   content_type="image/jpeg")
            assert response.status_code == 400, url
            assert response.get_json()["error"]["code"] == "bad_url"
    finally:
        trap.close()
    assert trap.connections == []


def test_without_a_secret_webhooks_are_refused(idle_client):
    response = idle_client.post("/jobs?webhook=http://127.0.0.1:9/hook", data=jpeg(),
                                content_type="image/jpeg")
    assert response.status_code == 422
    assert "webhook" in response.get_json()["error"]["message"]


def test_a_zone_whose_dns_never_answers_costs_other_webhooks_nothing(redis_url, tmp_path):
    """A DNS server on loopback never answers one zone. 100 ended jobs have webhooks in
    that zone; then one job's webhook is an ordinary receiver. Its delivery comes while
    most of the slow zone's deliveries have not even been looked up: one zone holds at
    most DNS_LOOKUPS_PER_ZONE lookups of a worker, each gives up at its deadline, and
    the others are tried again later, out of the way."""
    from shared.job_data.records import new_job_id
    from shared.job_data.store import JobStore, NewJob
    from tests.support.dns_server import DnsServer

    queue = f"dns-{uuid.uuid4().hex[:6]}"
    with DnsServer() as dns, Receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        worker = start_worker(redis_url, queue, tmp_path / "worker.log", **WEBHOOK_ENV,
                              DNS_NAMESERVERS=dns.setting, URL_FETCH_ALLOW_PORTS="any",
                              URL_FETCH_ALLOW_NETWORKS="127.0.0.1/32")
        settings = make_settings(redis_url, queue_name=queue, webhook_secret=SECRET,
                                 dns_nameservers=dns.setting)
        try:
            import redis

            store = JobStore(redis.Redis.from_url(redis_url), make_celery(settings),
                             queue=queue, ttl_seconds=600)
            for n in range(100):  # ended at once: 100 deliveries due, in the slow zone
                job = NewJob(new_job_id(), jpeg(32, 24))
                store.create_many([job], top_k=5, form="raw",
                                  webhook=f"http://hook{n}.slow.test:{port}/hook")
                store.cancel(job.id)
            await_condition(lambda: dns.queries["slow.test"] >= 1, 30, "the first slow lookup")
            with running_app(settings) as app:
                sent = time.monotonic()
                normal = app.test_client().post(
                    f"/jobs?webhook=http://receiver.fast.test:{port}/hook", data=jpeg(),
                    content_type="image/jpeg").get_json()["id"]
                await_condition(lambda: receiver.of(normal), 120, "the ordinary webhook")
                took = time.monotonic() - sent
            looked_up = dns.queries["slow.test"]
        finally:
            worker.stop()
    print(f"\nthe ordinary webhook came {took:.1f} s after its job was submitted, while the "
          f"slow zone had been asked {looked_up} times for its 100 deliveries")
    assert receiver.of(normal)[0]["verified"]
    assert looked_up < 100  # most of the slow zone's deliveries were never in the way
