"""Deliveries as Standard Webhooks 1.0 has them, checked by the `standardwebhooks`
library as a receiver would, over real HTTP on loopback: the id, the time and the
whole body (the event's type with it) are signed, so nothing can be replayed under
another id or passed off as another event; every key of a rotation signs; plain http
goes only to WEBHOOK_HTTP_NETWORKS; the Python client's verifier agrees."""

import ipaddress
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from resq_client import webhooks as client_webhooks
from shared.api_models import JobStatus
from shared.job_data.outbox import Delivery
from shared.job_data.records import JobRecord
from shared.settings import webhook_keys
from shared.url_guard import AddressPolicy
from tests.support.webhook_receiver import OLD_SECRET, SECRET, Receiver
from worker.webhooks import WebhookSender

LOOPBACK = AddressPolicy((ipaddress.ip_network("127.0.0.1/32"),), allow_ports=None)


class OneJob:
    """The store's read, for one finished job (no Redis needed here)."""

    def record(self, job_id):
        return JobRecord(id=job_id, created_at=1.0, top_k=5, status=JobStatus.FAILED,
                         error={"code": "cancelled", "message": "cancelled"})


def deliver(secrets: str, http_networks=LOOPBACK.allow_networks, event="completed") -> dict:
    with Receiver(secret=secrets.split()[0]) as receiver:
        sender = WebhookSender(OneJob(), keys=webhook_keys(secrets), timeout=5,
                               policy=LOOPBACK, http_networks=http_networks)
        delivered = sender.deliver(Delivery(id="msg_1", job_id="job-1", url=receiver.url,
                                            attempts=0, event=event, at=time.time()))
    return {"delivered": delivered, "deliveries": receiver.deliveries}


def test_a_delivery_is_signed_over_its_id_its_time_and_its_body():
    (delivery,) = deliver(SECRET)["deliveries"]
    assert delivery["verified"] and delivery["tampered_fails"]
    body, headers = delivery["body"], delivery["headers"]
    event = Webhook(SECRET).verify(body, headers)
    assert event["type"] == "job.completed" and event["data"]["id"] == "job-1"
    assert headers["webhook-id"] == "msg_1"
    # Replayed under another id, or another time: refused.
    for name, value in (("webhook-id", "msg_2"),
                        ("webhook-timestamp", str(int(headers["webhook-timestamp"]) - 1))):
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRET).verify(body, {**headers, name: value})
    # Another event's body under this signature: refused.
    forged = body.replace(b'"job.completed"', b'"job.started"')
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(forged, headers)


def test_during_a_rotation_either_key_verifies():
    (delivery,) = deliver(f"{SECRET} {OLD_SECRET}")["deliveries"]
    signatures = delivery["headers"]["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (SECRET, OLD_SECRET):
        Webhook(secret).verify(delivery["body"], delivery["headers"])


def test_plain_http_goes_only_to_the_networks_named_for_it():
    refused = deliver(SECRET, http_networks=())
    assert refused == {"delivered": False, "deliveries": []}  # never sent
    assert deliver(SECRET)["delivered"]


def test_the_python_clients_verifier_agrees_with_the_library():
    (delivery,) = deliver(f"{SECRET} {OLD_SECRET}")["deliveries"]
    body, headers = delivery["body"], delivery["headers"]
    assert client_webhooks.verify(body, headers, OLD_SECRET) == Webhook(OLD_SECRET).verify(
        body, headers)
    for tampered in ({**headers, "webhook-id": "msg_9"}, headers):
        with pytest.raises(client_webhooks.WebhookVerificationError):
            client_webhooks.verify(body + (b"" if tampered is not headers else b" "),
                                   tampered, SECRET)
    with pytest.raises(client_webhooks.WebhookVerificationError):
        client_webhooks.verify(body, headers, SECRET, now=time.time() + 3600)
