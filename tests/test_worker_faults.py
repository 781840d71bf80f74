"""Faults injected for real: a worker SIGKILLed mid-batch loses no job."""

import os
import signal
import time
import uuid

import pytest
import redis
import yaml

from bench.stack import ROOT, await_condition, start_worker
from tests.conftest import make_settings, running_app
from tests.support.gated_worker import GATE_DIR_VAR, GATE_MARKER
from tests.support.images import jpeg
from tests.support.poison_worker import POISON_MARKER
from tests.support.queue_state import await_busy, held_job_ids, snapshot

pytestmark = [pytest.mark.chaos, pytest.mark.processes]

VISIBILITY_TIMEOUT = 3


def chart_values() -> dict:
    return yaml.safe_load((ROOT / "charts" / "resq" / "values.yaml").read_text())


@pytest.fixture()
def faulty_queue(redis_url):
    settings = make_settings(redis_url, queue_name=f"faults-{uuid.uuid4().hex[:6]}",
                             visibility_timeout_seconds=VISIBILITY_TIMEOUT)
    with running_app(settings) as app:
        yield settings, app.test_client()


JPEG = jpeg()


def busy_worker(client, broker: redis.Redis, queue: str, ids: list[str]) -> set[str]:
    """Await a busy worker: one that holds some of `ids` while more wait in the queue
    (jobs are added in bursts as it takes them, so this holds at any speed).
    Returns the ids it holds at that moment."""
    return await_busy(lambda: submit(client), lambda: snapshot(broker, queue)[1] & set(ids),
                      lambda: broker.llen(queue), ids)


def submit(client, image: bytes = JPEG) -> str:
    return client.post("/jobs", data=image, content_type="image/jpeg").get_json()["id"]


def test_jobs_of_a_worker_killed_mid_batch_are_delivered_again(faulty_queue, redis_url, tmp_path):
    settings, client = faulty_queue
    broker = redis.Redis.from_url(redis_url)
    env = {"VISIBILITY_TIMEOUT_SECONDS": VISIBILITY_TIMEOUT, "BATCH_MAX_SIZE": 4}
    ids = [submit(client) for _ in range(12)]
    first = start_worker(redis_url, settings.queue_name, tmp_path / "first.log", **env)

    # Kill it (no warm shutdown, no chance to hand anything back) while it holds jobs.
    held = busy_worker(client, broker, settings.queue_name, ids)
    first.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    assert held <= held_job_ids(broker)  # still taken, and nobody left to finish them

    second = start_worker(redis_url, settings.queue_name, tmp_path / "second.log", **env)
    final = [client.get(f"/jobs/{job_id}?wait=60").get_json()["status"] for job_id in ids]
    recovered_after = time.monotonic() - killed_at
    second.stop()
    print(f"{len(held)} jobs in the killed worker's hands; all {len(ids)} succeeded "
          f"{recovered_after:.1f} s after it (visibility timeout {VISIBILITY_TIMEOUT} s)")
    assert final == ["succeeded"] * len(ids)
    assert not held_job_ids(broker) & set(ids)


def test_sigterm_finishes_what_the_worker_holds_and_loses_nothing(faulty_queue, redis_url,
                                                                   tmp_path):
    """A scale-in: SIGTERM to a busy worker. It stops taking jobs, finishes the ones
    it holds (Celery's warm shutdown) and exits inside the Helm chart's
    terminationGracePeriodSeconds; the rest wait in the queue for the next worker.
    Its first job is held at a gate (tests/support/gated_worker.py) until the worker
    has taken the signal in, so that however fast this machine is, jobs still wait
    in the queue when it is told to stop."""
    settings, client = faulty_queue
    broker = redis.Redis.from_url(redis_url)
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {"VISIBILITY_TIMEOUT_SECONDS": 600, "BATCH_MAX_SIZE": 4}  # no redelivery help
    first = start_worker(redis_url, settings.queue_name, tmp_path / "first.log",
                         module="tests.support.gated_worker", **{GATE_DIR_VAR: gate}, **env)
    ids = [submit(client, JPEG + GATE_MARKER)] + [submit(client) for _ in range(16)]
    await_condition(lambda: (gate / "entered").exists(), 60, "the first job at the gate")
    grace = chart_values()["worker"]["terminationGracePeriodSeconds"]
    stopping = time.monotonic()
    os.killpg(first.pid, signal.SIGTERM)
    await_condition(lambda: "Warm shutdown" in first.log(), 30, "the warm shutdown")
    waiting, held = snapshot(broker, settings.queue_name)
    held &= set(ids)
    assert ids[0] in held and waiting > 0  # told to stop with jobs in hand and more waiting
    (gate / "open").touch()
    assert first.popen.wait(grace) == 0
    grace_used = time.monotonic() - stopping
    assert grace_used < grace
    after_stop = {i: client.get(f"/jobs/{i}").get_json()["status"] for i in ids}
    # What it held when told to stop, it finished; nothing is left half-done or taken.
    assert {after_stop[i] for i in held} == {"succeeded"}
    assert "started" not in after_stop.values()
    assert not held_job_ids(broker) & set(ids)
    assert "queued" in after_stop.values()  # the queue was not drained: it stopped taking
    done_by_first = sum(status == "succeeded" for status in after_stop.values())

    second = start_worker(redis_url, settings.queue_name, tmp_path / "second.log", **env)
    final = [client.get(f"/jobs/{i}?wait=60").get_json()["status"] for i in ids]
    second.stop()
    print(f"SIGTERM: the worker held {len(held)} jobs, finished {done_by_first} in "
          f"{grace_used:.1f} s (the chart's grace: {grace} s) and exited; "
          f"the next worker did the other {len(ids) - done_by_first}")
    assert final == ["succeeded"] * len(ids)


def test_a_poison_job_fails_after_max_attempts_and_the_other_jobs_succeed(redis_url, tmp_path):
    """A job that kills its worker every time (SIGKILL while it is decoded: see
    tests/support/poison_worker.py) is retried alone and fails after
    JOB_MAX_ATTEMPTS; the jobs that shared its first batch are not charged with it.
    The test restarts the dead worker each time, as Kubernetes would."""
    max_attempts = 2
    env = {"VISIBILITY_TIMEOUT_SECONDS": VISIBILITY_TIMEOUT, "BATCH_MAX_SIZE": 4,
           "JOB_MAX_ATTEMPTS": max_attempts, "BATCH_MAX_WAIT_MS": 200}
    settings = make_settings(redis_url, queue_name=f"poison-{uuid.uuid4().hex[:6]}")
    with running_app(settings) as app:
        client = app.test_client()

        def submit(body):
            return client.post("/jobs", data=body, content_type="image/jpeg").get_json()["id"]

        others = [submit(jpeg()) for _ in range(3)]
        poison = submit(jpeg() + POISON_MARKER)
        others += [submit(jpeg()) for _ in range(6)]

        def poison_status():
            return client.get(f"/jobs/{poison}").get_json()["status"]

        deaths = 0
        while True:
            proc = start_worker(redis_url, settings.queue_name, tmp_path / f"w{deaths}.log",
                                wait_ready=False, module="tests.support.poison_worker", **env)
            await_condition(lambda proc=proc: not proc.alive() or poison_status() == "failed", 180,
                            "the worker to die or the poison job to fail")
            if proc.alive():
                break
            deaths += 1
            assert deaths <= max_attempts, "the poison job kept killing workers"
        try:
            finished = [client.get(f"/jobs/{i}?wait=60").get_json() for i in others]
            final = [job["status"] for job in finished]
        finally:
            proc.stop()
        job = client.get(f"/jobs/{poison}").get_json()
        print(f"poison job: {deaths} worker deaths, then {job['error']}")
        assert deaths == max_attempts
        assert job["status"] == "failed" and job["error"]["code"] == "job_killed_worker"
        assert final == ["succeeded"] * len(others), [job["error"] for job in finished]
