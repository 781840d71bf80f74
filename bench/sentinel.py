"""A Redis primary, a replica (each with an append-only file) and three sentinels on
loopback, from Debian's `redis-server` (`redis-server FILE --sentinel`), as the chart's
sentinel mode runs them: for the tests of failover (tests/test_sentinel.py) and the
cost of waiting for a replica (bench/redis_capacity.py)."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import redis

from bench.stack import Process, await_condition, base_env, free_ports

MASTER = "resq"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: apt-get install redis-server (make test does)"
    return binary


class SentinelCluster:
    def __init__(self, directory: Path):
        self.directory = directory
        # Five ports chosen at once: one by one, the same port can come twice (it did:
        # a sentinel found the primary's port taken, and the cluster never agreed).
        primary, replica, *self.sentinel_ports = free_ports(5)
        self.ports = {"primary": primary, "replica": replica}
        self.servers: dict[str, Process] = {}
        self.sentinels: list[Process] = []

    # --- the data nodes ----------------------------------------------------------
    def start_server(self, name: str, replica_of: int | None = None) -> Process:
        data = self.directory / name
        data.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--port", str(self.ports[name]), "--bind", "127.0.0.1",
                "--dir", str(data), "--save", "", "--appendonly", "yes",
                "--appendfsync", "everysec", "--maxmemory-policy", "noeviction"]
        if replica_of:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        server = Process(args, base_env(), data / "redis.log")
        self.servers[name] = server
        await_condition(lambda: self.client(name).ping(), 10, f"redis {name}")
        return server

    def client(self, name: str) -> redis.Redis:
        return redis.Redis(port=self.ports[name], socket_timeout=1, socket_connect_timeout=1)

    def kill(self, name: str) -> None:
        self.servers[name].stop(signal.SIGKILL)

    # --- the sentinels --------------------------------------------------------------
    def start_sentinels(self) -> None:
        for n, port in enumerate(self.sentinel_ports):
            config = self.directory / f"sentinel-{n}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.ports['primary']} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {MASTER} 1\n")
            self.sentinels.append(Process([redis_server_binary(), str(config), "--sentinel"],
                                          base_env(), self.directory / f"sentinel-{n}.log"))
        await_condition(self._agreed, 30, "three sentinels that see the primary and replica")

    def sentinel(self, n: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinel_ports[n], socket_timeout=1,
                           socket_connect_timeout=1)

    def _agreed(self) -> bool:
        for n in range(len(self.sentinel_ports)):
            master = self.sentinel(n).sentinel_master(MASTER)
            if master["num-other-sentinels"] < 2 or master["num-slaves"] < 1:
                return False
        return True

    def primary_port(self) -> int:
        """The primary's port, as the first sentinel that answers says."""
        for n in range(len(self.sentinel_ports)):
            try:
                return int(self.sentinel(n).sentinel_get_master_addr_by_name(MASTER)[1])
            except redis.RedisError:
                continue
        raise RuntimeError("no sentinel answers")

    @property
    def env(self) -> dict:
        """The settings every tier gets."""
        return {"REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports),
                "REDIS_SENTINEL_MASTER": MASTER, "REDIS_URL": "redis://sentinel/0"}

    def start(self) -> SentinelCluster:
        self.start_server("primary")
        self.start_server("replica", replica_of=self.ports["primary"])
        await_condition(lambda: self.client("replica").info("replication")
                        .get("master_link_status") == "up", 30, "the replica in sync")
        self.start_sentinels()
        return self

    def stop(self) -> None:
        for process in [*self.sentinels, *self.servers.values()]:
            process.stop()
