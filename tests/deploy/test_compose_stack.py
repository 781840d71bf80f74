"""compose.yaml for real: the web, worker and Flower images are built from
docker/*.Dockerfile (the worker's build stage converts the model, with torch from
PyPI here) and the stack runs under podman, driven by docker-compose v1 through
podman's API socket (tests/support/containers.py).

Only what cannot be had here is replaced, through compose's own variables: the
Python base image (debootstrapped: no registry is reachable), Redis and Prometheus
(stand-ins from Debian's packages, tests/deploy/standins/), pip's torch index (PyPI;
PyTorch's CPU index is not reachable), the weights (`random`: no download) and the
host's extra certificate authorities (this machine's TLS is re-signed by one).
Grafana is left out: no image of it can be had here (no registry, and Debian has no
grafana package). Ports are free ones on the host; the project name is the test's own,
and `down -v` removes its containers, network and volumes, pass or fail.

What a user of `docker compose up` relies on: jobs submitted through the published
port get results, Prometheus scrapes every target `up`, Flower shows the worker, a
worker whose process dies is restarted and the jobs it held are finished, and a
Redis restart keeps the queue (append-only file on its volume).
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest
import requests

from bench.stack import await_condition, free_port
from tests.support import containers
from tests.support.images import PHOTOS, jpeg

# Cold, the worker's build stage downloads torch (minutes); warm, podman's layer cache.
pytestmark = [pytest.mark.containers, pytest.mark.timeout(2400)]

IMAGE_TAG = "resq-test"
BUILD_STAGE = f"localhost/resq-worker-build:{IMAGE_TAG}"
SERVICES = ["redis", "web", "worker", "flower", "prometheus"]
FLOWER_PASSWORD = "compose-test-" + uuid.uuid4().hex[:8]


def photo_jpeg(seed: int) -> bytes:
    """One of the suite's photographs, its size varied by `seed`."""
    return jpeg(240 + seed % 160, 180 + seed % 120, PHOTOS[seed % len(PHOTOS)])


class Stack:
    """The running project: its compose wrapper, published ports, and what the
    builds cost (reported at the end of the module)."""

    def __init__(self, compose: containers.Compose, ports: dict[str, int]):
        self.compose, self.ports = compose, ports
        self.web = f"http://127.0.0.1:{ports['WEB_PORT']}"
        self.report: dict[str, object] = {}

    def submit(self, seed: int, wait: float = 0) -> dict:
        query = f"?wait={wait:g}" if wait else ""
        response = requests.post(f"{self.web}/jobs{query}", timeout=wait + 30,
                                 files={"image": (f"{seed}.jpg", photo_jpeg(seed),
                                                  "image/jpeg")})
        assert response.status_code in (200, 202), response.text
        return response.json()

    def job(self, job_id: str, wait: float = 0) -> dict:
        query = f"?wait={wait:g}" if wait else ""
        response = requests.get(f"{self.web}/jobs/{job_id}{query}", timeout=wait + 30)
        assert response.status_code == 200, response.text
        return response.json()

    def finished(self, job_ids: list[str], timeout: float) -> list[dict]:
        """Each job once it ends (long-polls GET /jobs/<id>?wait=)."""
        deadline = time.monotonic() + timeout
        ended = []
        for job_id in job_ids:
            job = self.job(job_id)
            while job["status"] not in ("succeeded", "failed"):
                left = deadline - time.monotonic()
                assert left > 0, (f"{job_id} still {job['status']} after {timeout} s\n"
                                  + self.compose.logs("worker"))
                job = self.job(job_id, wait=min(left, 20))
            ended.append(job)
        return ended

    def scaling(self) -> dict:
        response = requests.get(f"{self.web}/scaling", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


def _built(compose: containers.Compose, service: str, report: dict) -> None:
    started = time.monotonic()
    compose("build", service, timeout=1800)
    report[f"build {service} (s)"] = round(time.monotonic() - started, 1)
    image = f"resq-{service}:{IMAGE_TAG}"
    report[f"image {service} (MB)"] = round(containers.image_size(image) / 1e6)


def _build_stage(env: dict[str, str], report: dict) -> None:
    """The worker's build stage (torch, the conversion), with the build arguments
    compose passes, tagged so that it is kept as the cache of later builds while
    `podman image prune` clears resq's stale layers (at the end of the module)."""
    args = [f"{name}={env[name]}" for name in ("PYTHON_IMAGE", "EXTRA_CA_CERTS",
                                              "TORCH_INDEX_URL", "MODEL_WEIGHTS")]
    started = time.monotonic()
    containers.podman("build", "--format", "docker", "--target", "build",
                      "-f", "docker/worker.Dockerfile", "-t", BUILD_STAGE,
                      *[part for arg in args for part in ("--build-arg", arg)], ".",
                      cwd=containers.ROOT, timeout=1800)
    report["build worker's build stage (s)"] = round(time.monotonic() - started, 1)
    report["worker's build stage (MB)"] = round(containers.image_size(BUILD_STAGE) / 1e6)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, pytestconfig):
    directory = tmp_path_factory.mktemp("compose")
    report: dict[str, object] = {}
    started = time.monotonic()
    base = containers.ensure_base_image()
    redis_image = containers.build_standin("redis", base)
    prometheus_image = containers.build_standin("prometheus", base)
    report["base and stand-in images (s)"] = round(time.monotonic() - started, 1)
    ports = {name: free_port() for name in
             ("WEB_PORT", "FLOWER_PORT", "PROMETHEUS_PORT", "GRAFANA_PORT")}
    project = f"resqtest{uuid.uuid4().hex[:8]}"
    with containers.PodmanService(directory) as service:
        env = {
            "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
            "DOCKER_HOST": service.url, "IMAGE_TAG": IMAGE_TAG,
            "PYTHON_IMAGE": base, "REDIS_IMAGE": redis_image,
            "PROMETHEUS_IMAGE": prometheus_image,
            "EXTRA_CA_CERTS": containers.local_authorities(),
            "TORCH_INDEX_URL": "https://pypi.org/simple", "MODEL_WEIGHTS": "random",
            "FLOWER_PASSWORD": FLOWER_PASSWORD, "GRAFANA_PASSWORD": "unused-here",
            **{name: str(port) for name, port in ports.items()},
        }
        compose = containers.Compose(project, env)
        health = containers.HealthChecks(project)
        health.start()
        try:
            _build_stage(env, report)
            for name in ("web", "flower", "worker"):
                _built(compose, name, report)
            started = time.monotonic()
            compose("up", "-d", *SERVICES, timeout=600)
            stack = Stack(compose, ports)
            await_condition(lambda: requests.get(f"{stack.web}/healthz", timeout=5).ok,
                            timeout=120, what="the web tier's /healthz through its port")
            report["up to /healthz (s)"] = round(time.monotonic() - started, 1)
            stack.report = report
            yield stack
        finally:
            try:
                compose("down", "-v", "--remove-orphans", "--timeout", "30", timeout=300)
            finally:
                health.stop()
                containers.podman("image", "prune", "-f", "--filter", "label=io.resq.project",
                                  check=False, timeout=600)
                # Shown in CI's log: what the images cost and what the stack saw.
                capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
                reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
                if capture and reporter:
                    with capture.global_and_fixture_disabled():
                        reporter.write_line(f"\ncompose stack: {json.dumps(report)}")
    leftover = containers.podman("ps", "-a", "-q", "--filter",
                                 f"label=com.docker.compose.project={project}").stdout
    assert not leftover.strip(), f"containers left behind: {leftover}"


def test_images_hold_what_they_should(stack):
    """The worker image carries the converted model and no torch; no image runs as
    root."""
    probe = ("import importlib.util, json, os; "
             "print(json.dumps({'torch': importlib.util.find_spec('torch') is not None, "
             "'uid': os.getuid(), 'ir': sorted(os.listdir('/opt/resq/compiled')) "
             "if os.path.isdir('/opt/resq/compiled') else []}))")
    seen = {}
    for name in ("web", "worker", "flower"):
        result = containers.podman("run", "--rm", "--entrypoint", "python",
                                   f"resq-{name}:{IMAGE_TAG}", "-c", probe)
        seen[name] = json.loads(result.stdout)
    assert not any(found["torch"] for found in seen.values()), seen
    assert all(found["uid"] == 10001 for found in seen.values()), seen
    assert seen["worker"]["ir"], "the worker image has no converted model"
    stack.report["worker image's compiled/"] = seen["worker"]["ir"]


def test_jobs_submitted_through_the_published_port_get_results(stack):
    jobs = [stack.submit(seed, wait=120) for seed in range(3)]
    for job in jobs:
        assert job["status"] == "succeeded", job
        predictions = job["result"]["predictions"]
        assert len(predictions) == job["top_k"] == 5
        assert job["result"]["model"]["engine"] == "openvino"


def test_prometheus_scrapes_every_target_up_and_flower_shows_the_worker(stack):
    prometheus = f"http://127.0.0.1:{stack.ports['PROMETHEUS_PORT']}"

    def targets():
        found = requests.get(f"{prometheus}/api/v1/targets", timeout=10).json()
        health = {target["labels"]["job"]: target["health"]
                  for target in found["data"]["activeTargets"]}
        return health if set(health) == {"resq-web", "resq-worker", "resq-flower"} \
            and all(state == "up" for state in health.values()) else None

    # Scraped every 15 s (deploy/prometheus/prometheus.yml): up within a few rounds.
    await_condition(targets, timeout=120, what="every Prometheus target up", interval=1)
    rules = requests.get(f"{prometheus}/api/v1/rules", timeout=10).json()
    assert rules["data"]["groups"], "the alert rules were not loaded"

    # Flower's dashboard lists workers from their events (heartbeats every 2 s); its
    # /api/workers answers only from an inspect at its start, before a worker is up.
    flower = f"http://127.0.0.1:{stack.ports['FLOWER_PORT']}"
    assert requests.get(f"{flower}/", timeout=10).status_code == 401
    hostname = stack.compose.container("worker")["Config"]["Hostname"]
    await_condition(
        lambda: f"celery@{hostname}" in requests.get(
            f"{flower}/", auth=("flower", FLOWER_PASSWORD), timeout=10).text,
        timeout=60, what="Flower's dashboard listing the worker", interval=1)


def test_a_killed_worker_is_restarted_and_its_jobs_finish(stack):
    before = stack.compose.container("worker")
    job_ids = [stack.submit(100 + seed)["id"] for seed in range(40)]
    # Once the worker has taken jobs (a status that does not go back), its process
    # dies as if the kernel had killed it: SIGKILL to the container's PID 1.
    await_condition(lambda: any(stack.job(job_id)["status"] != "queued"
                                for job_id in job_ids[:8]),
                    timeout=120, what="the worker taking jobs", interval=0.2)
    unfinished = sum(stack.job(job_id)["status"] not in ("succeeded", "failed")
                     for job_id in job_ids)
    os.kill(before["State"]["Pid"], signal.SIGKILL)

    def restarted():
        now = stack.compose.container("worker")
        return now["State"]["Running"] and now["State"]["Pid"] != before["State"]["Pid"]

    await_condition(restarted, timeout=120, what="compose restarting the worker", interval=0.5)
    ended = stack.finished(job_ids, timeout=300)
    assert [job["status"] for job in ended] == ["succeeded"] * len(job_ids), \
        [job for job in ended if job["status"] != "succeeded"]
    stack.report["jobs unfinished when the worker was killed"] = f"{unfinished}/{len(job_ids)}"


def test_the_queue_survives_a_redis_restart(stack):
    stack.compose("stop", "worker", timeout=180)
    job_ids = [stack.submit(200 + seed)["id"] for seed in range(10)]
    waiting = stack.scaling()["waiting"]
    assert sum(waiting.values()) == len(job_ids), waiting

    stack.compose("restart", "redis", timeout=180)
    after = await_condition(stack.scaling, timeout=120,
                            what="the web tier reaching the restarted Redis", interval=0.5)
    assert after["waiting"] == waiting, after
    assert {stack.job(job_id)["status"] for job_id in job_ids} == {"queued"}

    stack.compose("start", "worker", timeout=180)
    ended = stack.finished(job_ids, timeout=300)
    assert {job["status"] for job in ended} == {"succeeded"}, ended
