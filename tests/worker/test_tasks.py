"""What a failed job tells its client (`worker.tasks.public_error`)."""

import logging

from shared.errors import BadImage
from worker.tasks import public_error


def test_an_unexpected_error_is_told_by_its_code_and_logged_in_full(caplog):
    """The raw text of an unexpected exception can name a host, a port or a path: it
    goes to the worker's log (with the job id), never into the job's public error."""
    error = ConnectionError("Error 111 connecting to redis-internal.corp:6379")
    with caplog.at_level(logging.ERROR, logger="worker.tasks"):
        told = public_error(error, "job-7").to_dict()
    assert told["code"] == "inference_failed" and "job-7" in told["message"]
    assert "redis-internal" not in told["message"] and "6379" not in told["message"]
    assert any("redis-internal.corp:6379" in (r.exc_text or "") for r in caplog.records)


def test_a_resq_error_is_told_as_it_is():
    error = BadImage("the image cannot be decoded: truncated")
    assert public_error(error, "job-8") is error
