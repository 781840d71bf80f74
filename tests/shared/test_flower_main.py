"""Flower, started as `make run` starts it, never answers anonymous requests:
without FLOWER_BASIC_AUTH it listens on 127.0.0.1 only, behind a one-time password
it prints; with it, on every interface behind those credentials. It turns the
workers' task events on only when `TASK_EVENTS` asks for them."""

import base64
import json
import re

import psutil
import pytest
import requests

from bench.stack import Process, await_condition, base_env, free_port

pytestmark = pytest.mark.processes


def _listening_addresses(pid: int, port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def _flower(redis_url, tmp_path, log_name="flower.log", **env):
    import sys

    port = free_port()
    proc = Process([sys.executable, "-m", "shared.flower_main"],
                   base_env(REDIS_URL=redis_url, FLOWER_PORT=port, **env), tmp_path / log_name)
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


def _broadcast_methods(message) -> str:
    """The remote-control command a message on Celery's pidbox channel carries."""
    envelope = json.loads(message["data"])
    return json.loads(base64.b64decode(envelope["body"]))["method"]


def test_flower_turns_workers_task_events_on_only_when_task_events_asks(redis_url, tmp_path):
    """Flower's default is to broadcast `enable_events` to every worker every 5 s,
    which would undo `TASK_EVENTS=false` wherever Flower runs (make run, compose,
    the chart). Two Flowers, each on a database of its own, so that their
    broadcasts (channel `/<db>.celery.pidbox`) are told apart: the default one
    starts first, so by the time the one with TASK_EVENTS=true has sent its second
    `enable_events`, the default one's timer would have fired too."""
    import redis

    base, _, _ = redis_url.rpartition("/")
    client = redis.Redis.from_url(redis_url)
    listener = client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe("/1.celery.pidbox", "/2.celery.pidbox")
    sent: dict[str, list[str]] = {"/1.celery.pidbox": [], "/2.celery.pidbox": []}

    def broadcasts(channel: str) -> list[str]:
        while (message := listener.get_message(timeout=0.05)) is not None:
            sent[message["channel"].decode()].append(_broadcast_methods(message))
        return sent[channel]

    default, _ = _flower(f"{base}/1", tmp_path, "flower-default.log")
    asked, _ = _flower(f"{base}/2", tmp_path, "flower-asked.log", TASK_EVENTS="true")
    try:
        await_condition(lambda: broadcasts("/2.celery.pidbox").count("enable_events") >= 2,
                        60, "two enable_events from the Flower asked for task events")
        assert "enable_events" not in broadcasts("/1.celery.pidbox"), sent
    finally:
        asked.stop()
        default.stop()
        listener.close()
        client.close()
