"""Celery task events are off unless `TASK_EVENTS` asks for them (they cost about
9 ms of CPU a job across the tiers); workers still send their heartbeats, which is
what Flower's worker pages show. Real worker, real Redis, Celery's own receiver."""

import threading
import uuid

import pytest

from bench.stack import await_condition, start_worker
from shared.celery_app import make_celery
from tests.conftest import make_settings, running_app
from tests.support.images import jpeg

pytestmark = pytest.mark.processes


def events_around_one_job(redis_url, tmp_path, **env) -> tuple[str, list[dict]]:
    queue = f"events-{uuid.uuid4().hex[:6]}"
    settings = make_settings(redis_url, queue_name=queue, **{k.lower(): v for k, v in env.items()})
    app = make_celery(settings)
    seen: list[dict] = []
    receivers = []

    def listen():
        with app.connection_for_read() as connection:
            receiver = app.events.Receiver(connection, handlers={"*": seen.append})
            receivers.append(receiver)
            try:
                receiver.capture(limit=None, timeout=None, wakeup=False)
            except Exception:
                if not receiver.should_stop:
                    raise

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    await_condition(lambda: receivers, 10, "the event receiver")
    worker = start_worker(redis_url, queue, tmp_path / f"worker-{queue}.log", **env)
    try:
        with running_app(settings) as web_app:
            job = web_app.test_client().post("/jobs?wait=30", data=jpeg(),
                                             content_type="image/jpeg").get_json()
        assert job["status"] == "succeeded"
        done = len(seen)
        # A worker heartbeat after the job proves events were flowing meanwhile.
        await_condition(lambda: any(e["type"] == "worker-heartbeat" for e in seen[done:]),
                        30, "a worker heartbeat after the job")
    finally:
        receivers[0].should_stop = True
        worker.stop()
        listener.join(10)
    return job["id"], seen


def test_by_default_a_job_sends_no_task_events_and_workers_still_beat(redis_url, tmp_path):
    job_id, seen = events_around_one_job(redis_url, tmp_path)
    assert not [e for e in seen if e["type"].startswith("task-")]
    assert any(e["type"] == "worker-heartbeat" for e in seen)


def test_task_events_on_request(redis_url, tmp_path):
    job_id, seen = events_around_one_job(redis_url, tmp_path, TASK_EVENTS="true")
    types = {e["type"] for e in seen if e.get("uuid") == job_id}
    assert {"task-sent", "task-received", "task-succeeded"} <= types, types
