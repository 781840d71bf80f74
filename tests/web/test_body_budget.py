"""A web process holds a bounded number of bytes of request bodies at once
(web/body_budget.py). The budget's own rules with the Flask test client; then,
whatever its threads, 100 clients each upload a 9.9 MB JPEG at 100 KB/s to one gunicorn
process with 64 threads. The process's resident memory stays under half the chart's
1 GiB web pod (one of its two processes; measured, as no cgroup limit can be set
here), every client gets an answer (a job, or a 503 with Retry-After at once,
before its body is read, past the budget), and every job answered 202 is queued.
Real gunicorn and Redis, clients on raw sockets that read the answer while they
send (as a slow client does); loopback only."""

import io
import socket
import threading
import time

import psutil
import pytest
from PIL import Image

from bench.stack import await_condition, start_gunicorn
from shared.job_data.keys import QueueKeys
from tests.conftest import running_app
from tests.support.images import jpeg
from web.body_budget import (
    COPIES_PER_BYTE,
    MAX_JSON_BODY_BYTES,
    BodyBudget,
    InMemoryFileRequest,
)
from web.services import services

CLIENTS = 100
BODY_BYTES = 9_900_000
RATE = 100_000  # bytes a second, each client
CHUNK = 10_000
LIMIT_BYTES = 512 * 2**20  # the chart's web pod (1 GiB) for one of its two processes


def test_a_budget_lets_in_what_fits_and_takes_back_what_is_released():
    budget = BodyBudget(100)
    first, second = budget.reserve(60), budget.reserve(40)
    assert first and second and budget.held_bytes == 100
    assert budget.reserve(1) is None
    first.release()
    first.release()  # a second release gives nothing back twice
    assert budget.held_bytes == 40
    assert budget.reserve(60) is not None and budget.reserve(1) is None


def test_one_request_larger_than_the_whole_budget_gets_in_alone():
    budget = BodyBudget(100)
    alone = budget.reserve(500)
    assert alone is not None and budget.reserve(1) is None
    alone.release()
    assert budget.held_bytes == 0
    assert all(BodyBudget(0).reserve(2**40) for _ in range(3))  # 0: no bound


@pytest.fixture()
def budget_app(idle_settings):
    with running_app(idle_settings.model_copy(update={"upload_budget_bytes": 10 * 2**20})
                     ) as app:
        yield app


class CountingStream(io.BytesIO):
    """A request body that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size=-1):
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def test_past_the_budget_a_submission_is_refused_before_its_body_is_read(budget_app):
    budget = services(budget_app).body_budget
    held = budget.reserve(budget.limit_bytes)  # another request holds it all
    body = CountingStream(jpeg())
    answer = budget_app.test_client().post(
        "/jobs", input_stream=body, content_type="image/jpeg",
        headers={"Content-Length": str(len(body.getvalue()))})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json["error"]["code"] == "server_busy"
    assert body.read_bytes == 0
    held.release()
    answer = budget_app.test_client().post("/jobs", data=jpeg(), content_type="image/jpeg")
    assert answer.status_code == 202
    assert budget.held_bytes == 0  # given back once the job was created


def test_a_refused_or_failed_submission_gives_its_reservation_back(budget_app):
    client = budget_app.test_client()
    assert client.post("/jobs", data=b"not an image", content_type="image/jpeg"
                       ).status_code == 400
    assert client.post("/jobs", data=jpeg(), content_type="text/plain").status_code == 415
    assert services(budget_app).body_budget.held_bytes == 0


def test_a_submission_reserves_its_copies_and_a_url_the_largest_image(budget_app):
    seen = []
    budget = services(budget_app).body_budget
    reserve = budget.reserve
    budget.reserve = lambda cost: seen.append(cost) or reserve(cost)  # records, then reserves
    client = budget_app.test_client()
    image = jpeg()
    client.post("/jobs", data=image, content_type="image/jpeg")
    client.post("/jobs", json={"url": "http://127.0.0.1:9/none.jpg"})
    body = len(b'{"url": "http://127.0.0.1:9/none.jpg"}')
    max_upload = budget_app.config["RESQ_MAX_UPLOAD_BYTES"]
    assert seen == [COPIES_PER_BYTE * len(image), COPIES_PER_BYTE * (body + max_upload)]
    assert budget.held_bytes == 0


def test_a_json_body_past_its_small_limit_is_refused(budget_app):
    answer = budget_app.test_client().post(
        "/jobs", data=b'{"url": "' + b"a" * MAX_JSON_BODY_BYTES + b'"}',
        content_type="application/json")
    assert answer.status_code == 413 and answer.json["error"]["code"] == "payload_too_large"


def test_a_multipart_file_is_held_in_memory_not_spooled_to_tmp(budget_app):
    large = jpeg().ljust(2 * 2**20, b"\0")  # far past werkzeug's 500 KB spooling point
    with budget_app.test_request_context("/jobs", method="POST",
                                         data={"image": (io.BytesIO(large), "a.jpg")}):
        from flask import request

        assert isinstance(request, InMemoryFileRequest)
        assert type(request.files["image"].stream) is io.BytesIO
        assert request.files["image"].stream.getvalue() == large


def padded_jpeg() -> bytes:
    """A real 64×64 JPEG followed by zeros up to BODY_BYTES (decoders stop at its end)."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue().ljust(BODY_BYTES, b"\0")


def slow_upload(port: int, body: bytes, answers: list, lock: threading.Lock) -> None:
    """POST `body` at RATE, reading the answer as soon as one comes."""
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        sock.sendall(b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                     b"Content-Length: %d\r\n\r\n" % BODY_BYTES)
        sock.setblocking(False)
        sent, answer = 0, b""
        began = time.monotonic()
        while sent < BODY_BYTES and b"\r\n\r\n" not in answer:
            try:
                answer += sock.recv(65536)
                continue  # the server answered before the body was all sent
            except BlockingIOError:
                pass
            try:
                sent += sock.send(body[sent:sent + CHUNK])
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                pass
            time.sleep(max(0.0, began + sent / RATE - time.monotonic()))
        sock.setblocking(True)
        sock.settimeout(120)
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except OSError:
            pass
    with lock:
        answers.append(answer.split(b"\r\n\r\n")[0].decode(errors="replace"))


@pytest.mark.processes
def test_a_hundred_slow_uploads_stay_within_the_process_budget(small_redis, tmp_path):
    redis_url, store = small_redis
    web, base = start_gunicorn(redis_url, "budget-idle", tmp_path / "web.log", RATE_LIMIT="",
                               QUEUE_MAX_BYTES=0, WEB_WORKERS=1, WEB_THREADS=64)
    port = int(base.rsplit(":", 1)[1])
    master = psutil.Process(web.pid)
    await_condition(lambda: master.children(), 30, "the gunicorn worker")
    worker = master.children()[0]
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.wait(0.05):
            try:
                peak[0] = max(peak[0], worker.memory_info().rss)
            except psutil.NoSuchProcess:
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    answers: list[str] = []
    lock = threading.Lock()
    body = padded_jpeg()
    clients = [threading.Thread(target=slow_upload, args=(port, body, answers, lock),
                                daemon=True) for _ in range(CLIENTS)]
    began = time.monotonic()
    for client in clients:
        client.start()
    for client in clients:
        client.join(400)
    stop.set()
    watcher.join()
    web.stop()
    statuses = [answer.split(" ")[1] if " " in answer else "none" for answer in answers]
    refused = [a for a in answers if a.startswith("HTTP/1.1 503")]
    queued = sum(store.llen(name) for name in QueueKeys("budget-idle").lane_lists)
    print(f"\n{CLIENTS} uploads of {BODY_BYTES / 1e6:.1f} MB at {RATE // 1000} KB/s: peak RSS "
          f"{peak[0] / 2**20:.0f} MiB (limit {LIMIT_BYTES // 2**20} MiB); answers "
          f"{ {s: statuses.count(s) for s in set(statuses)} } in "
          f"{time.monotonic() - began:.0f} s")
    assert len(answers) == CLIENTS and "none" not in statuses  # every client got one
    assert peak[0] < LIMIT_BYTES
    assert refused and all("Retry-After" in answer for answer in refused)
    assert set(statuses) <= {"202", "503"}
    assert statuses.count("202") == queued > 0
