"""Shared fixtures: a real redis-server, a real Celery worker process (random
weights) and Flask apps built by `create_app` against them."""

from __future__ import annotations

import signal
import uuid
from contextlib import contextmanager

import pytest
import redis

from bench.stack import redis_server, running_processes, start_gunicorn, start_worker
from tests.support import reaper
from web import create_app
from web.services import services
from web.settings import WebSettings

WORKER_QUEUE = "resq-test"
# pytester runs inner pytest sessions (tests/test_reaper.py).
pytest_plugins = ("pytester",)


def pytest_configure(config):
    config.resq_run_token = reaper.mark_run()


def pytest_sessionfinish(session, exitstatus):
    """No process of the suite is left after the run: any that still carries the
    run's token is killed, named, and fails the run."""
    left = reaper.reap(session.config.resq_run_token)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "processes of the suite still running at its end (killed now):"
        for line in [message, *left]:
            if reporter is not None:
                reporter.write_line(line, red=True)
            else:
                print(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(items):
    """A test served by the session's gunicorn starts real processes of its own."""
    for item in items:
        if "http_service" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.processes)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """A fixture whose set-up fails (a tool it needs is missing, a server that never
    answers) never reaches its own clean-up: what it started before failing is
    killed here, at once, rather than running on beside the tests after it (a
    Flower left so on the session's Redis turned every worker's task events on)."""
    before = running_processes()
    try:
        return (yield)
    except BaseException:
        for proc in running_processes() - before:
            proc.stop(signal.SIGKILL)
        raise


@pytest.fixture(autouse=True)
def _stop_what_the_test_started():
    """A test's own processes end with it, pass or fail: whatever the test (or its
    function-scoped fixtures) started and left running is killed at its teardown.
    Module- and session-scoped fixtures start theirs before this runs."""
    before = running_processes()
    yield
    for proc in running_processes() - before:
        proc.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture()
def small_redis(tmp_path):
    """A Redis of the test's own, with noeviction as compose and the chart run it; the
    test sets the `maxmemory` it needs (CONFIG SET). Its (url, client)."""
    with redis_server(tmp_path / "redis") as url:
        client = redis.Redis.from_url(url)
        yield url, client
        client.close()


@pytest.fixture(scope="session")
def worker(redis_url, tmp_path_factory):
    """One real `python -m worker` process consuming `WORKER_QUEUE`."""
    proc = start_worker(redis_url, WORKER_QUEUE, tmp_path_factory.mktemp("worker") / "worker.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def http_service(redis_url, worker, tmp_path_factory):
    """Real gunicorn (no rate limit) on the session worker's queue, for the tests that
    go through HTTP as a client would: its base URL."""
    web, base = start_gunicorn(redis_url, WORKER_QUEUE,
                               tmp_path_factory.mktemp("http") / "web.log", RATE_LIMIT="")
    yield base
    web.stop()


def make_settings(redis_url: str, **overrides):
    """Test settings. URL submissions and webhooks may reach 127.0.0.1 on any port,
    over plain http, where the tests' servers listen (a deployment never needs that);
    the SSRF tests override it. Rate limits are off (every test client is 127.0.0.1); their tests
    set one."""
    unknown = set(overrides) - set(WebSettings.model_fields)
    assert not unknown, f"not settings of the web tier: {unknown}"
    overrides = {"url_fetch_allow_networks": "127.0.0.1/32", "url_fetch_allow_ports": "any",
                 "webhook_http_networks": "127.0.0.1/32", "rate_limit": "", **overrides}
    return WebSettings.load(redis_url=redis_url, **overrides)


@pytest.fixture()
def settings(redis_url, worker):
    return make_settings(redis_url, queue_name=WORKER_QUEUE)


@contextmanager
def running_app(settings):
    app = create_app(settings)
    try:
        yield app
    finally:
        services(app).jobs.close()


@pytest.fixture()
def app(settings):
    with running_app(settings) as app:
        yield app


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def idle_settings(redis_url):
    """Settings for a queue no worker consumes: jobs stay queued."""
    return make_settings(redis_url, queue_name=f"idle-{uuid.uuid4().hex[:8]}")


@pytest.fixture()
def idle_client(idle_settings):
    with running_app(idle_settings) as app:
        yield app.test_client()
