"""A Redis client with short timeouts, so a lost Redis fails fast instead of
hanging a request; redis-py reconnects by itself once Redis is back.

The web tier fails fast (a client gets 503 and retries). A worker holding jobs
is patient instead (`ride_out_seconds`): a command that meets a Redis restart is
retried until Redis is back, so a job in the middle of its run is not failed by a
restart of a few seconds."""

from __future__ import annotations

import math
import time

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from shared.celery_app import REDIS_SOCKET_TIMEOUT

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


RETRY_CAP_SECONDS = 1.0


def connect(url: str, *, ride_out_seconds: float = 0) -> redis.Redis:
    options = {}
    if ride_out_seconds > 0:
        # Each retry waits up to RETRY_CAP_SECONDS (plus a refused connect, which is
        # immediate, or a connect timeout): about `ride_out_seconds` in all.
        options["retry"] = Retry(ExponentialWithJitterBackoff(cap=RETRY_CAP_SECONDS, base=0.05),
                                 retries=math.ceil(ride_out_seconds / RETRY_CAP_SECONDS))
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
        health_check_interval=15,
        retry_on_timeout=False,
        **options,
    )


def wait_until_ready(url: str, timeout: float = 10.0) -> None:
    """Block until Redis at `url` answers PING; raise `TimeoutError` after `timeout`."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except REDIS_ERRORS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis at {url} did not answer within {timeout:g} s") from None
            time.sleep(0.05)
        finally:
            client.close()


if __name__ == "__main__":  # python -m shared.redis_client --wait URL
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "--wait":
        sys.exit("usage: python -m shared.redis_client --wait REDIS_URL")
    wait_until_ready(sys.argv[2])
