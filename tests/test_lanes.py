"""Short waits stay short under a backlog: the interactive lane, job deadlines and
per-key quotas, against the real app, a real Redis and real worker processes."""

import time
import uuid

import pytest
import redis

from bench.stack import await_condition, start_worker
from shared.lanes import Lane, lane_list
from tests.conftest import make_settings, running_app
from tests.support.images import jpeg
from tests.support.poison_worker import POISON_MARKER

pytestmark = pytest.mark.processes

JPEG = jpeg()


def queue_settings(redis_url, **overrides):
    return make_settings(redis_url, queue_name=f"lanes-{uuid.uuid4().hex[:6]}", **overrides)


def submit(client, query: str = "", body: bytes = JPEG, headers=None):
    return client.post(f"/jobs{query}", data=body, content_type="image/jpeg",
                       headers=headers or {})


def test_a_job_submitted_with_a_wait_goes_to_the_interactive_lane_and_runs_first(
        redis_url, tmp_path):
    """With a backlog in the batch lane, a job whose client waits is the first one a
    worker takes: the live lists show where each went, and the order the worker
    started them shows which lane it serves first."""
    settings = queue_settings(redis_url)
    broker = redis.Redis.from_url(redis_url)
    with running_app(settings) as app:
        client = app.test_client()
        backlog = [submit(client).get_json()["id"] for _ in range(6)]
        # A wait of a moment: no worker yet, so it is answered 202 as it is.
        waited = submit(client, "?wait=0.01")
        assert waited.status_code == 202
        urgent = waited.get_json()["id"]
        assert broker.llen(lane_list(settings.queue_name, Lane.BATCH)) == 6
        assert broker.llen(lane_list(settings.queue_name, Lane.INTERACTIVE)) == 1

        proc = start_worker(redis_url, settings.queue_name, tmp_path / "worker.log",
                            WORKER_CONCURRENCY=1, BATCH_MAX_SIZE=1)
        try:
            jobs = {i: client.get(f"/jobs/{i}?wait=60").get_json() for i in [urgent, *backlog]}
        finally:
            proc.stop()
        assert {job["status"] for job in jobs.values()} == {"succeeded"}
        # When each was taken: its creation plus its time in the queue.
        started = {i: job["created_at"] + job["result"]["timing_ms"]["queued"] / 1000
                   for i, job in jobs.items()}
        order = sorted(started, key=started.get)
        assert order[0] == urgent, f"started in order {order}; the interactive job {urgent}"
        assert order[1:] == backlog  # the batch lane keeps its FIFO order


def test_with_the_lane_off_every_job_goes_to_the_batch_lane(redis_url):
    settings = queue_settings(redis_url, interactive_lane=False)
    broker = redis.Redis.from_url(redis_url)
    with running_app(settings) as app:
        client = app.test_client()
        assert submit(client, "?wait=0.01").status_code == 202
        assert submit(client).status_code == 202
    assert broker.llen(lane_list(settings.queue_name, Lane.BATCH)) == 2
    assert broker.llen(lane_list(settings.queue_name, Lane.INTERACTIVE)) == 0


def await_past(deadline_at: float) -> None:
    await_condition(lambda: time.time() > deadline_at, 30, "the job's deadline to pass")


def test_a_job_queued_past_its_deadline_reads_expired_and_never_runs(redis_url, tmp_path):
    """No worker runs while the deadline passes: reading the job ends it `expired`
    (its error in the job's JSON), and a worker that starts later never decodes it:
    its image would kill the worker if it did (the poison worker)."""
    settings = queue_settings(redis_url)
    with running_app(settings) as app:
        client = app.test_client()
        accepted = submit(client, "?deadline_seconds=0.2", body=JPEG + POISON_MARKER)
        assert accepted.status_code == 202
        job = accepted.get_json()
        await_past(job["created_at"] + 0.2)
        read = client.get(f"/jobs/{job['id']}").get_json()
        assert read["status"] == "failed" and read["error"]["code"] == "expired"

        # Another one, read by nobody: the worker takes its message and drops it.
        other = submit(client, "?deadline_seconds=0.2", body=JPEG + POISON_MARKER).get_json()
        fresh = submit(client).get_json()  # no deadline: it runs
        await_past(other["created_at"] + 0.2)
        proc = start_worker(redis_url, settings.queue_name, tmp_path / "worker.log",
                            module="tests.support.poison_worker")
        try:
            assert client.get(f"/jobs/{fresh['id']}?wait=60").get_json()["status"] == "succeeded"
            ended = client.get(f"/jobs/{other['id']}?wait=60").get_json()
            assert proc.alive(), "the worker decoded an expired job's image"
        finally:
            proc.stop()
        assert ended["status"] == "failed" and ended["error"]["code"] == "expired"
        assert "never ran" in ended["error"]["message"]


def test_the_server_wide_deadline_bounds_what_a_job_asks_for(redis_url):
    settings = queue_settings(redis_url, job_max_queue_seconds=0.2)
    with running_app(settings) as app:
        client = app.test_client()
        job = submit(client, "?deadline_seconds=3600").get_json()
        await_past(job["created_at"] + 0.2)
        read = client.get(f"/jobs/{job['id']}").get_json()
    assert read["error"]["code"] == "expired"


@pytest.mark.parametrize("query", ["?deadline_seconds=0", "?deadline_seconds=-1",
                                   "?deadline_seconds=86401", "?deadline_seconds=soon",
                                   "?webhook_events=finished"])
def test_bad_deadlines_and_events_are_422_and_never_queued(redis_url, query):
    settings = queue_settings(redis_url)
    broker = redis.Redis.from_url(redis_url)
    with running_app(settings) as app:
        answer = submit(app.test_client(), query)
    assert answer.status_code == 422
    assert answer.get_json()["error"]["code"] == "invalid_field"
    assert broker.llen(settings.queue_name) == 0


ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef00"


def test_a_key_over_its_quota_gets_429_while_another_key_gets_in(redis_url, tmp_path):
    settings = queue_settings(redis_url, api_keys=f"{ALICE},{BOB}", queue_max_per_key=3)
    alice = {"Authorization": f"Bearer {ALICE}"}
    bob = {"Authorization": f"Bearer {BOB}"}
    with running_app(settings) as app:
        client = app.test_client()
        first = [submit(client, headers=alice) for _ in range(3)]
        assert [answer.status_code for answer in first] == [202] * 3
        over = submit(client, headers=alice)
        assert over.status_code == 429
        assert over.get_json()["error"]["code"] == "quota_exceeded"
        assert int(over.headers["Retry-After"]) > 0
        # Another key is not affected: it submits, and its short wait is an answer.
        assert submit(client, headers=bob).status_code == 202
        assert submit(client, "?wait=0.01", headers=bob).status_code == 202

        # Once Alice's jobs start, she may queue again.
        proc = start_worker(redis_url, settings.queue_name, tmp_path / "worker.log")
        try:
            for answer in first:
                job_id = answer.get_json()["id"]
                assert client.get(f"/jobs/{job_id}?wait=60",
                                  headers=alice).get_json()["status"] == "succeeded"
            again = submit(client, "?wait=60", headers=alice)
        finally:
            proc.stop()
        assert again.status_code == 200 and again.get_json()["status"] == "succeeded"


def test_a_cancelled_queued_job_gives_its_quota_back(redis_url):
    settings = queue_settings(redis_url, queue_max_per_key=1)
    with running_app(settings) as app:
        client = app.test_client()
        job = submit(client).get_json()
        assert submit(client).status_code == 429
        assert client.delete(f"/jobs/{job['id']}").get_json()["error"]["code"] == "cancelled"
        assert submit(client).status_code == 202
