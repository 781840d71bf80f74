"""`make run` as the README says: one command starts Redis, the worker, the web
tier and Flower; a job goes through; SIGTERM (or Ctrl-C) leaves no process behind."""

import os
import signal
import subprocess
import sys

import psutil
import pytest
import requests

from tests.support.images import jpeg
from tests.support.processes import ROOT, await_condition, base_env, free_port


@pytest.fixture()
def make_run(tmp_path):
    ports = {"PORT": free_port(), "FLOWER_PORT": free_port(), "REDIS_PORT": free_port(),
             "WORKER_METRICS_PORT": free_port()}
    # Eager mode for a fast start; compiling is tested in tests/worker/test_compiled.py.
    env = base_env(MODEL_WEIGHTS="random", MODEL_COMPILE="false", VENV=sys.prefix,
                   RUN_DIR=tmp_path / "run", METRICS_DIR=tmp_path / "metrics", **ports)
    log = open(tmp_path / "make.log", "wb")
    proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    web = f"http://127.0.0.1:{ports['PORT']}"

    def worker_ready():
        if proc.poll() is not None:
            raise RuntimeError((tmp_path / "make.log").read_text())
        return requests.post(f"{web}/jobs?wait=5", data=jpeg(), timeout=10,
                             headers={"Content-Type": "image/jpeg"}).status_code == 200

    try:
        await_condition(worker_ready, 120, "make run", interval=0.5)
        yield proc, web, ports
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def assert_all_gone(proc, children):
    proc.wait(timeout=60)
    await_condition(lambda: not [c for c in children if c.is_running() and c.status() != "zombie"],
                    30, "every process of make run to exit")


def test_make_run_serves_jobs_and_stops_on_sigterm(make_run):
    proc, web, ports = make_run
    response = requests.post(f"{web}/jobs?wait=30", data=jpeg(), timeout=60,
                             headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200 and response.json()["status"] == "succeeded"
    assert requests.get(f"{web}/readyz", timeout=5).json()["status"] == "ok"
    flower = requests.get(f"http://127.0.0.1:{ports['FLOWER_PORT']}/healthcheck", timeout=10)
    assert flower.status_code == 200

    children = descendants(proc.pid)
    names = " ".join(" ".join(c.cmdline()) for c in children)
    assert "redis-server" in names and "gunicorn" in names and "-m worker" in names and "flower" in names
    proc.send_signal(signal.SIGTERM)
    assert_all_gone(proc, children)


def test_ctrl_c_stops_everything(make_run):
    proc, _, _ = make_run
    children = descendants(proc.pid)
    assert len(children) >= 4
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
    assert_all_gone(proc, children)
