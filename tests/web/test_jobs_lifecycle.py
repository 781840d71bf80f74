"""Reading, waiting on and cancelling jobs; what an unknown id reads as."""

import pytest

from bench.stack import start_worker
from tests.conftest import WORKER_QUEUE, running_app
from tests.support.images import jpeg


def submit(client, query="") -> dict:
    response = client.post(f"/jobs{query}", data=jpeg(), content_type="image/jpeg")
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    return response.get_json()


def test_queued_job_reads_as_queued_and_a_random_id_does_not(idle_client):
    job = submit(idle_client)
    assert idle_client.get(f"/jobs/{job['id']}").get_json()["status"] == "queued"
    assert idle_client.get("/jobs/00000000-0000-4000-8000-000000000000").status_code == 404


def test_get_waits_for_a_finished_job(client):
    job = submit(client)
    finished = client.get(f"/jobs/{job['id']}", headers={"Prefer": "wait=30"})
    assert finished.status_code == 200
    assert finished.get_json()["status"] == "succeeded"
    assert finished.headers["Location"] == f"/jobs/{job['id']}"


def test_cancel_a_queued_job(idle_client):
    job = submit(idle_client)
    response = idle_client.delete(f"/jobs/{job['id']}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "cancelled"
    assert idle_client.get(f"/jobs/{job['id']}").get_json() == body


def test_cancel_unknown_is_404(client):
    assert client.delete("/jobs/00000000-0000-4000-8000-000000000000").status_code == 404


def test_cancel_leaves_a_finished_job_as_it_is(client):
    job = submit(client, "?wait=30")
    assert job["status"] == "succeeded"
    after = client.delete(f"/jobs/{job['id']}")
    assert after.status_code == 200 and after.get_json() == job
    assert client.get(f"/jobs/{job['id']}").get_json() == job


@pytest.mark.processes
def test_a_cancelled_job_is_never_run_when_a_worker_arrives(idle_settings, redis_url, tmp_path):
    with running_app(idle_settings) as app:
        client = app.test_client()
        cancelled, kept = submit(client), submit(client)
        client.delete(f"/jobs/{cancelled['id']}")
        # Now a worker starts on that queue: it takes both messages.
        worker = start_worker(redis_url, idle_settings.queue_name, tmp_path / "worker.log")
        try:
            assert client.get(f"/jobs/{kept['id']}?wait=30").get_json()["status"] == "succeeded"
            still = client.get(f"/jobs/{cancelled['id']}").get_json()
        finally:
            worker.stop()
    assert still["status"] == "failed" and still["error"]["code"] == "cancelled"
    # Its message was taken and dropped unrun; the other job's ran.
    assert "dropped unrun" in _lines_of(worker.log(), cancelled["id"])
    assert "classified" not in _lines_of(worker.log(), cancelled["id"])
    assert "classified" in _lines_of(worker.log(), kept["id"])


def _lines_of(log: str, job_id: str) -> str:
    return "\n".join(line for line in log.splitlines() if job_id in line)


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {"redis": "ok"}


@pytest.fixture()
def unreachable_client(redis_url):
    from bench.stack import free_port
    from tests.conftest import make_settings

    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    with running_app(make_settings(nowhere, queue_name=WORKER_QUEUE)) as app:
        yield app.test_client()


def test_redis_unreachable_is_503_with_retry_after(unreachable_client):
    response = unreachable_client.post("/jobs", data=jpeg(), content_type="image/jpeg")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "broker_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    ready = unreachable_client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["status"] == "unavailable"
    assert unreachable_client.get("/healthz").status_code == 200


def test_queue_full_is_503_with_retry_after(redis_url):
    import uuid

    from tests.conftest import make_settings

    settings = make_settings(redis_url, queue_name=f"full-{uuid.uuid4().hex[:6]}",
                             queue_max_length=2)
    with running_app(settings) as app:
        client = app.test_client()
        submit(client), submit(client)
        response = client.post("/jobs", data=jpeg(), content_type="image/jpeg")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "queue_full"
    assert int(response.headers["Retry-After"]) > 0
