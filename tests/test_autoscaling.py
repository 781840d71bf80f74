"""Autoscaling on one machine: a small controller reads the chart's rendered
ScaledObject (its triggers, thresholds, polling interval, cooldown, minimum and
maximum replicas, scale-down behaviour) and applies KEDA's and the HPA's arithmetic
(`tests.support.keda`) to the real Redis and the real web tier's /scaling. It
scales out by starting real worker processes and in as the kubelet does: SIGTERM,
then SIGKILL only if the pod's termination grace runs out.

A burst of jobs through the real HTTP API must make it scale out, drain, and come
back to the minimum (and to zero with the scale-to-zero values), with no job lost
and no worker killed while it held a job. The replica timeline and the drain time
are printed; these are a record, never asserted as timings."""

import threading
import time
import uuid

import pytest
import redis
import requests

from bench.stack import await_condition, start_gunicorn, start_worker
from shared.job_data.records import JobRecords
from tests.deploy.chart import build_renderer, render
from tests.support.images import jpeg
from tests.support.keda import ScaledObject, trigger_reader

pytestmark = [pytest.mark.processes, pytest.mark.chart]

# Small numbers, so that a burst a 2-core machine drains in seconds still crosses
# every threshold: up to 3 workers, one per 40 open jobs or 8 waiting in a lane.
# No stabilization window: a worker is scaled in as soon as the open jobs fall below
# what the others can hold, usually while it still holds some (the test prints how
# many jobs scaled-in workers finished after their SIGTERM).
SCALING = {"maxReplicas": 3, "openJobsPerWorker": 40, "listLength": 8, "pollingInterval": 1,
           "cooldownPeriod": 4, "scaleDownStabilizationSeconds": 0, "scaleDownPeriodSeconds": 1}
GRACE_SECONDS = 60  # the pod's terminationGracePeriodSeconds in this test


class Controller:
    """KEDA, the HPA and the kubelet, for one worker Deployment."""

    def __init__(self, scaled: ScaledObject, read, start, initial: int):
        self.scaled = scaled
        self.read = read
        self.start = start
        self.workers = [start() for _ in range(initial)]
        self.timeline: list[tuple[float, int, list[float]]] = []
        self.killed: list[int] = []  # pids the kubelet had to SIGKILL after the grace
        self.sigterms: dict[int, float] = {}  # pid -> when it was sent SIGTERM
        self.terminated = 0
        self.began = time.monotonic()
        self._leaving: list[threading.Thread] = []
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while True:  # a first poll at once, then one each polling interval
                self.poll()
                if self._stop.wait(self.scaled.polling_interval):
                    return
        except BaseException as error:  # surfaced by `stop`
            self._error = error

    def poll(self) -> None:
        values = [self.read(trigger) for trigger in self.scaled.triggers]
        now = time.monotonic()
        wanted = self.scaled.decide(values, len(self.workers), now)
        while len(self.workers) < wanted:
            self.workers.append(self.start())
        while len(self.workers) > wanted:  # a terminating pod no longer counts
            leaving = threading.Thread(target=self.terminate, args=(self.workers.pop(),))
            leaving.start()
            self._leaving.append(leaving)
        self.timeline.append((now - self.began, len(self.workers), values))

    def terminate(self, proc) -> None:
        """The kubelet's way: SIGTERM (Celery's warm shutdown finishes the jobs the
        worker holds), SIGKILL only once the grace period has run out."""
        self.terminated += 1
        self.sigterms[proc.pid] = time.time()
        proc.popen.terminate()
        try:
            proc.popen.wait(GRACE_SECONDS)
        except Exception:
            self.killed.append(proc.pid)
            proc.stop()

    @property
    def replicas(self) -> int:
        return len(self.workers)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        for leaving in self._leaving:
            leaving.join(GRACE_SECONDS + 30)
        for proc in self.workers:
            proc.stop()
        if self._error is not None:
            raise self._error

    def print_timeline(self, title: str) -> None:
        print(f"\n{title}: replicas over time (s: replicas, trigger values)")
        last = None
        for at, replicas, values in self.timeline:
            if replicas != last:
                print(f"  {at:6.1f} s: {replicas}  {values}")
                last = replicas


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    return build_renderer(tmp_path_factory.mktemp("helm"))


def burst(base: str, jobs: int, seconds: float, start: int = 0) -> list[str]:
    """Submissions `start` to `jobs` spread evenly over `seconds` (as a client's
    burst that began with the first `start`)."""
    body = jpeg(64, 48)
    session = requests.Session()
    ids, began = [], time.monotonic()
    for n in range(start, jobs):
        await_condition(lambda n=n: time.monotonic() >= began + (n - start) * seconds / jobs,
                        60,
                        "the next submission's time", interval=0.005)
        answer = session.post(f"{base}/jobs", data=body, headers={"Content-Type": "image/jpeg"},
                              timeout=30)
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    return ids


@pytest.mark.parametrize(("minimum", "jobs", "seconds"), [(1, 400, 10), (0, 100, 5)],
                         ids=["min-1", "scale-to-zero"])
def test_a_burst_scales_out_drains_and_scales_back(renderer, redis_url, tmp_path, minimum,
                                                   jobs, seconds):
    queue = f"scale-{uuid.uuid4().hex[:6]}"
    values = {"settings": {"QUEUE_NAME": queue},
              "worker": {"keda": {**SCALING, "minReplicas": minimum},
                         "terminationGracePeriodSeconds": GRACE_SECONDS}}
    objects, _ = render(renderer, values, tmp_path)
    scaled = ScaledObject(next(o for o in objects if o["kind"] == "ScaledObject")["spec"])
    web, base = start_gunicorn(redis_url, queue, tmp_path / "web.log", RATE_LIMIT="")
    rendered_web = scaled.triggers[0].metadata["url"].rsplit("/scaling", 1)[0]
    read = trigger_reader(redis.Redis.from_url(redis_url), {rendered_web: base})
    started = []

    def start():
        proc = start_worker(redis_url, queue, tmp_path / f"worker-{len(started)}.log",
                            wait_ready=False, WORKER_CONCURRENCY=8)
        started.append(proc)
        return proc

    # The burst's leading edge (a quarter of it) is queued before the controller's
    # first poll, which comes before any worker can have started: the scale-out is
    # the arithmetic's answer to that load on any machine, however fast its workers.
    began = time.monotonic()
    ids = burst(base, jobs // 4, 0)
    controller = Controller(scaled, read, start, initial=minimum)
    try:
        ids += burst(base, jobs, seconds, start=jobs // 4)
        await_condition(lambda: any(replicas == scaled.max_replicas
                                    for _, replicas, _ in list(controller.timeline)), 120,
                        "scale-out to the maximum")
        finished = {}
        for job_id in ids:
            finished[job_id] = requests.get(f"{base}/jobs/{job_id}?wait=60", timeout=90).json()
        drained = time.monotonic() - began
        await_condition(lambda: controller.replicas == minimum, 120,
                        f"scale-in to {minimum} replicas")
    finally:
        controller.stop()
        web.stop()
    controller.print_timeline(f"{jobs} jobs in {seconds} s, min {minimum}, "
                              f"max {scaled.max_replicas}")
    statuses = [job["status"] for job in finished.values()]
    peak = max(replicas for _, replicas, _ in controller.timeline)
    print(f"  drained {jobs} jobs in {drained:.1f} s from the burst's start (the burst took "
          f"{seconds} s); ideal with {peak} workers at the rate each showed: "
          f"{ideal_drain(redis_url, ids, peak, seconds):.1f} s; {controller.terminated} workers "
          f"terminated, {len(controller.killed)} killed after the grace; "
          f"{finished_after_sigterm(redis_url, ids, controller.sigterms)} jobs finished by "
          f"workers after their SIGTERM")
    assert statuses == ["succeeded"] * jobs  # nothing lost, nothing failed
    assert peak == scaled.max_replicas
    assert controller.terminated >= scaled.max_replicas - minimum
    assert controller.killed == []  # every scaled-in worker left on its own


def finished_after_sigterm(redis_url: str, ids: list[str], sigterms: dict[int, float]) -> int:
    """Jobs a worker finished after it was sent SIGTERM: what its warm shutdown saved
    (a worker's id carries its pid: `worker.heartbeat.new_worker_id`)."""
    records = JobRecords(redis.Redis.from_url(redis_url), 3600, "autoscaling").get_many(ids)
    count = 0
    for record in records:
        pid = int(record.worker.split(":")[-2])
        if pid in sigterms and record.finished_at > sigterms[pid]:
            count += 1
    return count


def ideal_drain(redis_url: str, ids: list[str], workers: int, burst_seconds: float) -> float:
    """The drain time `workers` would need at the mean rate one worker showed here
    (its jobs over the span from its first start to its last finish), and never less
    than the burst itself lasts."""
    records = JobRecords(redis.Redis.from_url(redis_url), 3600, "autoscaling").get_many(ids)
    spans: dict[str, list[float]] = {}
    for record in records:
        # Taken when it had waited its queued time; ended when its record says.
        started_at = record.created_at + record.result["timing_ms"]["queued"] / 1000
        span = spans.setdefault(record.worker, [float("inf"), 0.0, 0])
        span[0] = min(span[0], started_at)
        span[1] = max(span[1], record.finished_at)
        span[2] += 1
    rates = [count / max(1e-3, last - first) for first, last, count in spans.values()]
    return max(burst_seconds, len(ids) / (workers * sum(rates) / len(rates)))
