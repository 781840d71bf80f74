"""A Redis client with short timeouts, so a lost Redis fails fast instead of
hanging a request; redis-py reconnects by itself once Redis is back.

The web tier fails fast (a client gets 503 and retries). A worker holding jobs
is patient instead (`ride_out_seconds`): a command that meets a Redis restart is
retried until Redis is back, so a job in the middle of its run is not failed by a
restart of a few seconds."""

from __future__ import annotations

import math
import socket
import sys
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


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on `host:port` now (as redis-server binds it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def private_port(preferred: int) -> int:
    """`preferred` if it is free, else a free port the system picks (for `make
    run`'s own Redis: it never shares a port with another server)."""
    if port_is_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_pid(url: str) -> int:
    """The process id of the Redis server that answers at `url`."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def main(argv: list[str]) -> int:
    """`--wait URL [--pid PID]`: wait for Redis at URL, and check that it is the
    server with that process id (one `make run` started, not another that holds
    the port). `--private-port PORT`: print PORT if free, else a free port."""
    if len(argv) == 2 and argv[0] == "--private-port":
        print(private_port(int(argv[1])))
        return 0
    if len(argv) in (2, 4) and argv[0] == "--wait" and (len(argv) == 2 or argv[2] == "--pid"):
        url = argv[1]
        try:
            wait_until_ready(url)
        except TimeoutError as error:
            print(f"resq: {error}", file=sys.stderr)
            return 1
        if len(argv) == 4 and server_pid(url) != int(argv[3]):
            print(f"resq: the Redis answering at {url} is not the one started here (pid "
                  f"{argv[3]}); another server holds the port. Not using it.", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m shared.redis_client --wait REDIS_URL [--pid PID]\n"
          "       python -m shared.redis_client --private-port PORT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
