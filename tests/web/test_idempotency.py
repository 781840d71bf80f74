"""Idempotency-Key on POST /jobs: the same key and request give the same job, the
same key with another request 409, keys are per caller, and concurrent twins
still make one job."""

import threading
import uuid

from tests.conftest import make_settings, running_app
from tests.support.http_server import serve
from tests.support.images import jpeg
from tests.support.webhook_receiver import SECRET


def _post(client, body=None, key=None, **kwargs):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/jobs", data=body if body is not None else jpeg(64, 48),
                       content_type="image/jpeg", headers=headers, **kwargs)


def test_the_same_key_and_request_give_the_same_job(idle_client):
    key = str(uuid.uuid4())
    first, again = _post(idle_client, key=key), _post(idle_client, key=key)
    assert first.status_code == again.status_code == 202
    assert first.get_json()["id"] == again.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    # Without a key, or with another, the same image is a new job.
    assert _post(idle_client).get_json()["id"] != first.get_json()["id"]
    assert _post(idle_client, key=key + "x").get_json()["id"] != first.get_json()["id"]


def test_the_same_key_with_another_request_is_409(idle_client):
    key = str(uuid.uuid4())
    assert _post(idle_client, key=key).status_code == 202
    other_image = _post(idle_client, body=jpeg(80, 60), key=key)
    other_top_k = idle_client.post("/jobs?top_k=3", data=jpeg(64, 48), content_type="image/jpeg",
                                   headers={"Idempotency-Key": key})
    for response in (other_image, other_top_k):
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "idempotency_key_reused"


def test_url_submissions_are_identified_by_their_url(idle_client):
    key = str(uuid.uuid4())
    with serve({"/a.jpg": (200, "image/jpeg", jpeg(64, 48))}) as (base, _):
        first = idle_client.post("/jobs", json={"url": f"{base}/a.jpg"},
                                 headers={"Idempotency-Key": key})
        again = idle_client.post("/jobs", json={"url": f"{base}/a.jpg"},
                                 headers={"Idempotency-Key": key})
    assert first.get_json()["id"] == again.get_json()["id"]


def test_bad_keys_are_422(idle_client):
    for key in ("a" * 256, "tab\there", "é"):
        response = idle_client.post("/jobs", data=jpeg(64, 48), content_type="image/jpeg",
                                    headers={"Idempotency-Key": key})
        assert response.status_code == 422, key


def test_keys_are_scoped_to_the_api_key(redis_url):
    alice, bob = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef00"
    settings = make_settings(redis_url, queue_name=f"idem-{uuid.uuid4().hex[:6]}",
                             api_keys=f"{alice},{bob}")
    with running_app(settings) as app:
        client = app.test_client()
        key = "order-42"
        a = client.post("/jobs", data=jpeg(64, 48), content_type="image/jpeg",
                        headers={"Idempotency-Key": key, "X-API-Key": alice})
        b = client.post("/jobs", data=jpeg(64, 48), content_type="image/jpeg",
                        headers={"Idempotency-Key": key, "X-API-Key": bob})
    assert a.status_code == b.status_code == 202
    assert a.get_json()["id"] != b.get_json()["id"]


def test_concurrent_twins_make_one_job(idle_settings):
    key = str(uuid.uuid4())
    body = jpeg(64, 48)
    with running_app(idle_settings) as app:
        ids, barrier = [], threading.Barrier(8)

        def twin():
            client = app.test_client()
            barrier.wait()
            ids.append(_post(client, body=body, key=key).get_json()["id"])

        threads = [threading.Thread(target=twin) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(ids) == 8 and len(set(ids)) == 1


def test_every_option_of_the_request_is_part_of_it(redis_url):
    """The same key with any option changed is another request: 409, never the old
    job (deadline_seconds and webhook_events used to be left out and replayed)."""
    settings = make_settings(redis_url, queue_name=f"idle-{uuid.uuid4().hex[:8]}",
                             webhook_secret=SECRET)
    webhook = "http://127.0.0.1:9/hook"
    key = str(uuid.uuid4())
    base = f"?webhook={webhook}"
    with running_app(settings) as app:
        client = app.test_client()
        first = client.post(f"/jobs{base}", data=jpeg(64, 48), content_type="image/jpeg",
                            headers={"Idempotency-Key": key})
        assert first.status_code == 202, first.get_json()
        for changed in ("&deadline_seconds=30", "&webhook_events=started,completed",
                        "&top_k=3", "&webhook_events=started"):
            again = client.post(f"/jobs{base}{changed}", data=jpeg(64, 48),
                                content_type="image/jpeg", headers={"Idempotency-Key": key})
            assert again.status_code == 409, (changed, again.get_json())
        same = client.post(f"/jobs{base}", data=jpeg(64, 48), content_type="image/jpeg",
                           headers={"Idempotency-Key": key})
        assert same.get_json()["id"] == first.get_json()["id"]
