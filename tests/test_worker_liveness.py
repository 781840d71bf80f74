"""A wedged worker is seen (finding 9 of the hardening issue): a batch that makes no
progress fails its jobs with `worker_stalled` after `WORKER_STALL_SECONDS` instead
of holding them forever, and the worker's `/healthz` (its liveness probe) answers
503 until the batcher gets through its work again. The real worker, with its decode
held at a gate (tests/support/gated_worker.py) to stand for a hung decode."""

import sys
import uuid

import pytest
import requests

from bench.stack import (
    ROOT,
    Process,
    await_condition,
    base_env,
    free_port,
    start_worker,
)
from tests.conftest import make_settings, running_app
from tests.support.gated_worker import GATE_DIR_VAR, GATE_MARKER
from tests.support.images import jpeg

pytestmark = pytest.mark.processes


def stallable_worker(redis_url, tmp_path):
    queue = f"stall-{uuid.uuid4().hex[:6]}"
    gate = tmp_path / "gate"
    gate.mkdir()
    port = free_port()
    worker = start_worker(redis_url, queue, tmp_path / "worker.log",
                          module="tests.support.gated_worker", WORKER_METRICS_PORT=port,
                          WORKER_STALL_SECONDS=2, **{GATE_DIR_VAR: gate})
    return queue, gate, port, worker


def test_a_wedged_batch_fails_its_job_and_the_worker_says_it_is_stalled(redis_url, tmp_path):
    queue, gate, port, worker = stallable_worker(redis_url, tmp_path)
    health = f"http://127.0.0.1:{port}/healthz"
    try:
        idle = requests.get(health, timeout=5)
        assert idle.status_code == 200 and idle.json()["status"] == "idle"
        with running_app(make_settings(redis_url, queue_name=queue)) as app:
            web = app.test_client()
            held = web.post("/jobs?wait=30", data=jpeg() + GATE_MARKER,
                            content_type="image/jpeg").get_json()
            assert held["status"] == "failed", held
            assert held["error"]["code"] == "worker_stalled"
            await_condition(lambda: requests.get(health, timeout=5).status_code == 503, 30,
                            "the worker to say it is stalled")
            body = requests.get(health, timeout=5).json()
            assert body["status"] == "stalled" and body["stalled_seconds"] >= 2
            assert worker.alive()  # the probe's owner restarts it; the worker only tells

            (gate / "open").touch()  # the hung decode ends: the batcher moves again
            await_condition(lambda: requests.get(health, timeout=5).status_code == 200, 30,
                            "the worker to recover")
            after = web.post("/jobs?wait=30", data=jpeg(), content_type="image/jpeg")
            assert after.get_json()["status"] == "succeeded"
            # The stalled job stays failed: the late batch does not change its end.
            assert web.get(f"/jobs/{held['id']}").get_json()["status"] == "failed"
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "resq_worker_jobs_total" in metrics
    finally:
        worker.stop()


def test_the_liveness_watch_of_make_run_kills_a_stalled_worker_only(redis_url, tmp_path):
    """`make run` watches its worker with `python -m shared.liveness` (as a kubelet
    would, here every 0.2 s): a worker that keeps working is left alone, one that
    stalls is killed, for its supervisor to restart."""
    queue, gate, port, worker = stallable_worker(redis_url, tmp_path)
    watch = Process([sys.executable, "-m", "shared.liveness",
                     f"http://127.0.0.1:{port}/healthz", "--period", "0.2", "--failures", "5",
                     "--watch", str(worker.pid)], base_env(), tmp_path / "watch.log", cwd=ROOT)
    try:
        with running_app(make_settings(redis_url, queue_name=queue)) as app:
            web = app.test_client()
            # Working (about 10 checks go by while this job is held 2 s): left alone.
            held = web.post("/jobs?wait=30", data=jpeg() + GATE_MARKER,
                            content_type="image/jpeg").get_json()
            assert held["error"]["code"] == "worker_stalled" and worker.alive()
        # Stalled from here (the gate stays shut): killed after 5 failed checks.
        await_condition(lambda: not worker.alive(), 30, "the watch to kill the worker")
        assert worker.popen.returncode == -9
        await_condition(lambda: not watch.alive(), 10, "the watch to end")
        assert watch.popen.returncode == 1 and "failed 5 checks" in watch.log()
    finally:
        watch.stop()
        worker.stop()
