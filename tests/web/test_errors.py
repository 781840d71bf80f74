"""Every bad request gets the JSON error of DESIGN.md with the fitting status,
and costs nothing else: the next job still succeeds."""

import io
import uuid

import pytest
from PIL import Image

from tests.support.http_server import serve
from tests.support.images import encode, jpeg


def assert_error(response, status: int, code: str):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_unknown_job_is_404(client):
    assert_error(client.get(f"/jobs/{uuid.uuid4()}"), 404, "job_not_found")
    assert_error(client.get("/jobs/not-even-a-uuid?wait=1"), 404, "job_not_found")


def test_text_file_is_400(client):
    response = client.post("/jobs", data={"image": (io.BytesIO(b"just some text\n"), "a.txt")})
    assert_error(response, 400, "unsupported_image_format")


@pytest.mark.parametrize("body", [b"", b"<html><body>hi</body></html>", b"%PDF-1.7\n%%EOF"])
def test_non_images_in_a_raw_body_are_400(client, body):
    error = assert_error(client.post("/jobs", data=body, content_type="image/jpeg"), 400, None or
                         ("bad_image" if not body else "unsupported_image_format"))
    assert error["message"]


def test_body_over_the_limit_is_413(client, settings):
    big = b"\xff\xd8" + b"0" * settings.max_upload_bytes
    assert_error(client.post("/jobs", data=big, content_type="image/jpeg"), 413,
                 "payload_too_large")
    assert_error(client.post("/jobs", data={"image": (io.BytesIO(big), "big.jpg")}), 413,
                 "payload_too_large")


def test_an_oversized_text_field_in_a_multipart_is_413(client):
    form = {"image": (io.BytesIO(jpeg()), "a.jpg"), "top_k": "5" * (2 * 1024 * 1024)}
    assert_error(client.post("/jobs", data=form), 413, "payload_too_large")


def test_pixels_over_the_limit_are_413(client):
    bomb = encode(Image.new("1", (20000, 20000)), "PNG")
    assert_error(client.post("/jobs", data=bomb, content_type="image/png"), 413, "image_too_large")


def test_an_image_that_costs_too_much_to_decode_is_413_and_never_queued(idle_settings):
    # A 1000x1000 16-bit PNG is a few kilobytes that decode at about 12 bytes a pixel;
    # a JPEG of the same pixels at about 9: a 10 MiB decode limit takes only the second.
    import redis

    from tests.conftest import running_app

    settings = idle_settings.model_copy(update={"max_decode_bytes": 10 * 2**20})
    deep = encode(Image.new("I;16", (1000, 1000), 4000), "PNG")
    with running_app(settings) as app:
        client = app.test_client()
        error = assert_error(client.post("/jobs", data=deep, content_type="image/png"), 413,
                             "image_too_large")
        assert "mode I;16" in error["message"]
        queue = redis.Redis.from_url(settings.redis_url)
        assert queue.llen(settings.queue_name) == 0
        accepted = client.post("/jobs", data=jpeg(1000, 1000), content_type="image/jpeg")
        assert accepted.status_code == 202 and queue.llen(settings.queue_name) == 1
        queue.close()


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "image/svg+xml",
                                          "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(client, content_type):
    assert_error(client.post("/jobs", data=jpeg(), content_type=content_type), 415,
                 "unsupported_media_type")


def test_no_content_type_is_415(client):
    response = client.post("/jobs", data=jpeg(), headers={"Content-Type": ""})
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("query", ["top_k=0", "top_k=21", "top_k=abc", "wait=-1", "wait=soon"])
def test_invalid_fields_are_422(client, query):
    error = assert_error(client.post(f"/jobs?{query}", data=jpeg(), content_type="image/jpeg"),
                         422, "invalid_field")
    assert error["details"][0]["field"] in ("top_k", "wait")


def test_missing_image_field_is_422(client):
    error = assert_error(client.post("/jobs", data={"picture": (io.BytesIO(jpeg()), "a.jpg")}),
                         422, "invalid_field")
    assert error["details"] == [{"field": "image", "message": "required"}]


def test_malformed_json_is_400(client):
    assert_error(client.post("/jobs", data=b'{"url":', content_type="application/json"), 400,
                 "bad_request")


@pytest.mark.parametrize("body", [{"url": 5}, {"top_k": 3}, {"url": "http://x", "extra": 1}, [1]])
def test_wrong_json_fields_are_422(client, body):
    assert_error(client.post("/jobs", json=body), 422, "invalid_field")


@pytest.mark.parametrize("url", ["ftp://example.org/a.jpg", "file:///etc/passwd", "http://",
                                 "not a url", "http://127.0.0.1/" + "a" * 3000])
def test_bad_urls_are_400(client, url):
    assert_error(client.post("/jobs", json={"url": url}), 400, "bad_url")


def test_url_that_fails_or_is_not_an_image_is_400(client):
    routes = {"/text": (200, "text/plain", b"hello"), "/gone": (404, "text/plain", b"no"),
              "/fake": (200, "image/jpeg", b"hello")}
    with serve(routes) as (base, _):
        assert_error(client.post("/jobs", json={"url": f"{base}/gone"}), 400, "url_fetch_failed")
        text = client.post("/jobs", json={"url": f"{base}/text"})
        assert_error(text, 400, "url_fetch_failed")
        assert "text/plain" in text.get_json()["error"]["message"]
        assert_error(client.post("/jobs", json={"url": f"{base}/fake"}), 400,
                     "unsupported_image_format")


def test_url_body_over_the_limit_is_413(client, settings):
    too_big = b"\xff" * (settings.max_upload_bytes + 1)
    with serve({"/big": (200, "image/jpeg", too_big)}) as (base, _):
        assert_error(client.post("/jobs", json={"url": f"{base}/big"}), 413, "payload_too_large")


def test_unknown_route_and_method_are_json(client):
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.put("/jobs"), 405, "method_not_allowed")


def test_an_undecodable_image_fails_only_its_own_job(client):
    whole = jpeg(640, 480)
    truncated = whole[: len(whole) // 3]  # a valid header, then nothing
    bad = client.post("/jobs?wait=30", data=truncated, content_type="image/jpeg")
    assert bad.status_code == 200
    job = bad.get_json()
    assert job["status"] == "failed" and job["result"] is None
    assert job["error"]["code"] == "bad_image" and "decoded" in job["error"]["message"]
    good = client.post("/jobs?wait=30", data=whole, content_type="image/jpeg")
    assert good.get_json()["status"] == "succeeded"
