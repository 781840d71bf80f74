"""Every Redis client of every tier is made here (`RedisTarget`): the job store's,
the rate limiter's, Celery's broker and result backend (and so Flower's), the
heartbeat's and sweeper's, the metrics', `make run`'s checks. Redis is one server
(`REDIS_URL`) or a primary found through Sentinel (`REDIS_SENTINELS`,
`REDIS_SENTINEL_MASTER`): then each client asks the sentinels where the primary is,
and after a failover finds the new one by itself (redis-py's `SentinelConnectionPool`,
kombu's `sentinel://` transport, limits' `redis+sentinel://` storage).

Short timeouts, so a lost Redis fails fast instead of hanging a request; clients
reconnect by themselves once Redis is back. The web tier fails fast (a client gets
503 and retries). A worker holding jobs is patient instead (`ride_out_seconds`): a
command that meets a Redis restart or a failover is retried until Redis is back, so
a job in the middle of its run is not failed by it."""

from __future__ import annotations

import math
import socket
import sys
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from shared.settings import CommonSettings

# Seconds the web tier waits for Redis before it answers 503; the worker retries
# forever on its own (it has nothing better to do).
REDIS_SOCKET_TIMEOUT = 2.0
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
RETRY_CAP_SECONDS = 1.0


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: `url` alone, or the primary that `sentinels` know as `master`
    (then `url` gives only the primary's password and database number)."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = "resq"
    sentinel_password: str = ""

    @classmethod
    def of(cls, settings: CommonSettings) -> RedisTarget:
        return cls(settings.redis_url, tuple(settings.redis_sentinels),
                   settings.redis_sentinel_master,
                   settings.redis_sentinel_password.get_secret_value())

    @property
    def replicated(self) -> bool:
        """Whether the primary has replicas that a failover may promote."""
        return bool(self.sentinels)

    @property
    def _parts(self):
        return urlsplit(self.url)

    @property
    def password(self) -> str | None:
        return self._parts.password

    @property
    def db(self) -> int:
        return int(self._parts.path.strip("/") or 0)

    def _sentinel_kwargs(self) -> dict:
        kwargs = {"socket_timeout": REDIS_SOCKET_TIMEOUT,
                  "socket_connect_timeout": REDIS_SOCKET_TIMEOUT}
        if self.sentinel_password:
            kwargs["password"] = self.sentinel_password
        return kwargs

    def client(self, *, ride_out_seconds: float = 0,
               timeout: float = REDIS_SOCKET_TIMEOUT) -> redis.Redis:
        """A client of the primary: fails after `timeout`, or (with `ride_out_seconds`)
        retries a lost connection for about that long."""
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                   "health_check_interval": 15, "retry_on_timeout": False}
        if ride_out_seconds > 0:
            # Each retry waits up to RETRY_CAP_SECONDS (plus a refused connect, which
            # is immediate, or a connect timeout): about `ride_out_seconds` in all.
            options["retry"] = Retry(
                ExponentialWithJitterBackoff(cap=RETRY_CAP_SECONDS, base=0.05),
                retries=math.ceil(ride_out_seconds / RETRY_CAP_SECONDS))
        if not self.sentinels:
            return redis.Redis.from_url(self.url, **options)
        sentinel = Sentinel(list(self.sentinels), sentinel_kwargs=self._sentinel_kwargs())
        return sentinel.master_for(self.master, password=self.password, db=self.db, **options)

    def celery_broker(self) -> tuple[str, dict]:
        """Celery's broker (and result backend) URL, and what its transport options
        add for it."""
        if not self.sentinels:
            return self.url, {}
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        url = ";".join(f"sentinel://{auth}{host}:{port}/{self.db}"
                       for host, port in self.sentinels)
        return url, {"master_name": self.master, "sentinel_kwargs": self._sentinel_kwargs()}

    def limits_storage(self) -> tuple[str, dict]:
        """The rate limiter's storage URI and options (the `limits` library's)."""
        if not self.sentinels:
            return self.url, {}
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return (f"redis+sentinel://{auth}{hosts}/{self.master}",
                {"sentinel_kwargs": self._sentinel_kwargs(), "use_replicas": False,
                 "db": self.db})


def connect(target: RedisTarget | str, *, ride_out_seconds: float = 0) -> redis.Redis:
    """A client of `target` (a plain URL is one server)."""
    if isinstance(target, str):
        target = RedisTarget(target)
    return target.client(ride_out_seconds=ride_out_seconds)


def wait_until_ready(target: RedisTarget | str, timeout: float = 10.0) -> None:
    """Block until Redis (its primary, with sentinels) answers PING; raise
    `TimeoutError` after `timeout`."""
    if isinstance(target, str):
        target = RedisTarget(target)
    client = target.client(timeout=0.5)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except REDIS_ERRORS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis at {target.url} did not answer within "
                                   f"{timeout:g} s") from None
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
    client = RedisTarget(url).client(timeout=0.5)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def main(argv: list[str]) -> int:
    """`--wait URL [--pid PID]`: wait for Redis at URL, and check that it is the
    server with that process id (one `make run` started, not another that holds
    the port). `--wait`: wait for the Redis the settings name (`REDIS_URL`, or the
    primary of `REDIS_SENTINELS`). `--private-port PORT`: print PORT if free, else a
    free port."""
    if len(argv) == 2 and argv[0] == "--private-port":
        print(private_port(int(argv[1])))
        return 0
    if argv == ["--wait"]:
        target = RedisTarget.of(CommonSettings.or_exit("resq"))
        try:
            wait_until_ready(target)
        except TimeoutError as error:
            print(f"resq: {error}", file=sys.stderr)
            return 1
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
    print("usage: python -m shared.redis_client --wait [REDIS_URL [--pid PID]]\n"
          "       python -m shared.redis_client --private-port PORT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
