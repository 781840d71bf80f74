"""The `resq` command (installed by `make install` as a console script) against a
real gunicorn, Redis and worker: results, JSON output, exit codes, API keys,
watching a folder; and the client library's retries honouring Retry-After."""

import itertools
import json
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.stack import VENV_BIN, base_env, free_port, start_gunicorn
from resq_client import ResqClient
from tests.support.images import jpeg

pytestmark = pytest.mark.processes

KEY = "cli-test-key-0123456789"


@pytest.fixture(scope="module")
def server(http_service):
    return http_service


@pytest.fixture(scope="module")
def idle_server(redis_url, tmp_path_factory):
    """No worker consumes this queue, and it wants an API key."""
    web, base = start_gunicorn(redis_url, f"cli-idle-{uuid.uuid4().hex[:6]}",
                               tmp_path_factory.mktemp("cli-idle") / "web.log", RATE_LIMIT="",
                               API_KEYS=KEY)
    yield base
    web.stop()


def resq(*args, url, env=None, timeout=120):
    return subprocess.run([str(VENV_BIN / "resq"), "--url", url, *args], capture_output=True,
                          text=True, timeout=timeout, env=base_env(**(env or {})))


@pytest.fixture()
def images(tmp_path):
    (tmp_path / "cat.jpg").write_bytes(jpeg(320, 240, "chelsea"))
    (tmp_path / "rocket.jpg").write_bytes(jpeg(320, 240, "rocket"))
    (tmp_path / "notes.txt").write_text("not an image")
    whole = jpeg(640, 480)
    (tmp_path / "broken.jpg").write_bytes(whole[: len(whole) // 3])
    return tmp_path


def test_submit_and_wait_prints_the_top_predictions(server, images):
    result = resq("submit", str(images / "cat.jpg"), "--wait", "30", url=server)
    assert result.returncode == 0, result.stderr
    assert "succeeded:" in result.stdout and "cat.jpg" in result.stdout


def test_json_output_for_many_files_with_progress(server, images):
    result = resq("--json", "submit", str(images / "cat.jpg"), str(images / "rocket.jpg"),
                  "--wait", "30", "--top-k", "2", url=server)
    assert result.returncode == 0, result.stderr
    jobs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"]
    assert all(len(j["result"]["predictions"]) == 2 for j in jobs)
    assert jobs[0]["source"].endswith("cat.jpg")


def test_exit_codes_tell_failure_refusal_timeout_and_unreachable_apart(server, idle_server,
                                                                      images):
    failed = resq("submit", str(images / "broken.jpg"), "--wait", "30", url=server)
    assert failed.returncode == 1 and "bad_image" in failed.stdout
    refused = resq("submit", str(images / "notes.txt"), url=server)
    assert refused.returncode == 2 and "unsupported_image_format" in refused.stderr
    unknown = resq("get", str(uuid.uuid4()), url=server)
    assert unknown.returncode == 2 and "job_not_found" in unknown.stderr
    accepted = resq("--json", "--api-key", KEY, "submit", str(images / "cat.jpg"),
                    url=idle_server)
    assert accepted.returncode == 0
    job_id = json.loads(accepted.stdout)["id"]
    timed_out = resq("get", job_id, "--wait", "0.5", url=idle_server,
                     env={"RESQ_API_KEY": KEY})
    assert timed_out.returncode == 3 and "queued" in timed_out.stdout
    cancelled = resq("--json", "cancel", job_id, url=idle_server, env={"RESQ_API_KEY": KEY})
    assert cancelled.returncode == 0
    assert json.loads(cancelled.stdout)["error"]["code"] == "cancelled"
    no_key = resq("get", job_id, url=idle_server)
    assert no_key.returncode == 2 and "unauthorized" in no_key.stderr
    unreachable = resq("--retries", "0", "get", job_id, url=f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 4


def test_watch_submits_new_images_and_prints_results(server, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "first.jpg").write_bytes(jpeg(200, 150, "coffee"))
    proc = subprocess.Popen([str(VENV_BIN / "resq"), "--url", server, "--json", "watch",
                             str(folder), "--exit-after", "2", "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=base_env())
    first = proc.stdout.readline()  # the first result, then a file arrives later
    (folder / "second.png").write_bytes(jpeg(200, 150, "astronaut"))
    (folder / "ignored.txt").write_text("not an image")
    rest, errors = proc.communicate(timeout=120)
    lines = [json.loads(line) for line in [first, *rest.splitlines()] if line.strip()]
    assert proc.returncode == 0, errors
    assert sorted(line["source"] for line in lines) == ["first.jpg", "second.png"]
    assert {line["status"] for line in lines} == {"succeeded"}


class Busy(BaseHTTPRequestHandler):
    """Answers 503 with Retry-After: 1 twice, then 202; records when each came."""

    arrivals: list = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Busy.arrivals.append(time.monotonic())
        if len(Busy.arrivals) <= 2:
            body, status, extra = b'{"error": {"code": "queue_full", "message": "busy"}}', 503, \
                {"Retry-After": "1"}
        else:
            body, status, extra = b'{"id": "x", "status": "queued"}', 202, {}
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **extra}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_client_retries_503_after_retry_after():
    Busy.arrivals = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = ResqClient(f"http://127.0.0.1:{server.server_address[1]}")
        job = client.submit(jpeg(32, 24))
    finally:
        server.shutdown()
        server.server_close()
    assert job == {"id": "x", "status": "queued"}
    gaps = [b - a for a, b in itertools.pairwise(Busy.arrivals)]
    assert len(Busy.arrivals) == 3 and all(gap >= 0.9 for gap in gaps), gaps


def test_batch_writes_a_line_per_image_and_says_in_its_exit_code_that_one_failed(server,
                                                                                images):
    out = images / "results.jsonl"
    result = resq("batch", str(images), "--out", str(out), url=server)
    assert result.returncode == 1, result.stderr  # broken.jpg failed
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["input"].rsplit("/", 1)[-1] for line in lines) == [
        "broken.jpg", "cat.jpg", "rocket.jpg"]  # notes.txt is not an image file
    assert {line["status"] for line in lines} == {"succeeded", "failed"}
    assert "2 succeeded, 1 failed" in result.stderr
    assert "3/3" in result.stderr  # the progress bar's last state

    good = images / "good"
    good.mkdir()
    (good / "cat.jpg").write_bytes(jpeg())
    done = resq("batch", str(good), "--out", str(out), "--no-progress", url=server)
    assert done.returncode == 0 and len(out.read_text().splitlines()) == 1  # a new file


def test_batch_stops_on_ctrl_c_and_resumes_where_its_file_ends(idle_server, images):
    import signal

    out = images / "results.jsonl"
    command = [str(VENV_BIN / "resq"), "--url", idle_server, "--api-key", KEY, "batch",
               str(images / "cat.jpg"), str(images / "rocket.jpg"), str(images / "broken.jpg"),
               "--out", str(out)]
    running = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=base_env())
    try:
        first = running.stderr.readline()  # "batch <id>; resume with: ..." once accepted
        assert first.startswith("batch "), first
        batch_id = first.split()[1].rstrip(";")
        running.send_signal(signal.SIGINT)  # no worker serves this queue: nothing ended yet
        rest = running.communicate(timeout=60)[1]
    finally:
        running.kill()
    assert running.returncode == 130 and f"--resume {batch_id}" in rest

    client = ResqClient(idle_server, KEY)
    client.cancel(f"{batch_id}.1")  # one item ends (cancelled) ...
    first_line = next(client.iter_results(batch_id))
    out.write_text(json.dumps(first_line) + "\n" + '{"index": 2, "cut sh')  # ... and a cut line
    client.cancel_batch(batch_id)  # the rest end too
    resumed = resq("--api-key", KEY, "batch", "--resume", batch_id, "--out", str(out),
                   "--no-progress", url=idle_server)
    assert resumed.returncode == 1, resumed.stderr  # cancelled items failed
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == [0, 1, 2]  # each once, none lost
    assert lines[0] == first_line
