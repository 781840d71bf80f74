"""Flower, started as `make run` starts it, never answers anonymous requests:
without FLOWER_BASIC_AUTH it listens on 127.0.0.1 only, behind a one-time password
it prints; with it, on every interface behind those credentials."""

import re

import psutil
import pytest
import requests

from bench.stack import Process, await_condition, base_env, free_port

pytestmark = pytest.mark.processes


def _listening_addresses(pid: int, port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def _flower(redis_url, tmp_path, **env):
    import sys

    port = free_port()
    proc = Process([sys.executable, "-m", "shared.flower_main"],
                   base_env(REDIS_URL=redis_url, FLOWER_PORT=port, **env), tmp_path / "flower.log")
    await_condition(lambda: _listening_addresses(proc.pid, port), 60, "flower")
    return proc, port


def test_without_auth_settings_flower_is_loopback_only_behind_a_one_time_password(
        redis_url, tmp_path):
    proc, port = _flower(redis_url, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        assert _listening_addresses(proc.pid, port) == {"127.0.0.1"}
        printed = re.search(r"user (\S+) password (\S+)", proc.log())
        assert printed, proc.log()
        assert printed.group(2) not in " ".join(psutil.Process(proc.pid).cmdline())
        for path in ("/", "/workers", "/api/workers", "/metrics"):
            assert requests.get(base + path, timeout=10).status_code == 401
        assert requests.get(base + "/workers", auth=printed.groups(), timeout=10).ok
    finally:
        proc.stop()


def test_with_auth_every_page_needs_the_password(redis_url, tmp_path):
    proc, port = _flower(redis_url, tmp_path, FLOWER_BASIC_AUTH="ops:s3cret-pass")
    base = f"http://127.0.0.1:{port}"
    try:
        # Not on its command line, which every user of the machine can read.
        assert "s3cret-pass" not in " ".join(psutil.Process(proc.pid).cmdline())
        assert _listening_addresses(proc.pid, port) == {"0.0.0.0"}
        for path in ("/", "/workers", "/api/workers", "/tasks", "/metrics"):
            assert requests.get(base + path, timeout=10).status_code == 401
            assert requests.get(base + path, auth=("ops", "wrong"), timeout=10).status_code == 401
        assert requests.get(base + "/workers", auth=("ops", "s3cret-pass"), timeout=10).ok
    finally:
        proc.stop()
