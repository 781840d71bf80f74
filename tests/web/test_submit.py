"""`POST /jobs` in its three input forms, with a real worker behind the queue."""

import pytest
from torchvision.models import ResNet50_Weights

from bench.stack import worker_engine, worker_precision
from tests.support.http_server import serve
from tests.support.images import jpeg, photo, png
from tests.support.webhook_receiver import SECRET

CATEGORIES = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]


def assert_succeeded(job: dict, top_k: int = 5):
    assert job["status"] == "succeeded", job
    predictions = job["result"]["predictions"]
    assert len(predictions) == top_k
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True)
    assert all(CATEGORIES[p["class_id"]] == p["label"] for p in predictions)
    # The session worker runs at whatever this CPU (or MODEL_PRECISION) resolves to,
    # on whatever engine MODEL_ENGINE means here.
    assert job["result"]["model"] == {"name": "resnet50", "weights": "random",
                                      "precision": worker_precision(),
                                      "engine": worker_engine()}
    timing = job["result"]["timing_ms"]
    assert set(timing) == {"queued", "preprocess", "inference", "total"}
    assert timing["total"] >= timing["inference"] > 0
    assert job["error"] is None


def test_multipart_upload_is_accepted_with_a_location(client):
    response = client.post("/jobs", data={"image": (_file(jpeg()), "cat.jpg")})
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] in ("queued", "started", "succeeded")
    assert response.headers["Location"] == f"/jobs/{body['id']}"
    assert set(body) == {"id", "status", "created_at", "top_k", "result", "error"}


@pytest.mark.parametrize("size", [(1600, 1200), (4000, 3000)])
def test_multipart_upload_of_a_camera_size_photo(client, size):
    data = jpeg(*size)
    assert len(data) > 200_000  # well over werkzeug's 64 KiB read chunks
    response = client.post("/jobs?wait=30", data={"image": (_file(data), "photo.jpg")})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_succeeded(response.get_json())


def test_multipart_then_poll_to_succeeded(client):
    job_id = client.post("/jobs", data={"image": (_file(jpeg()), "cat.jpg")}).get_json()["id"]
    job = client.get(f"/jobs/{job_id}?wait=30").get_json()
    assert_succeeded(job)


def test_raw_image_body_with_wait_returns_the_result(client):
    response = client.post("/jobs?wait=30", data=jpeg(), content_type="image/jpeg")
    assert response.status_code == 200
    assert_succeeded(response.get_json())


def test_prefer_wait_header(client):
    response = client.post("/jobs", data=png(photo("coffee")), content_type="image/png",
                           headers={"Prefer": "respond-async, wait=30"})
    assert response.status_code == 200
    assert response.headers["Preference-Applied"] == "wait=30"
    assert_succeeded(response.get_json())


def test_wait_true_is_capped_by_the_setting(client):
    response = client.post("/jobs?wait=true", data=jpeg(), content_type="image/jpeg")
    assert response.status_code == 200
    assert_succeeded(response.get_json())


def test_url_submission_fetches_the_image(client):
    with serve({"/cat.jpg": (200, "image/jpeg", jpeg())}) as (base, requested):
        response = client.post("/jobs?wait=30", json={"url": f"{base}/cat.jpg", "top_k": 3})
    assert requested == ["/cat.jpg"]
    assert response.status_code == 200
    assert_succeeded(response.get_json(), top_k=3)


@pytest.mark.parametrize("k", [1, 20])
def test_top_k_in_the_query(client, k):
    response = client.post(f"/jobs?top_k={k}&wait=30", data=jpeg(), content_type="image/jpeg")
    assert response.get_json()["top_k"] == k
    assert_succeeded(response.get_json(), top_k=k)


def test_top_k_as_a_multipart_field(client):
    response = client.post("/jobs?wait=30", data={"image": (_file(jpeg()), "a.jpg"), "top_k": "2"})
    assert_succeeded(response.get_json(), top_k=2)


def test_wait_returns_202_with_the_id_when_no_worker_runs(idle_client):
    response = idle_client.post("/jobs?wait=0.3", data=jpeg(), content_type="image/jpeg")
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued" and body["result"] is None
    assert idle_client.get(f"/jobs/{body['id']}?wait=0.2").get_json()["status"] == "queued"


def _file(data: bytes):
    import io

    return io.BytesIO(data)


def test_several_image_parts_make_one_job_each(client):
    import io

    parts = [("image", (io.BytesIO(jpeg(160, 120, name)), f"{name}.jpg"))
             for name in ("chelsea", "rocket", "coffee")]
    response = client.post("/jobs?wait=30&top_k=2", data={"image": [p[1] for p in parts]})
    assert response.status_code == 200
    jobs = response.get_json()["jobs"]
    assert len(jobs) == 3 and len({job["id"] for job in jobs}) == 3
    for job in jobs:
        assert_succeeded(job, top_k=2)
    # Each is an ordinary job afterwards.
    assert client.get(f"/jobs/{jobs[1]['id']}").get_json() == jobs[1]


def test_several_images_with_an_idempotency_key_are_refused(client):
    import io

    response = client.post("/jobs", headers={"Idempotency-Key": "k1"},
                           data={"image": [(io.BytesIO(jpeg(64, 48)), "a.jpg"),
                                           (io.BytesIO(jpeg(64, 48)), "b.jpg")]})
    assert response.status_code == 422


def test_the_web_tier_takes_webhooks_when_told_without_holding_the_secret(redis_url):
    """The chart gives the web pods WEBHOOKS_ENABLED and the secret to the workers
    alone; without either, a job naming a webhook is refused."""
    import uuid

    from tests.conftest import make_settings, running_app
    from tests.support.images import jpeg

    queue = f"idle-{uuid.uuid4().hex[:8]}"
    hook = "?webhook=http://127.0.0.1:9/hook"
    for options, expected in (({"webhooks_enabled": True}, 202), ({}, 422),
                              ({"webhook_secret": SECRET, "webhooks_enabled": False}, 422),
                              ({"webhook_secret": SECRET}, 202)):
        with running_app(make_settings(redis_url, queue_name=queue, **options)) as app:
            answer = app.test_client().post(f"/jobs{hook}", data=jpeg(32, 24),
                                            content_type="image/jpeg")
        assert answer.status_code == expected, (options, answer.get_json())


def test_a_webhook_over_plain_http_needs_its_network_named(redis_url):
    """https only, unless WEBHOOK_HTTP_NETWORKS names the network (the tests' settings
    name loopback; here it is taken away)."""
    import uuid

    from tests.conftest import make_settings, running_app
    from tests.support.images import jpeg

    settings = make_settings(redis_url, queue_name=f"idle-{uuid.uuid4().hex[:8]}",
                             webhooks_enabled=True, webhook_http_networks="")
    with running_app(settings) as app:
        client = app.test_client()
        plain = client.post("/jobs?webhook=http://127.0.0.1:9/hook", data=jpeg(32, 24),
                            content_type="image/jpeg")
        secure = client.post("/jobs?webhook=https://127.0.0.1:9/hook", data=jpeg(32, 24),
                             content_type="image/jpeg")
    assert plain.status_code == 400 and plain.get_json()["error"]["code"] == "bad_url"
    assert "https" in plain.get_json()["error"]["message"]
    assert secure.status_code == 202
