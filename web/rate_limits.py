"""Rate limits on `/jobs` (flask-limiter, counted in Redis so that every web
process and pod shares them): per API key when keys are configured, else per
client address. Each image is one unit of the budget: a multipart request with 32
images costs 32, as 32 requests would. A request over the limit gets 429 with
`Retry-After`."""

from __future__ import annotations

import math
import time

from flask import Blueprint, Flask, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded

from shared.errors import RateLimited
from shared.redis_client import RedisTarget
from web.auth import ApiKeys


def caller_key(owner: str | None) -> str:
    """Who a request counts against (rate limit, queue quota): its API key's owner, or
    its client address where there is no valid key."""
    if owner is not None:
        return f"key:{owner}"
    return f"addr:{request.remote_addr or 'unknown'}"


def rate_key(keys: ApiKeys) -> str:
    return caller_key(keys.owner_of(request) if keys.enabled else None)


def request_cost(keys: ApiKeys) -> int:
    """Units of the budget a request costs: its images. A multipart body's parts are
    only counted for a caller with a valid key (or where no keys are needed): a
    stranger's body is never parsed (the request gets 401 either way)."""
    if request.method != "POST" or request.mimetype != "multipart/form-data":
        return 1
    if keys.enabled and keys.owner_of(request) is None:
        return 1
    try:
        return max(1, len(request.files.getlist("image")))
    except Exception:  # over the size limit, or malformed: intake answers it
        return 1


def install_rate_limits(app: Flask, blueprint: Blueprint, limit: str, redis: RedisTarget,
                        key_prefix: str, keys: ApiKeys,
                        per_request: tuple[Blueprint, ...] = ()) -> Limiter | None:
    """Limit `blueprint`'s routes to `limit` (e.g. `50/second;1000/minute`), each
    request charged per image, and those of `per_request` (the batches: their items
    are released slowly anyway) one a request, from the same budget; an empty limit
    installs nothing. A Redis outage lets requests through (the routes answer 503 on
    their own then)."""
    if not limit.strip():
        return None
    storage_uri, storage_options = redis.limits_storage()
    limiter = Limiter(lambda: rate_key(keys), app=app, storage_uri=storage_uri,
                      storage_options=storage_options, strategy="moving-window",
                      swallow_errors=True, headers_enabled=False, key_prefix=key_prefix,
                      default_limits=[])
    # One budget for all /jobs routes, charged per image.
    limiter.shared_limit(limit, scope="jobs", cost=lambda: request_cost(keys))(blueprint)
    for other in per_request:
        limiter.shared_limit(limit, scope="jobs")(other)
    app.extensions["resq.limiter"] = limiter
    return limiter


def as_resq_error(limiter: Limiter | None, error: RateLimitExceeded) -> RateLimited:
    retry_after = 1
    current = limiter.current_limit if limiter is not None else None
    if current is not None:
        window = current.limit.get_expiry()
        retry_after = max(1, min(window, math.ceil(current.reset_at - time.time())))
    return RateLimited(f"rate limit of {error.description} exceeded; retry later",
                       retry_after=retry_after)
