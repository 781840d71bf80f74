"""Idempotent submission: `POST /jobs` with an `Idempotency-Key` header gives the
same job for the same key and request within the result TTL, and 409 for the
same key with a different request. Keys are scoped to the caller (its API key's
owner id), so two clients cannot collide. A request is identified by its
fingerprint: the input form, the image (its SHA-256) or URL, and every option of
the request (`SubmitOptions`, all of its fields: a new option is covered as it is
added)."""

from __future__ import annotations

import hashlib
import json

import redis

from shared.api_models import SubmitOptions
from shared.errors import IdempotencyConflict, InvalidField
from shared.job_data.keys import QueueKeys

MAX_KEY_LENGTH = 255


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise InvalidField(
            f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            details=[{"field": "Idempotency-Key",
                      "message": f"1-{MAX_KEY_LENGTH} printable ASCII characters"}])
    return key


def fingerprint(form: str, image: bytes, url: str | None, options: SubmitOptions) -> str:
    what = f"url:{url}" if url else "sha256:" + hashlib.sha256(image).hexdigest()
    return hashlib.sha256(f"{form}\0{what}\0{options.model_dump_json()}".encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, client: redis.Redis, ttl_seconds: int):
        self.client = client
        self.ttl = ttl_seconds

    def _redis_key(self, owner: str, key: str) -> str:
        return QueueKeys.idempotency(hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest())

    def claim(self, owner: str, key: str, print_: str, job_id: str) -> str | None:
        """Record `job_id` under the key and return None; or return the job id an
        earlier request with the same key and fingerprint recorded. Raises
        `IdempotencyConflict` when the earlier request was a different one."""
        redis_key = self._redis_key(owner, key)
        value = json.dumps({"job": job_id, "fingerprint": print_})
        for _ in range(2):  # a key that expires between SET and GET is claimed again
            if self.client.set(redis_key, value, nx=True, ex=self.ttl):
                return None
            stored = self.client.get(redis_key)
            if stored is not None:
                earlier = json.loads(stored)
                if earlier["fingerprint"] != print_:
                    raise IdempotencyConflict()
                return earlier["job"]
        return None

    def release(self, owner: str, key: str, job_id: str) -> None:
        """Forget a claim whose job could not be created, so a retry can succeed."""
        redis_key = self._redis_key(owner, key)
        stored = self.client.get(redis_key)
        if stored is not None and json.loads(stored)["job"] == job_id:
            self.client.delete(redis_key)
