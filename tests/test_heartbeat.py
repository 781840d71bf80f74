"""A dead worker's jobs come back on its lapsed heartbeat, not after the visibility
timeout (set to an hour here, so that nothing else could bring them back); a slow
worker whose heartbeat lives never has its jobs handed to another. Real Redis,
real worker processes, a real SIGKILL."""

import signal
import time
import uuid

import pytest
import redis

from bench.stack import await_condition, start_worker
from shared.job_data.keys import QueueKeys
from tests.conftest import make_settings, running_app
from tests.support.gated_worker import GATE_DIR_VAR, GATE_MARKER
from tests.support.images import jpeg
from tests.support.queue_state import await_busy, snapshot
from web.services import services

pytestmark = [pytest.mark.chaos, pytest.mark.processes]

BEAT = 0.5  # WORKER_HEARTBEAT_SECONDS: a worker silent for 2.5 s is dead
ENV = {"VISIBILITY_TIMEOUT_SECONDS": 3600, "WORKER_HEARTBEAT_SECONDS": BEAT,
       "BATCH_MAX_SIZE": 4}


@pytest.fixture()
def queue(redis_url):
    settings = make_settings(redis_url, queue_name=f"beat-{uuid.uuid4().hex[:6]}")
    broker = redis.Redis.from_url(redis_url)
    with running_app(settings) as app:
        yield settings.queue_name, app.test_client(), broker
    broker.close()


JPEG = jpeg()


def submit(client, body: bytes = JPEG) -> str:
    return client.post("/jobs", data=body, content_type="image/jpeg").get_json()["id"]


def worker_id_of(broker: redis.Redis, queue: str, pid: int) -> str:
    """The heartbeat id (host:pid:random) a worker process registered."""
    ids = [raw.decode() for raw in broker.zrange(QueueKeys(queue).workers, 0, -1)]
    return next(i for i in ids if i.split(":")[1] == str(pid))


def test_a_killed_workers_jobs_come_back_when_its_heartbeat_lapses(queue, tmp_path):
    name, client, broker = queue
    redis_url = services(client.application).settings.redis_url
    victim = start_worker(redis_url, name, tmp_path / "victim.log", **ENV)
    survivor = start_worker(redis_url, name, tmp_path / "survivor.log", **ENV)
    victim_id = worker_id_of(broker, name, victim.pid)
    ids = [submit(client) for _ in range(16)]

    held = await_busy(lambda: submit(client), lambda: {
        k.decode() for k in broker.hkeys(QueueKeys.held(victim_id))}, lambda: broker.llen(name),
        ids)
    victim.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    ended = [client.get(f"/jobs/{i}?wait=60").get_json()["status"] for i in sorted(held)]
    back_after = time.monotonic() - killed_at
    final = [client.get(f"/jobs/{i}?wait=60").get_json()["status"] for i in ids]
    survivor.stop()
    print(f"\n{len(held)} jobs held by the killed worker all ended {back_after:.1f} s after "
          f"the kill (heartbeat {BEAT} s, lapse {5 * BEAT} s; visibility timeout 3600 s)")
    assert ended == ["succeeded"] * len(held)
    assert final == ["succeeded"] * len(ids), [
        (i, s) for i, s in zip(ids, final, strict=True) if s != "succeeded"]
    assert "stopped beating" in survivor.log() and "delivered again" in survivor.log()
    assert broker.zscore(QueueKeys(name).workers, victim_id) is None  # forgotten


def test_a_slow_worker_with_a_live_heartbeat_keeps_its_jobs(queue, tmp_path):
    name, client, broker = queue
    redis_url = services(client.application).settings.redis_url
    gate = tmp_path / "gate"
    gate.mkdir()
    slow = start_worker(redis_url, name, tmp_path / "slow.log",
                        module="tests.support.gated_worker", **{GATE_DIR_VAR: gate}, **ENV)
    held_job = submit(client, jpeg() + GATE_MARKER)
    await_condition(lambda: (gate / "entered").exists(), 60, "the job to be in the worker")
    other = start_worker(redis_url, name, tmp_path / "other.log", **ENV)
    other_id = worker_id_of(broker, name, other.pid)
    # Held far past a heartbeat's lapse, as the other worker sees it beat by beat.
    watched_from = broker.zscore(QueueKeys(name).workers, other_id)
    await_condition(lambda: broker.zscore(QueueKeys(name).workers, other_id)
                    > watched_from + 4 * 5 * BEAT, 60, "the other worker's beats", interval=0.1)
    assert client.get(f"/jobs/{held_job}").get_json()["status"] == "started"
    waiting, unacked = snapshot(broker, name)
    assert waiting == 0 and held_job in unacked  # not handed back
    (gate / "open").touch()
    assert client.get(f"/jobs/{held_job}?wait=60").get_json()["status"] == "succeeded"
    slow.stop()
    other.stop()
    runs = [line for log in (slow.log(), other.log()) for line in log.splitlines()
            if held_job in line and "classified" in line]
    assert len(runs) == 1 and "stopped beating" not in other.log()
