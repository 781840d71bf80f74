"""The end-of-run check (tests/support/reaper.py) finds a process of the run
wherever it went, and only those."""

import os
import subprocess
import sys
import uuid

import psutil

from bench.stack import base_env
from tests.support import reaper

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def test_a_process_left_behind_is_found_named_and_killed():
    token = uuid.uuid4().hex  # not this run's: the run's own processes stay alone
    env = {**os.environ, reaper.TOKEN_VAR: token}
    # Its own session, as redis-server under `make run` has: no process group finds it.
    left = subprocess.Popen(SLEEPER, env=env, start_new_session=True)
    other = subprocess.Popen(SLEEPER, env={**os.environ, reaper.TOKEN_VAR: "another run"})
    try:
        assert [p.pid for p in reaper.processes_of_run(token)] == [left.pid]
        lines = reaper.reap(token, grace=0.2)
        assert lines == [f"pid {left.pid}: {' '.join(SLEEPER)}"]
        assert not psutil.pid_exists(left.pid)  # killed and reaped
        assert other.poll() is None and reaper.processes_of_run(token) == []
    finally:
        for proc in (left, other):
            proc.kill()
            proc.wait()


def test_the_processes_the_suite_starts_carry_this_runs_token():
    assert base_env()[reaper.TOKEN_VAR] == os.environ[reaper.TOKEN_VAR]
