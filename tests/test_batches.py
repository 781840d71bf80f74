"""Batches end to end (issue #26): real gunicorn, a real worker and Redis, images served
from loopback. The three submit forms, results as JSON Lines with a cursor, each item
a job of its own, the batch's webhook once; and, on a queue no worker serves (the
Flask test client on the real Redis), the limits, cancel, what autoscaling sees and
how many items of a batch wait in the lane."""

import io
import json
import tarfile
import uuid
import zipfile

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.stack import await_condition, start_gunicorn, start_worker
from shared.job_data.keys import QueueKeys
from tests.conftest import make_settings, running_app
from tests.support.http_server import serve
from tests.support.images import jpeg
from tests.support.webhook_receiver import WEBHOOK_ENV, Receiver

pytestmark = pytest.mark.processes

INFLIGHT = 4
LOOPBACK_FETCHES = {"URL_FETCH_ALLOW_NETWORKS": "127.0.0.1/32", "URL_FETCH_ALLOW_PORTS": "any"}
IMAGES = {f"/{i}.jpg": (200, "image/jpeg", jpeg(64 + i, 48)) for i in range(12)}


@pytest.fixture(scope="module")
def images():
    with serve({**IMAGES, "/text": (200, "image/jpeg", b"not an image at all")}) as served:
        yield served


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory):
    """gunicorn and one worker on a queue of their own; URL items may be fetched from
    loopback, and webhooks go to loopback over http."""
    queue = f"batches-{uuid.uuid4().hex[:6]}"
    logs = tmp_path_factory.mktemp("batches")
    env = {**LOOPBACK_FETCHES, **WEBHOOK_ENV, "BATCH_INFLIGHT": INFLIGHT}
    worker = start_worker(redis_url, queue, logs / "worker.log", **env)
    web, base = start_gunicorn(redis_url, queue, logs / "web.log", RATE_LIMIT="", **env)
    yield base
    web.stop()
    worker.stop()


def finished(base: str, batch_id: str) -> dict:
    return await_condition(
        lambda: (b := requests.get(f"{base}/batches/{batch_id}", timeout=10).json())["status"]
        != "running" and b, 120, f"batch {batch_id}")


def result_lines(base: str, batch_id: str, after: int = 0) -> list[dict]:
    answer = requests.get(f"{base}/batches/{batch_id}/results", params={"after": after},
                          timeout=60)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/jsonl")
    return [json.loads(line) for line in answer.text.splitlines()]


def test_a_url_batch_runs_each_url_once_in_the_worker_and_streams_its_results(
        stack, images, redis_url):
    served, requested = images
    urls = [f"{served}/{i}.jpg" for i in range(10)] + [f"{served}/missing",
                                                        f"{served}/text"]
    answer = requests.post(f"{stack}/batches", json={"urls": urls, "top_k": 2}, timeout=30)
    assert answer.status_code == 202, answer.text
    batch = answer.json()
    assert answer.headers["Location"] == f"/batches/{batch['id']}"
    assert batch["status"] == "running" and batch["total"] == 12 and batch["top_k"] == 2
    keys = redis.Redis.from_url(redis_url).keys(QueueKeys.image(batch["id"] + ".*"))
    assert keys == []  # a URL item's bytes never sit in Redis
    done = finished(stack, batch["id"])
    assert done["status"] == "succeeded" and done["finished_at"] and done["eta_seconds"] == 0
    assert done["counts"]["status"]["succeeded"] == 10 and done["counts"]["status"]["failed"] == 2
    assert done["counts"]["error"] == {"url_fetch_failed": 1, "unsupported_image_format": 1}
    assert sorted(requested[-12:]) == sorted(url.removeprefix(served) for url in urls)

    lines = result_lines(stack, batch["id"])
    assert sorted(line["index"] for line in lines) == list(range(12))
    by_index = {line["index"]: line for line in lines}
    assert by_index[3]["input"] == urls[3] and by_index[3]["status"] == "succeeded"
    assert len(by_index[3]["result"]["predictions"]) == 2
    assert by_index[10]["error"]["code"] == "url_fetch_failed"
    assert result_lines(stack, batch["id"], after=7) == lines[7:]  # resumes where it stopped
    item = requests.get(f"{stack}/jobs/{by_index[3]['id']}", timeout=10).json()
    assert item["status"] == "succeeded" and item["result"] == by_index[3]["result"]
    metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for m in text_string_to_metric_families(
                   requests.get(f"{stack}/metrics", timeout=10).text) for s in m.samples}
    queue = {("queue", m_queue) for (_, labels) in metrics for (k, m_queue) in labels
             if k == "queue"}.pop()[1]
    assert metrics[("resq_batches_ended_total", (("queue", queue), ("status", "succeeded")))] >= 1
    assert metrics[("resq_batch_items_released_total", (("queue", queue),))] >= 12
    assert metrics[("resq_batch_items_submitted_total", (("form", "url"),))] >= 12


def multipart(n: int) -> list:
    return [("image", (f"photo-{i}.jpg", io.BytesIO(jpeg(40 + i, 30)), "image/jpeg"))
            for i in range(n)]


def test_a_multipart_batch_names_each_item_by_its_file(stack):
    answer = requests.post(f"{stack}/batches", files=multipart(5), data={"top_k": "1"},
                           timeout=30)
    assert answer.status_code == 202, answer.text
    done = finished(stack, answer.json()["id"])
    assert done["counts"]["status"]["succeeded"] == 5
    inputs = {line["index"]: line["input"] for line in result_lines(stack, done["id"])}
    assert inputs == {i: f"photo-{i}.jpg" for i in range(5)}


def tar_of(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        folder = tarfile.TarInfo("album/")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
    return out.getvalue()


def zip_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["application/zip", "application/gzip"])
def test_an_archive_batch_takes_its_image_files_and_passes_over_the_rest(stack, kind):
    files = {"album/a.jpg": jpeg(50, 40), "album/b.jpg": jpeg(60, 40),
             "album/.DS_Store": b"\0\0", "__MACOSX/album/._a.jpg": b"\0"}
    body = zip_of(files) if kind == "application/zip" else tar_of(files)
    answer = requests.post(f"{stack}/batches", data=body, headers={"Content-Type": kind},
                           timeout=30)
    assert answer.status_code == 202, answer.text
    done = finished(stack, answer.json()["id"])
    assert done["total"] == 2 and done["counts"]["status"]["succeeded"] == 2
    assert sorted(line["input"] for line in result_lines(stack, done["id"])) == [
        "album/a.jpg", "album/b.jpg"]


def test_a_batch_sends_its_completed_webhook_once_and_its_items_none(stack, images):
    served, _ = images
    with Receiver() as receiver:
        answer = requests.post(f"{stack}/batches", json={
            "urls": [f"{served}/{i}.jpg" for i in range(3)], "webhook": receiver.url,
            "webhook_events": ["started", "completed"]}, timeout=30)
        assert answer.status_code == 202, answer.text
        batch_id = answer.json()["id"]
        finished(stack, batch_id)
        await_condition(lambda: len(receiver.deliveries) >= 2, 60, "the batch's webhooks")
        events = sorted(d["event"] for d in receiver.deliveries)
        assert events == ["batch.completed", "batch.started"]
        assert all(d["verified"] and d["job_id"] == batch_id for d in receiver.deliveries)
        completed = next(d for d in receiver.deliveries if d["event"] == "batch.completed")
        assert completed["job"]["status"] == "succeeded"
        assert completed["job"]["counts"]["status"]["succeeded"] == 3


# --- on a queue no worker serves: the Flask test client on the real Redis ------------


@pytest.fixture()
def idle(redis_url):
    settings = make_settings(redis_url, queue_name=f"idle-{uuid.uuid4().hex[:8]}",
                             batch_max_items=50, batch_max_bytes=512 * 1024,
                             max_upload_bytes=64 * 1024, batch_inflight=INFLIGHT)
    with running_app(settings) as app:
        yield app.test_client(), QueueKeys(settings.queue_name), settings


def urls_of(n: int) -> list[str]:
    return [f"http://127.0.0.1:9/{i}.jpg" for i in range(n)]


def test_a_batch_waits_in_the_lane_a_few_items_at_a_time_and_scaling_sees_all(idle):
    client, _, _ = idle
    batch = client.post("/batches", json={"urls": urls_of(40)}).json
    scaling = client.get("/scaling").json
    assert scaling["unreleased"] == 40 - INFLIGHT and scaling["open"] == 40
    assert scaling["waiting"]["batch"] == INFLIGHT
    # Another key's job waits behind at most INFLIGHT items of the batch.
    assert client.post("/jobs", data=jpeg(), content_type="image/jpeg").status_code == 202
    assert client.get("/scaling").json["waiting"]["batch"] == INFLIGHT + 1
    assert client.get(f"/jobs/{batch['id']}.39").json["status"] == "queued"


def test_cancel_ends_every_item_not_ended_and_each_reads_cancelled(idle):
    client, _, _ = idle
    batch = client.post("/batches", json={"urls": urls_of(10)}).json
    cancelled = client.delete(f"/batches/{batch['id']}")
    assert cancelled.status_code == 200
    view = cancelled.json
    assert view["status"] == "cancelled" and view["counts"]["error"] == {"cancelled": 10}
    assert client.get(f"/jobs/{batch['id']}.0").json["error"]["code"] == "cancelled"
    assert client.get(f"/jobs/{batch['id']}.9").json["error"]["code"] == "cancelled"
    lines = [json.loads(line) for line in
             client.get(f"/batches/{batch['id']}/results").get_data(as_text=True).splitlines()]
    assert sorted(line["index"] for line in lines) == list(range(10))
    assert {line["error"]["code"] for line in lines} == {"cancelled"}
    assert client.get("/scaling").json["unreleased"] == 0


def test_one_unreleased_item_can_be_cancelled_on_its_own(idle):
    client, _, _ = idle
    batch = client.post("/batches", json={"urls": urls_of(10)}).json
    answer = client.delete(f"/jobs/{batch['id']}.8")
    assert answer.json["status"] == "failed" and answer.json["error"]["code"] == "cancelled"
    view = client.get(f"/batches/{batch['id']}").json
    assert view["counts"]["error"] == {"cancelled": 1} and view["status"] == "running"


@pytest.mark.parametrize(("request_kwargs", "status", "code"), [
    ({"json": {"urls": urls_of(51)}}, 422, "invalid_field"),
    ({"json": {"urls": ["ftp://127.0.0.1/a.jpg"]}}, 422, "invalid_field"),
    ({"json": {"urls": []}}, 422, "invalid_field"),
    ({"data": b"{", "content_type": "application/json"}, 400, "bad_request"),
    ({"data": b"hello", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ({"data": b"not a zip", "content_type": "application/zip"}, 400, "bad_request"),
    ({"data": zip_of({"big.jpg": jpeg(8, 8).ljust(65 * 1024, b"\0")}),
      "content_type": "application/zip"}, 413, "payload_too_large"),
    ({"data": zip_of({f"{i}.jpg": jpeg(8, 8) for i in range(51)}),
      "content_type": "application/zip"}, 422, "invalid_field"),
    ({"data": zip_of({"a.jpg": b"\0" * 600 * 1024}), "content_type": "application/zip"},
     413, "payload_too_large"),
    ({"data": {"image": [(io.BytesIO(jpeg()), "a.jpg"), (io.BytesIO(b"junk"), "b.jpg")]},
      "content_type": "multipart/form-data"}, 400, "unsupported_image_format"),
])
def test_a_batch_over_its_limits_or_malformed_gets_a_clear_error_and_costs_nothing(
        idle, request_kwargs, status, code):
    client, _, _ = idle
    answer = client.post("/batches", **request_kwargs)
    assert answer.status_code == status, answer.json
    assert answer.json["error"]["code"] == code
    load = client.get("/scaling").json
    assert load["open"] == 0 and load["unreleased"] == 0


def test_a_zip_whose_files_inflate_past_the_batch_limit_is_refused_unread(idle):
    client, _, settings = idle
    bomb = zip_of({f"{i}.jpg": b"\0" * 60 * 1024 for i in range(10)})  # 600 KiB inflated
    assert len(bomb) < settings.batch_max_bytes // 10
    answer = client.post("/batches", data=bomb, content_type="application/zip")
    assert answer.status_code == 413 and "more than" in answer.json["error"]["message"]


def test_another_keys_batch_is_not_found(redis_url):
    settings = make_settings(redis_url, queue_name=f"idle-{uuid.uuid4().hex[:8]}",
                             api_keys="alice-key-0123456789abcdef,bob-key-0123456789abcdef00")
    with running_app(settings) as app:
        client = app.test_client()
        alice = {"Authorization": "Bearer alice-key-0123456789abcdef"}
        bob = {"Authorization": "Bearer bob-key-0123456789abcdef00"}
        batch = client.post("/batches", json={"urls": urls_of(3)}, headers=alice).json
        assert client.get(f"/batches/{batch['id']}", headers=bob).status_code == 404
        assert client.get(f"/batches/{batch['id']}/results", headers=bob).status_code == 404
        assert client.delete(f"/batches/{batch['id']}", headers=bob).status_code == 404
        assert client.get(f"/jobs/{batch['id']}.2", headers=bob).status_code == 404
        assert client.get(f"/batches/{batch['id']}", headers=alice).status_code == 200
        assert client.post("/batches", json={"urls": urls_of(1)}).status_code == 401


# --- progress as Server-Sent Events --------------------------------------------------


def parse_events(text: str) -> list[dict]:
    """Events of a text/event-stream body: each as its fields, `data` decoded."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if line and not line.startswith(":"))
        if fields:
            fields["data"] = json.loads(fields["data"])
            events.append(fields)
    return events


def read_stream(response) -> tuple[list[dict], list[float]]:
    """Every event of a streamed answer, and when (monotonic) each arrived."""
    import time

    events, times, buffer = [], [], ""
    for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
        buffer += chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            parsed = parse_events(block + "\n\n")
            events += parsed
            times += [time.monotonic()] * len(parsed)
    return events, times


def test_a_batch_streams_its_progress_until_it_ends_at_most_twice_a_second(stack, images):
    served, _ = images
    batch = requests.post(f"{stack}/batches", json={
        "urls": [f"{served}/{i % 12}.jpg" for i in range(30)]}, timeout=30).json()
    with requests.get(f"{stack}/batches/{batch['id']}/events", stream=True,
                      timeout=120) as answer:
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        events, times = read_stream(answer)
    assert events[0]["event"] == "batch" and "retry" in events[0]
    assert events[-1]["data"]["status"] == "succeeded"
    assert events[-1]["data"]["counts"]["status"]["succeeded"] == 30
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(events) >= 2
    ended = [e["data"]["counts"]["status"]["succeeded"] for e in events]
    assert ended == sorted(ended)  # progress only moves on
    # At most 2 a second: the first at once, then at most one each half second (timed
    # as they arrive here, read as they come over loopback).
    assert len(events) <= 2 + 2 * (times[-1] - times[0]) + 1, (len(events), times)
    # Reconnecting after the end gives the end again, and ends.
    again = requests.get(f"{stack}/batches/{batch['id']}/events", timeout=30,
                         headers={"Last-Event-ID": events[-1]["id"]})
    assert [e["data"]["status"] for e in parse_events(again.text)] == ["succeeded"]


def test_a_job_streams_its_status_until_it_ends(stack):
    job = requests.post(f"{stack}/jobs", data=jpeg(), headers={"Content-Type": "image/jpeg"},
                        timeout=30).json()
    with requests.get(f"{stack}/jobs/{job['id']}/events", stream=True, timeout=60) as answer:
        events, _ = read_stream(answer)
    statuses = [e["data"]["status"] for e in events]
    assert statuses[-1] == "succeeded" and statuses == sorted(
        statuses, key=["queued", "started", "succeeded"].index)
    assert events[-1]["data"]["result"]["predictions"]


@pytest.fixture()
def short_streams(redis_url):
    """A queue no worker serves, with streams of 1 s and one wait slot."""
    settings = make_settings(redis_url, queue_name=f"idle-{uuid.uuid4().hex[:8]}",
                             batch_stream_max_seconds=1, wait_max_concurrent=1,
                             batch_inflight=INFLIGHT)
    with running_app(settings) as app:
        yield app.test_client()


def test_a_stream_resumes_from_last_event_id_and_asks_to_reconnect_at_its_end(short_streams):
    client = short_streams
    batch = client.post("/batches", json={"urls": urls_of(5)}).json
    fresh = parse_events(client.get(f"/batches/{batch['id']}/events").get_data(as_text=True))
    assert len(fresh) == 2 and all(e["retry"] == "1000" for e in fresh)  # now, then at 1 s
    assert fresh[0]["data"]["status"] == "running"
    resumed = parse_events(client.get(f"/batches/{batch['id']}/events", headers={
        "Last-Event-ID": fresh[0]["id"]}).get_data(as_text=True))
    assert len(resumed) == 1  # not the state it had again: only the reconnect at the end


def test_past_the_wait_slots_a_stream_sends_the_state_and_a_later_retry(short_streams):
    client = short_streams
    batch = client.post("/batches", json={"urls": urls_of(5)}).json
    holding = client.get(f"/batches/{batch['id']}/events", buffered=False)
    first = next(iter(holding.response))  # the one slot is held while this stream runs
    assert b"event: batch" in first
    busy = parse_events(client.get(f"/batches/{batch['id']}/events").get_data(as_text=True))
    assert len(busy) == 1 and busy[0]["retry"] == "5000"
    holding.close()


def test_the_same_idempotency_key_and_batch_give_the_same_batch_and_another_a_409(idle):
    client, _, _ = idle
    key = {"Idempotency-Key": f"import-{uuid.uuid4().hex}"}
    first = client.post("/batches", json={"urls": urls_of(3)}, headers=key)
    again = client.post("/batches", json={"urls": urls_of(3)}, headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json["id"] == first.json["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/batches", json={"urls": urls_of(4)}, headers=key)
    assert other.status_code == 409 and other.json["error"]["code"] == "idempotency_key_reused"
    assert client.get("/scaling").json["open"] == 3  # one batch made, not two
