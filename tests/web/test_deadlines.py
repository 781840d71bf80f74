"""One deadline for a whole outbound request, enforced on the socket: a server that
trickles its headers or its body one byte every 0.1 s (which a read timeout never
catches: it restarts with every byte) is cut off at the deadline, for URL
submissions and webhook deliveries alike. Real loopback servers."""

import ipaddress

import pytest

from shared.errors import UrlFetchFailed
from shared.url_fetch import UrlFetcher
from shared.url_guard import AddressPolicy
from tests.support.trickle import TrickleServer
from worker.webhooks import DeliveryFailed, WebhookSender

DEADLINE = 1.0
LOOPBACK = AddressPolicy((ipaddress.ip_network("127.0.0.1/32"),), allow_ports=None)


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_a_trickling_image_server_is_cut_off_at_the_deadline(phase):
    server = TrickleServer(phase)  # 300 bytes, one every 0.1 s: 30 s if let run
    fetcher = UrlFetcher(max_bytes=10_000, timeout_seconds=DEADLINE, policy=LOOPBACK)
    try:
        with pytest.raises(UrlFetchFailed, match=f"within {DEADLINE:g} s"):
            fetcher.fetch(server.url)
        assert server.done.wait(10)  # the server saw the client go, long before its end
    finally:
        server.close()
    held = server.cut_at - server.started_at
    print(f"\n{phase} trickle: cut after {server.sent} of {server.total} bytes, "
          f"{held:.1f} s into it (deadline {DEADLINE:g} s; 30 s if let run)")
    assert server.cut_at is not None and server.sent < server.total // 2


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_a_trickling_webhook_receiver_is_cut_off_at_the_deadline(phase):
    from shared.api_models import JobStatus
    from shared.job_data.outbox import Delivery
    from shared.job_data.records import JobRecord

    class OneJob:  # the store's read, for one finished job (no Redis needed here)
        def record(self, job_id):
            return JobRecord(id=job_id, created_at=1.0, top_k=5, form="raw",
                             status=JobStatus.FAILED, error={"code": "cancelled",
                                                             "message": "cancelled"})

    server = TrickleServer(phase)
    sender = WebhookSender(OneJob(), keys=[b"k" * 32], timeout=DEADLINE, policy=LOOPBACK,
                           http_networks=LOOPBACK.allow_networks)
    delivery = Delivery(id="d-1", job_id="job-1", url=server.url, attempts=0)
    try:
        if phase == "headers":  # no answer in time: tried again later
            with pytest.raises(DeliveryFailed):
                sender.deliver(delivery)
        else:  # it answered 200 at once; the rest of its answer is not waited for
            assert sender.deliver(delivery) is True
        assert server.done.wait(10)
    finally:
        server.close()
    print(f"\nwebhook {phase} trickle: cut after {server.sent} of {server.total} bytes")
    assert server.cut_at is not None and server.sent < server.total // 2


def test_a_name_that_never_resolves_is_given_up_at_the_deadline():
    """The lookup is inside the deadline too (the system resolver has no timeout of
    its own); here a resolver that never answers, as a dead DNS server."""
    import threading

    never = threading.Event()

    def hanging_dns(host, port):
        never.wait(30)
        return []

    fetcher = UrlFetcher(max_bytes=10_000, timeout_seconds=DEADLINE, policy=LOOPBACK,
                         resolver=hanging_dns)
    try:
        with pytest.raises(UrlFetchFailed, match=f"within {DEADLINE:g} s"):
            fetcher.fetch("http://slow-dns.test/cat.jpg")
    finally:
        never.set()


def test_a_url_submission_to_a_trickling_server_answers_400_at_the_deadline(redis_url):
    from tests.conftest import make_settings, running_app

    server = TrickleServer("body")
    settings = make_settings(redis_url, queue_name="deadline-idle",
                             url_fetch_timeout_seconds=DEADLINE)
    try:
        with running_app(settings) as app:
            response = app.test_client().post("/jobs", json={"url": server.url})
        assert server.done.wait(10)
    finally:
        server.close()
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "url_fetch_failed"
    assert server.cut_at is not None and server.sent < server.total // 2


def test_a_webhook_whose_dns_never_answers_is_refused_at_the_deadline(redis_url):
    """The web tier resolves a webhook's host as the job is submitted: that lookup
    has the request's deadline too (it had none), and gives up at it, its thread the
    request's own. A real DNS server on loopback that never answers the zone."""
    import threading

    from tests.conftest import make_settings, running_app
    from tests.support.dns_server import DnsServer
    from tests.support.images import jpeg

    with DnsServer() as dns:
        settings = make_settings(redis_url, queue_name="deadline-idle", webhooks_enabled=True,
                                 url_fetch_timeout_seconds=DEADLINE,
                                 dns_nameservers=dns.setting)
        answers = []
        with running_app(settings) as app:
            client = app.test_client()
            submit = threading.Thread(target=lambda: answers.append(client.post(
                "/jobs?webhook=http://hook.slow.test:9/hook", data=jpeg(32, 24),
                content_type="image/jpeg")), daemon=True)
            submit.start()
            submit.join(30)  # awaited: it must end at all (it hung before)
        asked = dns.queries["slow.test"]
    assert answers, "the submission is still waiting on the lookup"
    assert answers[0].status_code == 400 and asked >= 1
    assert answers[0].get_json()["error"]["code"] == "bad_url"
    assert "did not resolve within" in answers[0].get_json()["error"]["message"]
