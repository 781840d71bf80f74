"""`make run` as the README says: one command starts Redis, the worker, the web
tier and Flower; a job goes through; SIGTERM (or Ctrl-C) leaves no process behind."""

import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager

import psutil
import pytest
import redis
import requests

from bench.stack import (
    MODEL_CACHE_DIR,
    ROOT,
    await_condition,
    base_env,
    free_port,
    start_redis,
)
from tests.support.images import jpeg

pytestmark = pytest.mark.processes


@contextmanager
def launch_make_run(tmp_path, **env):
    """`make run` on free ports, awaited until a job goes through; everything it
    started is killed afterwards, whatever happened (its Redis runs in a session of
    its own, so it is found among the descendants, not the process group)."""
    ports = {"PORT": free_port(), "FLOWER_PORT": free_port(), "REDIS_PORT": free_port(),
             "WORKER_METRICS_PORT": free_port(), **env}
    # Eager mode for a fast start; compiling is tested in tests/worker/test_compiled.py.
    env = base_env(MODEL_WEIGHTS="random", MODEL_COMPILE="false", VENV=sys.prefix,
                   COMPILE_CACHE_DIR=MODEL_CACHE_DIR,
                   RUN_DIR=tmp_path / "run", METRICS_DIR=tmp_path / "metrics", **ports)
    log_path = tmp_path / "make.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    web = f"http://127.0.0.1:{ports['PORT']}"
    started: list[psutil.Process] = []

    def worker_ready():
        started.extend(c for c in descendants(proc.pid) if c not in started)
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text())
        return requests.post(f"{web}/jobs?wait=5", data=jpeg(), timeout=10,
                             headers={"Content-Type": "image/jpeg"}).status_code == 200

    try:
        await_condition(worker_ready, 120, "make run", interval=0.5)
        yield proc, web, ports, log_path
    finally:
        if proc.poll() is None:
            started.extend(c for c in descendants(proc.pid) if c not in started)
            os.killpg(proc.pid, signal.SIGKILL)
        for child in started:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        proc.wait(30)
        log.close()


@pytest.fixture()
def make_run(tmp_path):
    with launch_make_run(tmp_path) as (proc, web, ports, _):
        yield proc, web, ports


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def assert_all_gone(proc, children):
    proc.wait(timeout=60)
    await_condition(lambda: not [c for c in children if c.is_running() and c.status() != "zombie"],
                    30, "every process of make run to exit")


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.NoSuchProcess:  # ended between listing and reading
        return []


def test_make_run_serves_jobs_and_stops_on_sigterm(make_run):
    proc, web, ports = make_run
    response = requests.post(f"{web}/jobs?wait=30", data=jpeg(), timeout=60,
                             headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200 and response.json()["status"] == "succeeded"
    assert requests.get(f"{web}/readyz", timeout=5).json()["status"] == "ok"
    flower = requests.get(f"http://127.0.0.1:{ports['FLOWER_PORT']}/healthcheck", timeout=10)
    assert flower.status_code == 200

    children = descendants(proc.pid)
    # Read once; a short-lived helper (the supervisor's sleep, say) may end meanwhile.
    lines = {child.pid: _cmdline(child) for child in children}
    # The web tier listens on loopback only (a laptop does not serve its network).
    web_port = int(web.rsplit(":", 1)[1])
    listening = {c.laddr.ip for child in children if "gunicorn" in " ".join(lines[child.pid])
                 for c in child.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == web_port}
    assert listening == {"127.0.0.1"}
    names = " ".join(" ".join(line) for line in lines.values())
    assert all(name in names for name in ("redis-server", "gunicorn", "-m worker", "flower"))
    # The worker has a liveness watch on its /healthz (tests/test_worker_liveness.py).
    worker = next(c for c in children if lines[c.pid][1:3] == ["-m", "worker"])
    watch = next(c for c in children if "shared.liveness" in lines[c.pid])
    assert lines[watch.pid][-2:] == ["--watch", str(worker.pid)]
    assert f":{ports['WORKER_METRICS_PORT']}/healthz" in " ".join(lines[watch.pid])
    proc.send_signal(signal.SIGTERM)
    assert_all_gone(proc, children)


def test_ctrl_c_stops_everything(make_run):
    proc, _, _ = make_run
    children = descendants(proc.pid)
    assert len(children) >= 4
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
    assert_all_gone(proc, children)


def test_make_run_beside_another_redis_starts_its_own_and_never_touches_the_other(tmp_path):
    """Port 6379 is often taken (Debian's redis-server package starts one; laptops
    run one). Here another Redis holds REDIS_PORT: `make run` says so, starts its
    own Redis on a free port, and opens not one connection to the other."""
    port = free_port()
    other = start_redis(port, tmp_path / "other")
    client = redis.Redis(port=port)
    await_condition(client.ping, 10, "the other redis-server")
    connections = client.info("stats")["total_connections_received"]
    try:
        with launch_make_run(tmp_path, REDIS_PORT=port) as (proc, web, _, log_path):
            response = requests.post(f"{web}/jobs?wait=30", data=jpeg(), timeout=60,
                                     headers={"Content-Type": "image/jpeg"})
            assert response.status_code == 200 and response.json()["status"] == "succeeded"
            log = log_path.read_text()
            used = int(re.search(r"REDIS_URL=redis://127\.0\.0\.1:(\d+)/0", log).group(1))
            assert f"port {port} is taken" in log and f"uses port {used}" in log
            assert used != port
            assert redis.Redis(port=used).dbsize() > 0  # the jobs went to its own Redis
        assert client.info("stats")["total_connections_received"] == connections
        assert client.dbsize() == 0
    finally:
        client.close()
        other.stop()


def test_a_dead_worker_is_restarted_while_the_web_keeps_serving(make_run, tmp_path):
    """On one machine `make run` is the deployment: a worker that dies (SIGKILL, as
    the OOM killer would) is started again, and says so, while the web tier keeps
    answering; jobs go through again afterwards."""
    proc, web, _ = make_run

    def workers():
        return [c for c in descendants(proc.pid) if _cmdline(c)[1:3] == ["-m", "worker"]]

    [first] = workers()
    first.kill()
    assert requests.get(f"{web}/healthz", timeout=5).status_code == 200
    await_condition(lambda: [w for w in workers() if w.pid != first.pid], 60,
                    "a new worker process")
    response = requests.post(f"{web}/jobs?wait=30", data=jpeg(), timeout=120,
                             headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200 and response.json()["status"] == "succeeded"
    log = (tmp_path / "make.log").read_text()
    assert "resq: worker exited (status" in log and "restarting it after 1 s" in log
    assert proc.poll() is None  # make run itself carries on
