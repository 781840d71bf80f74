"""Fetches an image named by URL: http(s) only, a time limit for the whole fetch
and a byte cap, so a slow or endless server costs a bounded amount.
(The SSRF guard on addresses is a later layer.)"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import requests

from shared.errors import BadUrl, PayloadTooLarge, UrlFetchFailed

MAX_REDIRECTS = 3
MAX_URL_LENGTH = 2048
CHUNK = 64 * 1024


class UrlFetcher:
    def __init__(self, *, max_bytes: int, timeout_seconds: float):
        self.max_bytes = max_bytes
        self.timeout = timeout_seconds

    def fetch(self, url: str) -> bytes:
        if len(url) > MAX_URL_LENGTH:
            raise BadUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            raise BadUrl("the URL cannot be parsed") from None
        if parts.scheme not in ("http", "https") or not host:
            raise BadUrl("only http and https URLs with a host are accepted")
        deadline = time.monotonic() + self.timeout
        session = requests.Session()
        session.max_redirects = MAX_REDIRECTS
        session.trust_env = False
        try:
            with session.get(url, stream=True, timeout=(min(self.timeout, 5.0), self.timeout),
                             headers={"Accept": "image/*"}) as response:
                if response.status_code != 200:
                    raise UrlFetchFailed(f"the URL answered HTTP {response.status_code}")
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise PayloadTooLarge(f"the image at the URL is over {self.max_bytes} bytes")
                return self._read_capped(response, deadline)
        except requests.TooManyRedirects:
            raise UrlFetchFailed(f"more than {MAX_REDIRECTS} redirects") from None
        except requests.Timeout:
            raise UrlFetchFailed(f"the URL did not answer within {self.timeout:g} s") from None
        except requests.RequestException as error:
            raise UrlFetchFailed(f"the URL could not be fetched: {type(error).__name__}") from None
        finally:
            session.close()

    def _read_capped(self, response: requests.Response, deadline: float) -> bytes:
        body = bytearray()
        for chunk in response.iter_content(CHUNK):
            body.extend(chunk)
            if len(body) > self.max_bytes:
                raise PayloadTooLarge(f"the image at the URL is over {self.max_bytes} bytes")
            if time.monotonic() > deadline:
                raise UrlFetchFailed(f"the URL did not send the image within {self.timeout:g} s")
        return bytes(body)
