"""Redis goes away and comes back (kill -9, then a new server on the same port):
the web tier answers 503 with Retry-After within the contract's 3 s instead of
hanging, /readyz fails, and the same app serves again once Redis is back."""

import signal
import time

import pytest

from bench.stack import await_condition, free_port, start_redis
from tests.conftest import make_settings, running_app
from tests.support.images import jpeg

pytestmark = pytest.mark.chaos

CONTRACT_SECONDS = 3.0


def test_web_tier_fails_fast_and_recovers_when_redis_returns(tmp_path):
    port = free_port()
    redis = start_redis(port, tmp_path / "redis", "first.log")
    # With a rate limit, so the limiter (counting in Redis too) must fail fast as well.
    settings = make_settings(f"redis://127.0.0.1:{port}/0", queue_name="outage",
                             rate_limit="100/second")
    with running_app(settings) as app:
        client = app.test_client()
        await_condition(lambda: client.get("/readyz").status_code == 200, 10, "redis")
        assert client.post("/jobs", data=jpeg(), content_type="image/jpeg").status_code == 202

        redis.stop(signal.SIGKILL)
        started = time.monotonic()
        response = client.post("/jobs", data=jpeg(), content_type="image/jpeg")
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "broker_unavailable"
        assert int(response.headers["Retry-After"]) > 0
        assert elapsed < CONTRACT_SECONDS, f"answered after {elapsed:.1f} s"
        assert client.get("/readyz").status_code == 503

        redis = start_redis(port, tmp_path / "redis", "second.log")
        try:
            await_condition(lambda: client.get("/readyz").status_code == 200, 20,
                            "readiness after Redis returned")
            again = client.post("/jobs", data=jpeg(), content_type="image/jpeg")
            assert again.status_code == 202
            assert client.get(f"/jobs/{again.get_json()['id']}").get_json()["status"] == "queued"
        finally:
            redis.stop()
    print(f"503 after {elapsed:.2f} s with Redis down; served again after it returned")
