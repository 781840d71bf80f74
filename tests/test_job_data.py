"""The job data in Redis at full speed and through faults: new work beats old results
(finished jobs past Redis's memory are dropped oldest first, never a refusal while
nothing waits), a multipart request is admitted whole or not at all, a create cut
short (its web process killed, its reply timed out) is sent or ended, the
counters come back to 0 once the queue is empty, and a Redis outage longer than a
heartbeat's lapse hands no live worker's job to another. Real Redis, real worker
processes, the real app."""

import io
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis

from bench.stack import ROOT, await_condition, base_env, free_port, start_redis, start_worker
from shared.job_data.keys import QueueKeys
from tests.conftest import make_settings, running_app
from tests.support.gated_worker import GATE_DIR_VAR, GATE_MARKER
from tests.support.images import jpeg
from web.services import services

pytestmark = pytest.mark.processes

JPEG = jpeg(64, 48)


def submit(client, body: bytes = JPEG, query: str = "", **kwargs):
    return client.post(f"/jobs{query}", data=body, content_type="image/jpeg", **kwargs)


def counters(broker: redis.Redis, queue: str) -> dict:
    """Every count the job data keeps for `queue`, as Redis holds it now."""
    keys = QueueKeys(queue)
    quotas = {key.decode(): int(broker.get(key) or 0)
              for key in broker.scan_iter(keys.quota_counter("*"))}
    return {"queued_bytes": int(broker.get(keys.queued_bytes) or 0),
            "open": broker.zcard(keys.inflight),
            "quota": {key: count for key, count in quotas.items() if count},
            "waiting": sum(broker.llen(name) for name in keys.lane_lists)}


ZERO = {"queued_bytes": 0, "open": 0, "quota": {}, "waiting": 0}


def test_a_refused_multipart_request_leaves_no_job_behind(idle_settings):
    """QUEUE_MAX_PER_KEY=2 and one request with 3 images: 429, and nothing of it stays
    (it used to leave 2 jobs queued that held the key's quota)."""
    settings = idle_settings.model_copy(update={"queue_max_per_key": 2})
    broker = redis.Redis.from_url(settings.redis_url)
    with running_app(settings) as app:
        client = app.test_client()
        refused = client.post("/jobs", data={"image": [(io.BytesIO(JPEG), f"{n}.jpg")
                                                       for n in range(3)]})
        assert refused.status_code == 429, refused.get_json()
        assert counters(broker, settings.queue_name) == ZERO
        assert submit(client).status_code == 202  # its quota is whole
        two = client.post("/jobs", data={"image": [(io.BytesIO(JPEG), f"{n}.jpg")
                                                   for n in range(2)]})
        assert two.status_code == 429  # one slot left: the pair is refused whole
    assert counters(broker, settings.queue_name)["open"] == 1


def test_finished_jobs_past_redis_memory_make_room_for_new_work(small_redis, tmp_path):
    """A worker finishes more jobs than Redis can keep: the oldest results are dropped
    (counted, and a GET for one says so), and no submission is refused, since
    nothing waits."""
    url, broker = small_redis
    broker.config_set("maxmemory", "6mb")
    queue = "budget"
    settings = make_settings(url, queue_name=queue)
    worker = start_worker(url, queue, tmp_path / "worker.log")
    ids, refused = [], []
    try:
        with running_app(settings) as app:
            client = app.test_client()
            # top_k=20: bigger results, so that Redis fills with fewer jobs.
            while not broker.get(QueueKeys(queue).results_dropped) or len(ids) < 200:
                answer = submit(client, query="?wait=30&top_k=20")
                if answer.status_code != 200:
                    refused.append((answer.status_code, answer.get_json()))
                    continue
                ids.append(answer.get_json()["id"])
                assert len(ids) < 20_000, "Redis never filled"
            for _ in range(200):  # and on, past the first drops
                answer = submit(client, query="?wait=30&top_k=20")
                if answer.status_code == 200:
                    ids.append(answer.get_json()["id"])
                else:
                    refused.append((answer.status_code, answer.get_json()))
            first, last = client.get(f"/jobs/{ids[0]}"), client.get(f"/jobs/{ids[-1]}")
            metrics = client.get("/metrics").get_data(as_text=True)
    finally:
        worker.stop()
    dropped = int(broker.get(QueueKeys(queue).results_dropped))
    memory = broker.info("memory")
    print(f"\n{len(ids)} jobs through a {memory['maxmemory'] / 2**20:.0f} MiB Redis: "
          f"{dropped} results dropped, {len(refused)} refused")
    assert refused == []
    assert first.status_code == 404 and first.get_json()["error"]["code"] == "result_dropped"
    assert last.status_code == 200 and last.get_json()["status"] == "succeeded"
    assert f'resq_results_dropped_total{{queue="{queue}"}} {float(dropped)}' in metrics
    assert memory["used_memory"] < memory["maxmemory"]
    assert counters(broker, queue) == ZERO


KILLED_CREATE = """
import os, signal, sys
import redis
from shared.celery_app import make_celery
from shared.job_data.store import JobStore
from shared.settings import CommonSettings

class KilledWhileSending(JobStore):
    # Stand-in for a web process SIGKILLed at one instant: after the create script,
    # before the message is sent. The kill is real; only its timing is arranged.
    def _send(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

settings = CommonSettings.load(redis_url=sys.argv[1], queue_name=sys.argv[2])
store = KilledWhileSending(redis.Redis.from_url(sys.argv[1]), make_celery(settings),
                           queue=sys.argv[2], ttl_seconds=3600)
store.create(sys.argv[3], top_k=5, form="raw", image=open(sys.argv[4], "rb").read())
"""


def test_a_create_cut_short_by_a_kill_is_sent_by_the_sweeper(redis_url, tmp_path):
    """A web process killed between the create script and sending the message left a
    queued record that nothing ever sent, holding its image and its bytes."""
    queue = f"killed-{uuid.uuid4().hex[:6]}"
    broker = redis.Redis.from_url(redis_url)
    image = tmp_path / "image.jpg"
    image.write_bytes(JPEG)
    job_id = str(uuid.uuid4())
    killed = subprocess.run([sys.executable, "-c", KILLED_CREATE, redis_url, queue, job_id,
                             str(image)], cwd=ROOT, env=base_env(), timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert broker.hget(QueueKeys(queue).record(job_id), "status") == b"queued"
    assert broker.llen(queue) == 0  # never sent
    worker = start_worker(redis_url, queue, tmp_path / "worker.log",
                          VISIBILITY_TIMEOUT_SECONDS=1)
    try:
        with running_app(make_settings(redis_url, queue_name=queue)) as app:
            job = app.test_client().get(f"/jobs/{job_id}?wait=60").get_json()
    finally:
        worker.stop()
    assert job["status"] == "succeeded"
    assert counters(broker, queue) == ZERO


def test_a_create_whose_reply_timed_out_ends_with_the_counters_at_zero(redis_url, tmp_path):
    """The create script runs, but its reply comes after the client's timeout (Redis
    busy with a long script): the client gets 503; the job it was never told about
    is sent or ended, and holds nothing once the queue is empty."""
    queue = f"timeout-{uuid.uuid4().hex[:6]}"
    broker = redis.Redis.from_url(redis_url)
    settings = make_settings(redis_url, queue_name=queue)
    busy = threading.Thread(target=lambda: redis.Redis.from_url(redis_url).eval(
        "local t0 = redis.call('TIME') repeat local t = redis.call('TIME') "
        "until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 1500000 return 1", 0))
    with running_app(settings) as app:
        service = services(app).jobs
        service.store.client.connection_pool.connection_kwargs["socket_timeout"] = 0.5
        service.store.client.connection_pool.disconnect()
        client = app.test_client()
        busy.start()
        time.sleep(0.2)  # the busy script holds Redis; awaited only as a head start
        answer = submit(client)
        busy.join()
        assert answer.status_code == 503, answer.get_json()
    worker = start_worker(redis_url, queue, tmp_path / "worker.log",
                          VISIBILITY_TIMEOUT_SECONDS=1)
    try:
        await_condition(lambda: counters(broker, queue) == ZERO, 60, "the counters at 0")
    finally:
        worker.stop()


BEAT = 0.5


def test_a_redis_outage_longer_than_a_lapse_hands_no_live_workers_job_away(tmp_path):
    """Redis stops answering (SIGSTOP) for longer than a heartbeat's lapse while a job
    is held at a gate by a live worker. When Redis answers again, every heartbeat
    has lapsed: the other worker must give the held job's worker time to beat again,
    not deliver its job a second time."""
    port = free_port()
    server = start_redis(port, tmp_path / "redis")
    url = f"redis://127.0.0.1:{port}/0"
    broker = redis.Redis.from_url(url)
    await_condition(broker.ping, 10, "redis-server")
    queue = "outage"
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {"WORKER_HEARTBEAT_SECONDS": BEAT, "VISIBILITY_TIMEOUT_SECONDS": 3600}
    holder = start_worker(url, queue, tmp_path / "holder.log",
                          module="tests.support.gated_worker", **{GATE_DIR_VAR: gate}, **env)
    try:
        with running_app(make_settings(url, queue_name=queue)) as app:
            client = app.test_client()
            held = submit(client, JPEG + GATE_MARKER).get_json()["id"]
            await_condition(lambda: (gate / "entered").exists(), 60, "the job at the gate")
            other = start_worker(url, queue, tmp_path / "other.log", **env)
            registry = QueueKeys(queue).workers
            other_id = next(m.decode() for m in broker.zrange(registry, 0, -1)
                            if f":{other.pid}:" in m.decode())
            os.kill(server.pid, signal.SIGSTOP)
            stopped = time.monotonic()
            # Longer than a lapse (5 beats) by a margin; the outage is the fault here.
            time.sleep(5 * BEAT * 2)
            os.kill(server.pid, signal.SIGCONT)
            print(f"\nRedis stopped for {time.monotonic() - stopped:.1f} s "
                  f"(lapse {5 * BEAT} s)")
            # The other worker beats (and scans) on for several lapses after Redis is back.
            back = broker.zscore(registry, other_id)
            await_condition(lambda: broker.zscore(registry, other_id) > back + 3 * 5 * BEAT,
                            60, "the other worker's beats after the outage", interval=0.1)
            assert held.encode() not in b"".join(broker.lrange(queue, 0, -1))
            (gate / "open").touch()
            assert client.get(f"/jobs/{held}?wait=60").get_json()["status"] == "succeeded"
        other.stop()
        holder.stop()
        runs = [line for log in (holder.log(), other.log()) for line in log.splitlines()
                if held in line and "classified" in line]
        assert len(runs) == 1, runs
        assert "delivered again" not in other.log()
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.stop()
