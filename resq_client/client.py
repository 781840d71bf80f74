"""A small client for resq's HTTP API, the one the `resq` command uses.

    client = ResqClient("http://127.0.0.1:8000", api_key="...")
    job = client.submit("cat.jpg", wait=10)        # a path, bytes, or an http(s) URL
    job = client.get(job["id"], wait=30)
    client.cancel(job["id"])

    batch = client.submit_batch(["a.jpg", "b.jpg"])       # or URLs: submit_batch(urls=[...])
    for line in client.iter_results(batch["id"]):         # as items end; resumes by itself
        ...
    client.cancel_batch(batch["id"])

Jobs and batches are the server's JSON (`id`, `status`, `result`, `error`, ...). 503 and 429
answers are retried after their `Retry-After` (capped), a few times; other errors
raise `ResqClientError` with the server's code and message.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests

TERMINAL = {"succeeded", "failed"}
BATCH_TERMINAL = {"succeeded", "cancelled"}
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
               ".webp": "image/webp", ".gif": "image/gif", ".bmp": "image/bmp",
               ".tif": "image/tiff", ".tiff": "image/tiff"}


class ResqClientError(Exception):
    """The server refused a request: `status`, `code` and `message` say why."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class ServiceUnavailable(ResqClientError):
    """The server could not be reached, or stayed unavailable through the retries."""


class JobTimeout(Exception):
    """A wait ended before the job did; `job` is its last state."""

    def __init__(self, job: dict):
        super().__init__(f"job {job['id']} is still {job['status']}")
        self.job = job


class ResqClient:
    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0,
                 retries: int = 5, max_retry_after: float = 30.0,
                 session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.max_retry_after = max_retry_after
        self.session = session or requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    # --- the API ---------------------------------------------------------------------
    def submit(self, image: str | Path | bytes, *, top_k: int | None = None,
               wait: float | None = None, idempotency_key: str | None = None) -> dict:
        """Submit a file path, raw bytes or an http(s) URL; with `wait`, hold the
        request up to that many seconds for the result."""
        params = {k: v for k, v in (("top_k", top_k), ("wait", wait)) if v is not None}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if isinstance(image, str) and image.startswith(("http://", "https://")):
            return self._request("POST", "/jobs", params=params, headers=headers,
                                 json={"url": image}, wait=wait)
        if isinstance(image, bytes):
            data, media_type = image, "image/jpeg"
        else:
            path = Path(image)
            data = path.read_bytes()
            media_type = MEDIA_TYPES.get(path.suffix.lower(), "image/jpeg")
        return self._request("POST", "/jobs", params=params, wait=wait, data=data,
                             headers={**headers, "Content-Type": media_type})

    def get(self, job_id: str, *, wait: float | None = None) -> dict:
        params = {"wait": wait} if wait else {}
        return self._request("GET", f"/jobs/{job_id}", params=params, wait=wait)

    def cancel(self, job_id: str) -> dict:
        return self._request("DELETE", f"/jobs/{job_id}")

    def wait(self, job_id: str, seconds: float) -> dict:
        """The finished job; raises `JobTimeout` if it is not finished in `seconds`."""
        deadline = time.monotonic() + seconds
        job = self.get(job_id)
        while job["status"] not in TERMINAL:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobTimeout(job)
            job = self.get(job_id, wait=min(remaining, 30.0))
        return job

    # --- batches -------------------------------------------------------------------
    def submit_batch(self, images: list[str | Path] | None = None, *,
                     urls: list[str] | None = None, top_k: int | None = None,
                     webhook: str | None = None, idempotency_key: str | None = None) -> dict:
        """A batch of image files (one multipart request, each file an item named by
        its path) or of http(s) URLs (fetched by the workers): the batch as accepted."""
        if (images is None) == (urls is None):
            raise ValueError("submit_batch takes images or urls")
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        options = {k: v for k, v in (("top_k", top_k), ("webhook", webhook)) if v is not None}
        if urls is not None:
            return self._request("POST", "/batches", headers=headers,
                                 json={"urls": list(urls), **options})
        files = []
        for image in images:
            path = Path(image)
            files.append(("image", (str(image), path.read_bytes(),
                                    MEDIA_TYPES.get(path.suffix.lower(), "image/jpeg"))))
        return self._request("POST", "/batches", headers=headers, files=files,
                             data={k: str(v) for k, v in options.items()})

    def batch(self, batch_id: str) -> dict:
        return self._request("GET", f"/batches/{batch_id}")

    def cancel_batch(self, batch_id: str) -> dict:
        return self._request("DELETE", f"/batches/{batch_id}")

    def iter_results(self, batch_id: str, after: int = 0):
        """Each item's result line (a dict) as it ends, from line `after` on, until the
        batch has ended and every line has come; a stream the server ends early (its
        time is up, or the connection broke) is picked up again where it stopped."""
        failures = 0
        while True:
            before = after
            try:
                with self.session.get(f"{self.base_url}/batches/{batch_id}/results",
                                      params={"after": after}, stream=True,
                                      timeout=(self.timeout, None)) as response:
                    if not response.ok:
                        self._json(response)
                    for raw in response.iter_lines():
                        if raw:
                            after += 1
                            failures = 0
                            yield json.loads(raw)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                failures += 1
                if failures > self.retries:
                    raise ServiceUnavailable(
                        0, "connection_failed",
                        f"the results of batch {batch_id} stopped coming") from None
                time.sleep(min(2 ** failures * 0.2, self.max_retry_after))
                continue
            batch = self.batch(batch_id)
            if batch["status"] in BATCH_TERMINAL and after >= batch["total"]:
                return
            if after == before:  # the server had no slot to follow it: ask again shortly
                time.sleep(1.0)

    # --- transport -----------------------------------------------------------------
    def _request(self, method: str, path: str, *, wait: float | None = None, **kwargs) -> dict:
        timeout = self.timeout + (wait or 0)
        for attempt in range(self.retries + 1):
            try:
                response = self.session.request(method, self.base_url + path, timeout=timeout,
                                                **kwargs)
            except requests.ConnectionError as error:
                if attempt == self.retries:
                    raise ServiceUnavailable(0, "connection_failed", str(error)) from None
                time.sleep(min(2 ** attempt * 0.2, self.max_retry_after))
                continue
            if response.status_code in (429, 503) and attempt < self.retries:
                time.sleep(self._retry_after(response, attempt))
                continue
            return self._json(response)
        raise AssertionError("unreachable")

    def _retry_after(self, response: requests.Response, attempt: int) -> float:
        header = response.headers.get("Retry-After", "")
        seconds = float(header) if header.replace(".", "", 1).isdigit() else 2 ** attempt
        return min(max(seconds, 0.0), self.max_retry_after)

    @staticmethod
    def _json(response: requests.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.ok:
            return body
        error = body.get("error", {}) if isinstance(body, dict) else {}
        cls = ServiceUnavailable if response.status_code in (429, 503) else ResqClientError
        raise cls(response.status_code, error.get("code", "http_error"),
                  error.get("message", response.reason))
