"""Waits are bounded (finding 5 of the hardening issue): past `WAIT_MAX_CONCURRENT`
waits in a web process, or `WAIT_MAX_PER_KEY` of one API key, a request that asked
to wait is answered at once with the job as it is and `Retry-After`, instead of
taking a thread. Real gunicorn (one process, so every request meets the same
bounds) and Redis; no worker consumes the queue, so jobs stay queued until the test
cancels them, which ends the waits that were granted."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bench.stack import await_condition, start_gunicorn
from tests.support.images import jpeg
from web.wait_slots import WaitSlots

pytestmark = pytest.mark.processes

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef00"


def _auth(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture()
def web(redis_url, tmp_path):
    proc, base = start_gunicorn(redis_url, f"idle-{uuid.uuid4().hex[:8]}", tmp_path / "web.log",
                                WEB_WORKERS=1, WEB_THREADS=8, WAIT_MAX_CONCURRENT=4,
                                WAIT_MAX_PER_KEY=3, API_KEYS=f"{ALICE},{BOB}")
    yield base
    assert proc.stop() == 0


def _waits(web) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{web}/metrics", timeout=10).text
    return {s.labels["outcome"]: s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == "resq_waits_total"}


def test_waits_past_the_bounds_are_answered_at_once(web):
    def submit(key):
        response = requests.post(f"{web}/jobs", data=jpeg(64, 48), timeout=10,
                                 headers={"Content-Type": "image/jpeg", **_auth(key)})
        assert response.status_code == 202
        return response.json()["id"]

    alice_job, bob_job = submit(ALICE), submit(BOB)

    def poll(key, job_id):
        response = requests.get(f"{web}/jobs/{job_id}?wait=30", headers=_auth(key), timeout=60)
        return response.status_code, response.json()["status"], response.headers.get("Retry-After")

    with ThreadPoolExecutor(8) as pool:
        # Alice asks for 5 waits: 3 are hers to hold, 2 come back at once.
        alice = [pool.submit(poll, ALICE, alice_job) for _ in range(5)]
        await_condition(lambda: sum(f.done() for f in alice) == 2, 30, "Alice's 2 declined waits")
        # Bob asks for 3: the process holds 4 in all, so 1 is his, 2 come back at once.
        bob = [pool.submit(poll, BOB, bob_job) for _ in range(3)]
        await_condition(lambda: sum(f.done() for f in bob) == 2, 30, "Bob's 2 declined waits")
        declined = [f.result() for f in alice + bob if f.done()]
        held = [f for f in alice + bob if not f.done()]
        # Threads are left for everything else: probes, polls, submissions.
        health = requests.get(f"{web}/healthz", timeout=10).status_code
        counted = _waits(web)
        for key, job_id in ((ALICE, alice_job), (BOB, bob_job)):
            assert requests.delete(f"{web}/jobs/{job_id}", headers=_auth(key),
                                   timeout=10).status_code == 200
        ended = [f.result() for f in held]  # woken by the cancel: a canceled job fails
    assert declined == [(200, "queued", "1")] * 4
    assert len(held) == 4 and health == 200
    assert counted["declined"] == 4
    assert ended == [(200, "failed", None)] * 4


def test_slots_are_given_back():
    slots = WaitSlots(total=2, per_key=1)
    with slots.hold("a") as first, slots.hold("a") as second, slots.hold(None) as third:
        assert (first, second, third) == (True, False, True)
        with slots.hold("b") as fourth:
            assert fourth is False and slots.in_use == 2
    assert slots.in_use == 0
    with slots.hold("a") as again:
        assert again


def test_defaults_leave_a_quarter_of_the_threads_free():
    slots = WaitSlots.for_threads(64)
    assert (slots.total, slots.per_key) == (48, 24)
    assert WaitSlots.for_threads(1).total == 1
