"""Webhook delivery: when a job finishes, its webhook URL gets the job (the same
body as `GET /jobs/<id>`) by POST, signed, through the SSRF guard.

Signature (as Stripe's): the header
    Resq-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(WEBHOOK_SECRET, "<t>." + body)>
A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares
in constant time, and refuses old timestamps (replays). `Resq-Job-Id` names the job.

Deliveries are their own Celery task on `<queue>.webhooks`, run by the workers'
threads beside the jobs: a slow or dead receiver never holds up a batch. A failed
delivery (no answer, or not 2xx) is retried with backoff; an address the guard
refuses is not.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import urllib3
from urllib3.exceptions import HTTPError

from shared.errors import BadUrl
from shared.job_records import JobRecords
from shared.job_view import job_from
from shared.pinned_http import pinned_request
from shared.url_guard import AddressPolicy, Resolver, resolve

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Resq-Signature"


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes, *, tolerance: float = 300,
           now: float | None = None) -> bool:
    """What a receiver does (also documented in the README)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class DeliveryFailed(Exception):
    """The receiver did not take the delivery; it may be tried again."""


class WebhookSender:
    def __init__(self, records: JobRecords, backend, *, secret: bytes, timeout: float,
                 policy: AddressPolicy, resolver: Resolver = resolve):
        self.records = records
        self.backend = backend
        self.secret = secret
        self.timeout = timeout
        self.policy = policy
        self.resolver = resolver

    def body(self, job_id: str) -> tuple[str, bytes] | None:
        """(webhook URL, JSON body) of a finished job, or None if it has none."""
        record = self.records.get(job_id)
        if record is None or not record.webhook:
            return None
        meta = self.backend.get_task_meta(job_id)
        job = job_from(record, meta.get("status", "PENDING"), meta.get("result"))
        return record.webhook, job.model_dump_json().encode()

    def deliver(self, job_id: str) -> bool:
        """True once delivered; False when there is nothing to deliver or the guard
        refuses the address (no retry helps); raises `DeliveryFailed` otherwise."""
        found = self.body(job_id)
        if found is None:
            return False
        url, body = found
        headers = {"Content-Type": "application/json", "User-Agent": "resq-webhook",
                   "Resq-Job-Id": job_id,
                   SIGNATURE_HEADER: signature(self.secret, int(time.time()), body)}
        try:
            response, pool = pinned_request(
                "POST", url, policy=self.policy, resolver=self.resolver, body=body,
                timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
                headers=headers)
        except BadUrl as error:
            log.error("webhook of job %s refused: %s", job_id, error.message,
                      extra={"job_id": job_id})
            return False
        except HTTPError as error:
            raise DeliveryFailed(f"{type(error).__name__}") from None
        try:
            response.read(64 * 1024)  # a little of the answer, never all of it
            if not 200 <= response.status < 300:
                raise DeliveryFailed(f"HTTP {response.status}")
        finally:
            response.release_conn()
            pool.close()
        log.info("webhook of job %s delivered", job_id, extra={"job_id": job_id})
        return True
