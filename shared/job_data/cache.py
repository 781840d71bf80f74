"""Results reused by content (`RESULT_CACHE`): an image classified once by a model is
not decoded or run again by that model within `RESULT_CACHE_TTL_SECONDS`.

- **Key**: the model's identity (its weights' digest, engine, precision and the
  preprocessing's version: `worker.runtime.model_identity`), the scope, and the SHA-256
  of the image's bytes. A new model has a new identity, so it never reads an entry of
  another: no entry is ever stale.
- **Value**: the top 20 predictions (any `top_k` is served from them) and the model
  block, as JSON.
- **Scope**: `per-key` keeps each API key's entries apart (`key-<owner>`; without API
  keys every job has the same owner), so that one key never learns what another
  submitted; `shared` is one scope for all.
- **Where**: a worker looks before it decodes (after the fetch, for a URL it fetches),
  under its own identity; the web tier looks as it creates a job from an upload or
  a URL it fetched, under the identity the workers say they run (`resq:models`), and
  creates a hit already `succeeded`, never queued.
- **Memory**: each entry is listed in the queue's `cache-entries`, which the job data's
  memory budget (`shared.job_data.lua.MAKE_ROOM`) empties first, before any job's
  result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

import redis

from shared.job_data.keys import QueueKeys
from shared.settings import ResultCacheScope

log = logging.getLogger(__name__)

# The most predictions an entry keeps: `top_k`'s highest value.
CACHED_PREDICTIONS = 20

STORE = """
-- KEYS: entry, cache entries; ARGV: value, ttl
-- Writes an entry (it lives `ttl` seconds) and lists it for the memory budget.
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('RPUSH', KEYS[2], KEYS[1])
return 1
"""


def image_digest(image: bytes) -> str:
    return hashlib.sha256(image).hexdigest()


def scope_of(mode: ResultCacheScope, owner: str) -> str | None:
    """The scope a job of `owner` reads and writes in; None with the cache off."""
    if mode is ResultCacheScope.OFF:
        return None
    return "shared" if mode is ResultCacheScope.SHARED else f"key-{owner}"


class ResultCache:
    def __init__(self, client: redis.Redis, queue: str, ttl_seconds: int):
        self.client = client
        self.keys = QueueKeys(queue)
        self.ttl = ttl_seconds
        self._store = client.register_script(STORE)

    def live_model(self, within_seconds: float) -> str | None:
        """The model identity the queue's workers run, when exactly one has beaten
        within `within_seconds` (during a change of model two have, and the web tier
        leaves the cache to each worker, which knows its own)."""
        try:
            live = self.client.zrangebyscore(self.keys.models, time.time() - within_seconds,
                                             "+inf")
        except redis.RedisError:
            return None
        return live[0].decode() if len(live) == 1 else None

    def get(self, model: str, scope: str, digest: str) -> dict | None:
        """The entry (`predictions`, `model`), or None (also when Redis cannot say:
        the cache only ever spares work)."""
        try:
            raw = self.client.get(QueueKeys.cache_entry(model, scope, digest))
        except redis.RedisError as error:
            log.warning("result cache lookup failed (%s); the job runs", error)
            return None
        return None if raw is None else json.loads(raw)

    def put(self, model: str, scope: str, digest: str, predictions: list[dict],
            model_info: dict) -> None:
        """Keep an entry; a Redis that refuses it (full of work) keeps none."""
        value = json.dumps({"predictions": predictions[:CACHED_PREDICTIONS],
                            "model": model_info}, separators=(",", ":"))
        try:
            self._store(keys=[QueueKeys.cache_entry(model, scope, digest),
                              self.keys.cache_entries], args=[value, self.ttl])
        except redis.RedisError as error:
            log.warning("result cache entry not kept (%s)", error)
