"""One HTTP request to an address that the SSRF guard (`shared.url_guard`) has
checked: the host is resolved once, every address it resolves to must be allowed,
and the connection goes to the checked address itself (TLS still verifies the
certificate against the host name), so a DNS answer that changes in between
cannot redirect it. Used by the web tier to fetch image URLs and by the workers
to deliver webhooks."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import certifi
import urllib3

from shared.errors import BadUrl
from shared.url_guard import AddressPolicy, Resolver

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}


def url_parts(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL, or `BadUrl`."""
    if len(url) > MAX_URL_LENGTH:
        raise BadUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise BadUrl("the URL cannot be parsed") from None
    if parts.scheme not in DEFAULT_PORTS or not host:
        raise BadUrl("only http and https URLs with a host are accepted")
    if any(ch in url for ch in "\r\n\t "):
        raise BadUrl("the URL contains whitespace or control characters")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, canonical_host(host), port or DEFAULT_PORTS[parts.scheme], target


def canonical_host(host: str) -> str:
    """The host as it is resolved: IP literals in their plain form, names as given."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.rstrip(".") or host


def pinned_request(method: str, url: str, *, policy: AddressPolicy, resolver: Resolver,
                   timeout: urllib3.Timeout, headers: dict, body: bytes | None = None):
    """Send one request (no redirects followed, no retries) to the checked address of
    `url`'s host. Returns (response, pool); the caller reads the response with
    `preload_content=False` semantics and closes both. Raises `BadUrl` for a URL or
    address the policy refuses, and urllib3's errors for network failures."""
    scheme, host, port, target = url_parts(url)
    address = policy.checked_address(host, port, resolver)
    if scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address, port, timeout=timeout, retries=False, maxsize=1,
            server_hostname=host, assert_hostname=host,
            cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False,
                                          maxsize=1)
    host_header = f"[{host}]" if ":" in host else host
    if port != DEFAULT_PORTS[scheme]:
        host_header += f":{port}"
    try:
        response = pool.urlopen(method, target, body=body, redirect=False, retries=False,
                                preload_content=False, decode_content=False,
                                assert_same_host=False, headers={"Host": host_header, **headers})
    except Exception:
        pool.close()
        raise
    return response, pool
