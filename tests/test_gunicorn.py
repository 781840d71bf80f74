"""The web tier through real gunicorn over HTTP, with the real worker."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bench.stack import start_gunicorn
from tests.conftest import WORKER_QUEUE
from tests.support.images import jpeg

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def web(redis_url, worker, tmp_path_factory):
    # Enough threads that one process can hold every wait of the test: gunicorn does
    # not spread connections evenly between its two processes.
    proc, base = start_gunicorn(redis_url, WORKER_QUEUE,
                                tmp_path_factory.mktemp("gunicorn") / "web.log", WEB_THREADS=32)
    yield base
    assert proc.stop() == 0


def test_submit_and_wait_over_http(web):
    response = requests.post(f"{web}/jobs?wait=30", data=jpeg(),
                             headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "succeeded" and len(job["result"]["predictions"]) == 5
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    again = requests.get(web + response.headers["Location"], timeout=10).json()
    assert again == job


def test_multipart_over_http_then_poll(web):
    photo = jpeg(1600, 1200)  # a camera-size upload, far over werkzeug's 64 KiB reads
    accepted = requests.post(f"{web}/jobs", files={"image": ("cat.jpg", photo, "image/jpeg")},
                             timeout=30)
    assert accepted.status_code == 202
    job = requests.get(f"{web}{accepted.headers['Location']}?wait=30", timeout=60).json()
    assert job["status"] == "succeeded"


def test_errors_over_http_are_json(web):
    response = requests.post(f"{web}/jobs", data=b"plain text",
                             headers={"Content-Type": "text/plain"}, timeout=10)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    missing = requests.get(f"{web}/jobs/00000000-0000-4000-8000-000000000000", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"


def test_many_waits_do_not_block_other_requests(web, idle_client):
    """Long polls hold threads, not processes: with 14 waits in flight on jobs that
    no worker takes (created on an idle queue of the same Redis), /healthz still
    answers, and every wait ends with a 200 and the job still queued."""
    ids = [idle_client.post("/jobs", data=jpeg(), content_type="image/jpeg").get_json()["id"]
           for _ in range(14)]
    started = threading.Barrier(len(ids) + 1)

    def long_poll(job_id):
        started.wait()
        response = requests.get(f"{web}/jobs/{job_id}?wait=5", timeout=60)
        return response.status_code, response.json()["status"]

    with ThreadPoolExecutor(len(ids)) as pool:
        futures = [pool.submit(long_poll, job_id) for job_id in ids]
        started.wait()
        health = requests.get(f"{web}/healthz", timeout=10)
        in_flight = sum(not future.done() for future in futures)
        results = [future.result() for future in futures]
    assert health.status_code == 200
    assert in_flight == len(ids)
    assert results == [(200, "queued")] * len(ids)


def test_made_up_methods_add_no_metric_series(web):
    """gunicorn accepts any uppercase token as a method. Every one of them is labelled
    `other`, so a client sending made-up methods cannot grow /metrics (150 of them
    used to add about 2,500 samples, without a key and outside the rate limit)."""
    import random
    import string

    from prometheus_client.parser import text_string_to_metric_families

    def series() -> set:
        text = requests.get(f"{web}/metrics", timeout=10).text
        return {(s.name, tuple(sorted(s.labels.items())))
                for family in text_string_to_metric_families(text) for s in family.samples}

    def made_up(count: int):
        rng = random.Random(count)
        for _ in range(count):
            method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 20)))
            requests.request(method, f"{web}/healthz", timeout=10)

    made_up(5)  # the `other` series exist from here on
    before = series()
    made_up(150)
    after = series()
    methods = {dict(labels).get("method") for _, labels in after} - {None}
    print(f"\n/metrics: {len(before)} series after 5 made-up methods, {len(after)} after 150 more")
    assert after == before
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


def test_every_labelled_counter_reads_zero_before_its_first_event(web):
    text = requests.get(f"{web}/metrics", timeout=10).text
    assert 'resq_rejections_total{reason="queue_full"} 0.0' in text
    assert 'resq_waits_total{outcome="timeout"}' in text
    assert 'resq_jobs_submitted_total{form="url",lane="interactive"} 0.0' in text
