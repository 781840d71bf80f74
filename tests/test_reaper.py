"""The end-of-run check (tests/support/reaper.py) finds a process of the run
wherever it went, and only those; and a fixture that fails halfway through its
set-up leaves nothing it started running for the tests after it."""

import os
import subprocess
import sys
import uuid

import psutil

from bench.stack import ROOT, base_env
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


# Run by an inner pytest with the suite's own conftest: a module fixture starts a
# process, then fails before its own clean-up could ever run (as a fixture does
# when a tool it needs is missing); the next test reads whether it still runs.
HALF_STARTED = """
import os, sys

import psutil
import pytest

from bench.stack import Process, base_env

PID_FILE = os.environ["HALF_STARTED_PID_FILE"]


@pytest.fixture(scope="module")
def half_started(tmp_path_factory):
    proc = Process([sys.executable, "-c", "import time; time.sleep(120)"], base_env(),
                   tmp_path_factory.mktemp("half") / "sleeper.log")
    with open(PID_FILE, "w") as pid_file:
        pid_file.write(str(proc.pid))
    raise RuntimeError("the tool this stack needs is missing")
    yield proc  # never reached, and neither is the clean-up after it
    proc.stop()


def test_uses_the_stack(half_started):
    pass


def test_after_it_nothing_the_fixture_started_runs():
    pid = int(open(PID_FILE).read())
    assert not psutil.pid_exists(pid), f"pid {pid} is still running"
"""


def test_a_fixture_that_fails_halfway_leaves_no_process_running(pytester, monkeypatch,
                                                                tmp_path):
    pid_file = tmp_path / "half-started.pid"
    monkeypatch.setenv("HALF_STARTED_PID_FILE", str(pid_file))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    # A token of its own: the inner run's end-of-run check must not reap this run.
    monkeypatch.setenv(reaper.TOKEN_VAR, uuid.uuid4().hex)
    pytester.makepyfile(test_half_started=HALF_STARTED)
    result = pytester.runpytest_subprocess("-p", "tests.conftest", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    assert pid_file.exists()  # the fixture did start its process
    result.stdout.no_fnmatch_line("*still running at its end*")
