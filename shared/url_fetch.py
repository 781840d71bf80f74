"""Fetches an image named by URL, closed to SSRF: http(s) only; the host resolved
once and every address checked (`shared.url_guard`, `shared.pinned_http`); the
connection made to the checked address (TLS still verifies the certificate against
the host name); every redirect checked the same way; the bytes and the content type
capped or checked, the whole fetch (lookups, redirects, headers, body) held to one
deadline on the socket, and no content encoding, so a compressed bomb never inflates.
"""

from __future__ import annotations

from http.client import HTTPException
from urllib.parse import urljoin

import urllib3
from urllib3.exceptions import HTTPError

from shared.errors import PayloadTooLarge, UrlFetchFailed
from shared.pinned_http import Deadline, DeadlineExceeded, pinned_request
from shared.url_guard import AddressPolicy, Resolver, resolve

MAX_REDIRECTS = 3
CHUNK = 64 * 1024
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
ACCEPTED_CONTENT_TYPES = ("image/", "application/octet-stream")


class UrlFetcher:
    def __init__(self, *, max_bytes: int, timeout_seconds: float,
                 policy: AddressPolicy | None = None, resolver: Resolver = resolve):
        self.max_bytes = max_bytes
        self.timeout = timeout_seconds
        self.policy = policy or AddressPolicy()
        self.resolver = resolver

    def fetch(self, url: str) -> bytes:
        """The image at `url`, all of it (lookups, connections, redirects, headers
        and body) within `URL_FETCH_TIMEOUT_SECONDS`."""
        deadline = Deadline(self.timeout)
        for _ in range(MAX_REDIRECTS + 1):
            response, exchange = self._open(url, deadline)
            try:
                if response.status in REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise UrlFetchFailed("the URL redirects without a Location")
                    url = urljoin(url, location)  # checked like the first on the next turn
                    continue
                return self._body(response, deadline)
            except (HTTPError, HTTPException, OSError) as error:
                raise self._failure(error, deadline) from None
            finally:
                exchange.close()
        raise UrlFetchFailed(f"more than {MAX_REDIRECTS} redirects")

    # --- one request, to a checked address ------------------------------------------
    def _open(self, url: str, deadline: Deadline):
        try:
            return pinned_request(
                "GET", url, policy=self.policy, resolver=self.resolver, deadline=deadline,
                headers={"Accept": "image/*", "Accept-Encoding": "identity",
                         "User-Agent": "resq-url-fetch"})
        except (HTTPError, HTTPException, OSError, DeadlineExceeded) as error:
            raise self._failure(error, deadline) from None

    # --- the body ---------------------------------------------------------------------
    def _body(self, response, deadline: float) -> bytes:
        if response.status != 200:
            raise UrlFetchFailed(f"the URL answered HTTP {response.status}")
        content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type and not content_type.startswith(ACCEPTED_CONTENT_TYPES):
            raise UrlFetchFailed(f"the URL served {content_type}, not an image")
        encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise UrlFetchFailed(f"the URL served a {encoding}-encoded body; resq fetches "
                                 "images without content encoding")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise PayloadTooLarge(f"the image at the URL is over {self.max_bytes} bytes")
        body = bytearray()
        for chunk in response.stream(CHUNK, decode_content=False):
            body.extend(chunk)
            if len(body) > self.max_bytes:
                raise PayloadTooLarge(f"the image at the URL is over {self.max_bytes} bytes")
            if deadline.expired():
                raise UrlFetchFailed(f"the URL did not send the image within {self.timeout:g} s")
        return bytes(body)

    def _failure(self, error: Exception, deadline: Deadline) -> UrlFetchFailed:
        if deadline.expired() or isinstance(error, (DeadlineExceeded, TimeoutError,
                                                    urllib3.exceptions.TimeoutError)):
            return UrlFetchFailed(f"the URL did not send the image within {self.timeout:g} s")
        return UrlFetchFailed(f"the URL could not be fetched: {type(error).__name__}")
