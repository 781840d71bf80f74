"""A corpus of 50 bad or odd inputs (tests/support/hostile.py) sent to the real
service: gunicorn, Redis and the worker process. Each gets the right JSON 4xx or a
correct job result; no process dies; the peak memory of the web and worker
processes stays bounded (bombs are refused from their headers, never decoded)."""

import threading

import psutil
import pytest
import requests

from bench.stack import start_gunicorn
from tests.conftest import WORKER_QUEUE
from tests.support.hostile import corpus

pytestmark = pytest.mark.processes

MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MiB = 1024 * 1024
# A decoded 100000 x 100000 bomb would need 30 GB; these bounds are far below that
# and far above what honest inputs cost (the largest accepted image decodes to
# about 120 MB of RGB).
WEB_GROWTH_LIMIT = 200 * MiB
WORKER_GROWTH_LIMIT = 600 * MiB


def tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0


class PeakMemory:
    def __init__(self, pid: int):
        self.pid = pid
        self.baseline = tree_rss(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, tree_rss(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.baseline


@pytest.fixture(scope="module")
def service(redis_url, worker, tmp_path_factory):
    web, base = start_gunicorn(redis_url, WORKER_QUEUE,
                               tmp_path_factory.mktemp("hostile") / "web.log",
                               RATE_LIMIT="", MAX_UPLOAD_BYTES=MAX_UPLOAD_BYTES)
    yield web, base, worker
    web.stop()


def outcome(base: str, response: requests.Response) -> tuple:
    assert response.headers.get("Content-Type", "").startswith("application/json"), \
        f"{response.status_code} {response.headers.get('Content-Type')}: {response.text[:200]}"
    body = response.json()
    if response.status_code == 202:
        outcomes = set()
        for accepted in body.get("jobs", [body]):
            job = requests.get(f"{base}/jobs/{accepted['id']}?wait=60", timeout=90).json()
            outcomes.add(f"failed:{job['error']['code']}" if job["status"] == "failed"
                         else job["status"])
        assert len(outcomes) == 1, outcomes
        return ("job", outcomes.pop())
    return (response.status_code, body["error"]["code"])


def test_hostile_corpus(service):
    web, base, worker = service
    cases = corpus(MAX_UPLOAD_BYTES)
    assert len(cases) >= 30
    web_pids = {p.pid for p in psutil.Process(web.pid).children(recursive=True)} | {web.pid}
    web_memory, worker_memory = PeakMemory(web.pid), PeakMemory(worker.pid)
    results, wrong = {}, {}
    try:
        for case in cases:
            got = outcome(base, case.send(base))
            results[case.name] = got
            if got != case.expect and got not in case.also:
                wrong[case.name] = (got, case.expect)
    finally:
        web_growth, worker_growth = web_memory.stop(), worker_memory.stop()
    after = {p.pid for p in psutil.Process(web.pid).children(recursive=True)} | {web.pid}
    print(f"\n{len(cases)} hostile inputs; memory growth at peak: web {web_growth / MiB:.0f} MiB, "
          f"worker {worker_growth / MiB:.0f} MiB")
    for name, got in results.items():
        print(f"  {name}: {got}")
    assert wrong == {}
    assert not any(isinstance(got[0], int) and got[0] >= 500 for got in results.values())
    # No process died or was replaced: the same gunicorn workers and the same worker.
    assert after == web_pids and worker.alive()
    assert web_growth < WEB_GROWTH_LIMIT and worker_growth < WORKER_GROWTH_LIMIT
