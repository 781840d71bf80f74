"""Redis killed with SIGKILL and started again on the same data (append-only file
on, as in `make run` and compose): every job it had accepted is still there and
ends, and the web tier and the worker reconnect by themselves (or, where kombu
ends the worker as Redis comes back, its restart finishes the jobs)."""

import signal

import pytest
import redis

from bench.stack import await_condition, free_port, start_redis, start_worker
from tests.conftest import make_settings, running_app
from tests.support.images import jpeg

pytestmark = [pytest.mark.chaos, pytest.mark.processes]


def test_accepted_jobs_survive_redis_kill_9_and_everything_reconnects(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    data = tmp_path / "redis"
    server = start_redis(port, data, "first.log", appendonly=True)
    await_condition(redis.Redis.from_url(url).ping, 10, "redis-server")
    queue = "restart"
    worker = start_worker(url, queue, tmp_path / "worker.log", VISIBILITY_TIMEOUT_SECONDS=5)
    worker_pid = worker.pid
    try:
        with running_app(make_settings(url, queue_name=queue)) as app:
            client = app.test_client()
            ids = [client.post("/jobs", data=jpeg(), content_type="image/jpeg").get_json()["id"]
                   for _ in range(16)]
            before = {i: client.get(f"/jobs/{i}").get_json()["status"] for i in ids}

            server.stop(signal.SIGKILL)
            server = start_redis(port, data, "second.log", appendonly=True)
            await_condition(lambda: client.get("/readyz").status_code == 200, 20,
                            "the web tier to see Redis again")
            # Every accepted job is known after the restart (none answers 404).
            after = {i: client.get(f"/jobs/{i}").status_code for i in ids}
            assert set(after.values()) == {200}, after
            ids.append(client.post("/jobs", data=jpeg(), content_type="image/jpeg")
                       .get_json()["id"])
            restarted = []

            def all_ended():
                # As every deployment does (make run, compose, Kubernetes): a worker
                # that exits by itself is started again. kombu can end one as Redis
                # comes back ("Unrecoverable error": AttributeError in _connparams
                # while a channel restores the messages it held; kombu#582, #970).
                nonlocal worker
                if not worker.alive():
                    restarted.append(worker.popen.returncode)
                    worker = start_worker(url, queue, tmp_path / f"worker-{len(restarted)}.log",
                                          VISIBILITY_TIMEOUT_SECONDS=5)
                statuses = [client.get(f"/jobs/{i}?wait=2").get_json()["status"] for i in ids]
                return statuses if all(s in ("succeeded", "failed") for s in statuses) else None

            final = await_condition(all_ended, 120, "every accepted job to end", interval=0)
        print(f"at the kill: {sorted(before.values())}; after the restart all "
              f"{len(ids)} jobs {set(final)}; worker exited by itself and was restarted: "
              f"{restarted or 'no (it reconnected)'}")
        assert final == ["succeeded"] * len(ids)
        assert worker.alive()
        if not restarted:
            assert worker.pid == worker_pid  # reconnected, not restarted
    finally:
        worker.stop()
        server.stop()
