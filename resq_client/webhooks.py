"""Verifying resq's webhook deliveries, as Standard Webhooks 1.0 has it, with nothing
but the standard library (the `standardwebhooks` package does the same):

    from resq_client.webhooks import verify
    event = verify(request.body, request.headers, "whsec_...")   # raises on a bad one
    job = event["data"]                                          # the job, as GET /jobs/<id>

A delivery is signed over "<webhook-id>.<webhook-timestamp>.<body>": its id, when it
was sent and the whole body (with the event's `type`), so none of them can be changed
or replayed under another id. `webhook-signature` holds one or more `v1,<base64>`
signatures (several while resq's keys are rotated); one that matches a secret passed
here is enough. Deliveries are at least once: drop a `webhook-id` seen before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping

TOLERANCE_SECONDS = 300


class WebhookVerificationError(ValueError):
    """The delivery is not signed by one of the secrets, or is too old or too new."""


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_") + "==")


def verify(body: bytes, headers: Mapping[str, str], secrets: str | Iterable[str], *,
           tolerance: float = TOLERANCE_SECONDS, now: float | None = None) -> dict:
    """The delivery's JSON once its signature checks out against one of `secrets`
    (`whsec_...`; several while they rotate); `WebhookVerificationError` otherwise."""
    headers = {k.lower(): v for k, v in headers.items()}
    try:
        delivery_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        signatures = headers["webhook-signature"].split(" ")
    except (KeyError, ValueError):
        raise WebhookVerificationError("missing or malformed webhook headers") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise WebhookVerificationError("the delivery's timestamp is too old or too new")
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        expected = "v1," + base64.b64encode(
            hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, given) for given in signatures):
            return json.loads(body)
    raise WebhookVerificationError("no signature matches")
