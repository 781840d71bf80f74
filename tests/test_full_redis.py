"""A full Redis stalls nothing (defect 4 of the life-cycle issue): admission counts
bytes as well as jobs, Redis's own out-of-memory refusal reads as 503, and a Redis
filled with uploads to its `maxmemory` still lets every accepted job end, after
which its memory is back where it started. Real Redis, real worker."""

import io
import os

import pytest
import redis
from PIL import Image

from bench.stack import start_worker
from tests.conftest import make_settings, running_app
from tests.support.images import jpeg
from web.job_service import redis_guard

pytestmark = pytest.mark.processes


def noisy_jpeg(width=1200, height=900) -> bytes:
    """A photo-sized JPEG that does not compress away (about 1 MB)."""
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_admission_counts_the_bytes_of_waiting_images(idle_settings):
    image = jpeg()
    settings = idle_settings.model_copy(update={"queue_max_bytes": int(len(image) * 2.5)})
    with running_app(settings) as app:
        client = app.test_client()
        first, second = (client.post("/jobs", data=image, content_type="image/jpeg")
                         for _ in range(2))
        assert first.status_code == second.status_code == 202
        third = client.post("/jobs", data=image, content_type="image/jpeg")
        assert third.status_code == 503 and third.headers["Retry-After"]
        assert third.get_json()["error"]["code"] == "queue_full"
        client.delete(f"/jobs/{first.get_json()['id']}")  # an ended job frees its bytes
        assert client.post("/jobs", data=image, content_type="image/jpeg").status_code == 202


def test_redis_out_of_memory_reads_as_503(small_redis):
    url, client = small_redis
    client.config_set("maxmemory", "2mb")
    with pytest.raises(redis.OutOfMemoryError):
        for n in range(100):
            client.set(f"filler-{n}", b"x" * 100_000)
    # Redis weighs a command's own size: full for large writes, then for small ones.
    with pytest.raises(redis.OutOfMemoryError):
        for n in range(100_000):
            client.set(f"small-{n}", b"x" * 100)
    from shared.errors import BrokerUnavailable

    with pytest.raises(BrokerUnavailable) as refused:
        with redis_guard():
            client.set("one-more", b"x" * 100_000)
    assert refused.value.status_code == 503 and refused.value.retry_after
    # Over HTTP: the Idempotency-Key claim is the request's first write, and Redis
    # refuses it; without a key, admission refuses first (Redis is past its headroom).
    with running_app(make_settings(url, queue_name="oom")) as app:
        web = app.test_client()
        keyed = web.post("/jobs", data=jpeg(), content_type="image/jpeg",
                         headers={"Idempotency-Key": "oom-1"})
        plain = web.post("/jobs", data=jpeg(), content_type="image/jpeg")
    assert keyed.status_code == 503 and keyed.headers["Retry-After"]
    assert keyed.get_json()["error"]["code"] == "broker_unavailable"
    assert plain.status_code == 503 and plain.get_json()["error"]["code"] == "queue_full"


def test_uploads_until_redis_is_full_then_every_accepted_job_ends(small_redis, tmp_path):
    url, client = small_redis
    client.config_set("maxmemory", "40mb")
    queue = "full"
    # Bytes admission off: what is tested here is Redis's own limit.
    settings = make_settings(url, queue_name=queue, queue_max_bytes=0)
    image = noisy_jpeg()
    with running_app(settings) as app:
        web = app.test_client()
        baseline = client.info("memory")["used_memory"]
        accepted, answers = [], []
        for _ in range(60):
            response = web.post("/jobs", data=image, content_type="image/jpeg")
            answers.append(response.status_code)
            if response.status_code == 202:
                accepted.append(response.get_json()["id"])
            else:
                assert response.status_code == 503 and response.headers["Retry-After"], \
                    response.get_data(as_text=True)
        full = client.info("memory")["used_memory"]
        # Refusals begin once Redis nears maxmemory and hold while nothing drains. Near
        # the edge Redis's used_memory moves with its clients' buffers (each upload
        # passes through one), so a refusal may be followed by one more acceptance.
        first_refusal = answers.index(503)
        assert answers[:first_refusal] == [202] * first_refusal and first_refusal >= 5
        assert answers[-10:] == [503] * 10, answers
        worker = start_worker(url, queue, tmp_path / "worker.log")
        try:
            final = [web.get(f"/jobs/{job_id}?wait=60").get_json()["status"]
                     for job_id in accepted]
        finally:
            worker.stop()
        after = client.info("memory")["used_memory"]
        accepted_again = web.post("/jobs", data=image, content_type="image/jpeg").status_code
    print(f"\n{len(accepted)} uploads of {len(image)} bytes accepted, then 503; Redis "
          f"{baseline / 2**20:.1f} MiB -> {full / 2**20:.1f} MiB full -> "
          f"{after / 2**20:.1f} MiB after the jobs ended")
    assert final == ["succeeded"] * len(accepted)
    assert after - baseline < 2 * 2**20 < full - baseline  # images gone, records kept
    assert accepted_again == 202
