"""Chaos: 300 jobs sent through the real HTTP tier while workers are SIGKILLed
three times and Redis is killed (-9) and restarted once on its append-only file.
Each job asks for a webhook, delivered to a real local receiver.

Every accepted job (a 202 with an id) is classified as queue tests do:
- lost: accepted, but not ended by the end;
- duplicated: run to a result more than once (counted from the workers' logs;
  at-least-once delivery allows it, and the first end of a job is its only one);
- unexpected: an end that is not `succeeded`, or an ended job that was never
  accepted;
- changed: a job whose terminal state, once read, ever read otherwise;
- webhooks: deliveries per job, by delivery id (one delivery per job; the wire
  may carry it twice, which the receiver drops by its id).
Asserts lost = unexpected = changed = 0, exactly one delivery per job, and prints
the counts and recovery times.
Clients behave as docs/clients.md asks: on 503 or a refused connection they retry.
"""

import json
import signal
import threading
import time
from collections import Counter

import pytest
import redis
import requests

from bench.stack import (
    await_condition,
    free_port,
    start_gunicorn,
    start_redis,
    start_worker,
)
from shared.job_data.keys import QueueKeys
from shared.job_data.records import JobRecords
from tests.support.images import jpeg
from tests.support.webhook_receiver import SECRET, Receiver

pytestmark = [pytest.mark.chaos, pytest.mark.processes]

JOBS = 300
CLIENTS = 4
SUBMIT_INTERVAL = 0.6  # per client: about 6.7 jobs/s in all, near what the workers do
QUEUE = "chaos"
WEBHOOK_ENV = {"WEBHOOK_SECRET": SECRET, "WEBHOOK_HTTP_NETWORKS": "127.0.0.1/32",
               "URL_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
               "URL_FETCH_ALLOW_PORTS": "any"}
WORKER_ENV = {
    "VISIBILITY_TIMEOUT_SECONDS": 5,
    # These kills are not a poison job's: a job caught in several of them must not
    # be failed as one.
    "JOB_MAX_ATTEMPTS": 10,
    **WEBHOOK_ENV,
}


class Submitter:
    """CLIENTS threads posting JOBS distinct images, retrying refusals."""

    def __init__(self, base: str, webhook: str):
        self.base = base
        self.webhook = webhook
        self.accepted: dict[str, float] = {}
        self.refusals = Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def join(self):
        for thread in self.threads:
            thread.join()

    def _client(self, n: int):
        session = requests.Session()
        for i in range(n, JOBS, CLIENTS):
            body = jpeg(96 + i % 64, 72)  # a distinct image per job
            while True:
                try:
                    response = session.post(f"{self.base}/jobs?webhook={self.webhook}",
                                            data=body, timeout=10,
                                            headers={"Content-Type": "image/jpeg"})
                except requests.ConnectionError:
                    self._refused("connection")
                    continue
                if response.status_code == 202:
                    with self.lock:
                        self.accepted[response.json()["id"]] = time.monotonic()
                    break
                assert response.status_code == 503, response.text
                self._refused("503")
            time.sleep(SUBMIT_INTERVAL)

    def _refused(self, why: str):
        with self.lock:
            self.refusals[why] += 1
        time.sleep(0.2)


def classified_jobs(log):
    """The job id of every "classified" line of a worker's JSON log."""
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "classified in a batch" in record.get("message", ""):
            yield record["job_id"]


def statuses(client: redis.Redis, ids: list[str]) -> list[str | None]:
    """Each job's status as its record holds it (None: no record, or Redis away)."""
    try:
        records = JobRecords(client, 3600, "chaos").get_many(ids)
    except redis.RedisError:
        return [None] * len(ids)
    return [record.status.value if record else None for record in records]


TERMINAL = ("succeeded", "failed")


def test_no_job_is_lost_through_worker_kills_and_a_redis_restart(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    data = tmp_path / "redis"
    server = start_redis(port, data, "redis-0.log", appendonly=True)
    client = redis.Redis.from_url(url, socket_timeout=2)
    await_condition(client.ping, 10, "redis-server")
    workers = {name: start_worker(url, QUEUE, tmp_path / f"{name}.log", **WORKER_ENV)
               for name in ("a", "b")}
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    web, base = start_gunicorn(url, QUEUE, tmp_path / "web.log", RATE_LIMIT="", **WEBHOOK_ENV)
    receiver = Receiver()
    submitter = Submitter(base, receiver.url)
    faults: list[tuple[str, float, int]] = []
    first_end: dict[str, str] = {}  # each job's terminal state as first read
    changed: set[str] = set()  # jobs read terminal once, and otherwise later

    reading = threading.Lock()  # the sampler and the main thread both read: in turn,
    # so that a snapshot taken earlier is never judged after a later one

    def done() -> int:
        with reading:
            return judge()

    def judge() -> int:
        with submitter.lock:
            ids = list(submitter.accepted)
        ended = 0
        for job_id, status in zip(ids, statuses(client, ids), strict=True):
            if job_id in first_end and status is not None and status != first_end[job_id]:
                changed.add(job_id)
            if status in TERMINAL:
                first_end.setdefault(job_id, status)
                ended += 1
        return ended

    supervising = threading.Lock()
    exits: list[str] = []  # workers that exited on their own, started again

    def kill_worker(name: str, generation: int):
        results = done()
        with supervising:
            workers[name].stop(signal.SIGKILL)
            faults.append((f"SIGKILL worker {name}", time.monotonic(), results))
            log = tmp_path / f"{name}{generation}.log"
            logs.append(log)
            workers[name] = start_worker(url, QUEUE, log, wait_ready=False, **WORKER_ENV)

    def supervise():
        """As compose's restart policy, Kubernetes and `make run` do: a worker that
        exits by itself is started again (kombu can end a worker with an
        "Unrecoverable error" while Redis restarts). Counted and printed."""
        with supervising:
            for name, proc in list(workers.items()):
                if not proc.alive():
                    log = tmp_path / f"{name}-restarted-{len(exits)}.log"
                    logs.append(log)
                    exits.append(f"{name} (exit {proc.popen.returncode})")
                    workers[name] = start_worker(url, QUEUE, log, wait_ready=False,
                                                 **WORKER_ENV)

    timeline: list[tuple[float, int]] = []
    sampling = threading.Event()

    def sample():
        while not sampling.wait(0.2):
            timeline.append((time.monotonic(), done()))
            supervise()

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        submitter.start()
        sampler.start()
        await_condition(lambda: done() >= 40, 120, "40 results", interval=0.1)
        kill_worker("a", 1)
        await_condition(lambda: done() >= 100, 120, "100 results", interval=0.1)
        results = done()
        server.stop(signal.SIGKILL)
        faults.append(("kill -9 redis", time.monotonic(), results))
        # Down long enough that clients meet it, then back on the same data.
        await_condition(lambda: submitter.refusals, 20, "a client to be refused")
        server = start_redis(port, data, "redis-1.log", appendonly=True)
        await_condition(lambda: done() >= 160, 180, "160 results", interval=0.1)
        kill_worker("b", 1)
        await_condition(lambda: done() >= 220, 180, "220 results", interval=0.1)
        kill_worker("a", 2)
        submitter.join()
        ids = list(submitter.accepted)
        await_condition(lambda: done() == len(ids), 300, "every accepted job to finish",
                        interval=0.2)
        finished_at = time.monotonic()

        final = statuses(client, ids)
        lost = [i for i, status in zip(ids, final, strict=True) if status not in TERMINAL]
        unexpected = [i for i, status in zip(ids, final, strict=True)
                      if status in TERMINAL and status != "succeeded"]
        prefix = QueueKeys.record("")
        recorded = [key.decode().removeprefix(prefix)
                    for key in client.scan_iter(prefix + "*", count=1000)]
        ended_unknown = [i for i, status in zip(recorded, statuses(client, recorded),
                                                strict=True) if status in TERMINAL]
        unexpected += sorted(set(ended_unknown) - set(ids))
        # Every ended job's webhook: one delivery (by id) each, whatever the wire did.
        await_condition(lambda: {d["job_id"] for d in receiver.deliveries} >= set(ids), 120,
                        "a webhook for every job", interval=0.2)
        delivery_ids = {}
        for delivery in receiver.deliveries:
            delivery_ids.setdefault(delivery["job_id"], set()).add(delivery["delivery_id"])
        duplicated_deliveries = [i for i in ids if len(delivery_ids[i]) > 1]
        wire_repeats = len(receiver.deliveries) - sum(map(len, delivery_ids.values()))
        unverified = [d for d in receiver.deliveries if not d["verified"]]
        runs = Counter(job_id for log in logs for job_id in classified_jobs(log))
        duplicated = [i for i in ids if runs[i] > 1]
        # Every job reads as succeeded through the API too.
        api = Counter(requests.get(f"{base}/jobs/{i}", timeout=10).json()["status"] for i in ids)
    finally:
        sampling.set()
        if sampler.is_alive():
            sampler.join()  # no restart after this point
        submitter.join()
        receiver.close()
        web.stop()
        for proc in workers.values():
            proc.stop()
        server.stop()

    print(f"\nchaos: {len(ids)} accepted ({dict(submitter.refusals)} refusals retried); "
          f"lost={len(lost)} duplicated={len(duplicated)} unexpected={len(unexpected)} "
          f"changed={len(changed)}; API: {dict(api)}; webhooks: "
          f"{len(receiver.deliveries)} on the wire, duplicated deliveries "
          f"{len(duplicated_deliveries)}, repeats of one delivery {wire_repeats}; "
          f"workers that exited by themselves and were started again: {exits or 'none'}")
    for what, at, results in faults:
        # Recovered: 8 more results (two batches) than at the fault.
        back = next((t for t, n in timeline if t > at and n >= results + 8), None)
        recovery = f"{back - at:.1f} s" if back else "n/a"
        print(f"  {what} at {results} results; 8 more results {recovery} later")
    print(f"  all finished {finished_at - faults[-1][1]:.1f} s after the last fault")
    assert len(ids) == JOBS
    assert lost == [] and unexpected == [] and changed == set()
    assert api == {"succeeded": JOBS}
    assert duplicated_deliveries == [] and unverified == []
