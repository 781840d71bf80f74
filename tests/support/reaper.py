"""No process of the suite outlives the run, pass or fail.

At the start of a run pytest puts a fresh token in `RESQ_TEST_RUN`; every process
the suite starts inherits it (redis-server, workers, gunicorn, `make run` and all it
starts, Prometheus, Chromium), however it was started and whatever session or
process group it moved to. At the end of the run (tests/conftest.py) every process
that still carries the token is listed, killed, and the run fails: a test that
leaves one behind is a bug in that test.
"""

from __future__ import annotations

import os
import time
import uuid

import psutil

TOKEN_VAR = "RESQ_TEST_RUN"


def mark_run() -> str:
    """Give this run its token (kept if an outer run set one, as `make fuzz` may)."""
    return os.environ.setdefault(TOKEN_VAR, uuid.uuid4().hex)


def processes_of_run(token: str) -> list[psutil.Process]:
    """Live processes (not zombies) other than this one that carry `token`."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(TOKEN_VAR) == token:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid}: {' '.join(proc.cmdline())[:200]}"
    except psutil.Error:
        return f"pid {proc.pid}"


def reap(token: str, grace: float = 10.0) -> list[str]:
    """Give the run's processes `grace` seconds to exit on their own (a browser's
    helpers go a moment after the browser), then kill what is left. Returns a
    line for each process that had to be killed."""
    deadline = time.monotonic() + grace
    left = processes_of_run(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = processes_of_run(token)
    lines = [describe(proc) for proc in left]
    for proc in left:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=10)
    return lines
