"""A Redis client with short timeouts, so a lost Redis fails fast instead of
hanging a request; redis-py reconnects by itself once Redis is back."""

from __future__ import annotations

import time

import redis

from shared.celery_app import REDIS_SOCKET_TIMEOUT

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
        health_check_interval=15,
        retry_on_timeout=False,
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
