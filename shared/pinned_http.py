"""One HTTP request to an address that the SSRF guard (`shared.url_guard`) has
checked: the host is resolved once, every address it resolves to must be allowed,
and the connection goes to the checked address itself (TLS still verifies the
certificate against the host name), so a DNS answer that changes in between
cannot redirect it. Used by the web tier to fetch image URLs and by the workers
to deliver webhooks.

The request has one deadline for the whole of it, enforced on the socket: the
name lookup runs against it, every socket operation times out at what is left of
it, and at the deadline a watchdog shuts the connection down, so a server that
trickles its handshake, its headers or its body one byte at a time is cut off
when the deadline passes, not when it stops sending (a read timeout restarts with
every byte it receives).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

import certifi
from urllib3.connection import HTTPConnection, HTTPSConnection

from shared.api_models import MAX_URL_LENGTH
from shared.errors import BadUrl
from shared.url_guard import AddressPolicy, Resolver

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


class Deadline:
    """A point in time by which a whole request must be done."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


class DeadlineExceeded(Exception):
    """The request's deadline passed (in the lookup, or before a step began)."""


# A resolver with no deadline of its own (the system's, a test's) runs in this small
# pool, and the request stops waiting for it at its deadline. resq's own resolver
# (`shared.dns_resolver.DnsResolver`) gives up at the deadline itself, in the
# request's thread, and never uses the pool.
_LOOKUPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns")


def within(deadline: Deadline, resolver: Resolver) -> Resolver:
    """`resolver`, giving up at `deadline`."""
    if hasattr(resolver, "within"):
        return resolver.within(max(0.0, deadline.remaining()))

    def lookup(host: str, port: int) -> list[str]:
        future = _LOOKUPS.submit(resolver, host, port)
        try:
            return future.result(timeout=max(0.0, deadline.remaining()))
        except FutureTimeout:
            raise DeadlineExceeded(f"the name {host!r} did not resolve in time") from None
    return lookup


class _Watched:
    """Keeps the TCP socket the connection makes (TLS is layered on it), so that a
    watchdog can shut it down whatever phase the request is in."""

    raw_sock: socket.socket | None = None

    def _new_conn(self):
        self.raw_sock = super()._new_conn()
        return self.raw_sock


class _WatchedHTTP(_Watched, HTTPConnection):
    pass


class _WatchedHTTPS(_Watched, HTTPSConnection):
    pass


class Exchange:
    """An open request: its response, and `close()` (which also stops the watchdog)."""

    def __init__(self, conn, deadline: Deadline):
        self.conn = conn
        self.deadline = deadline
        self.cut = False  # the watchdog shut the connection at the deadline
        self._done = threading.Event()
        threading.Thread(target=self._watch, name="deadline", daemon=True).start()

    def _watch(self) -> None:
        if self._done.wait(max(0.0, self.deadline.remaining())):
            return
        self.cut = True
        while not self._done.is_set():  # until the request gives up, whatever its phase
            sock = self.conn.raw_sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._done.wait(0.05)

    def close(self) -> None:
        self._done.set()
        self.conn.close()


def check_plain_http(address: str, networks: tuple) -> None:
    """A webhook over plain http goes only to the networks named for it."""
    if not any(ipaddress.ip_address(address) in network for network in networks):
        raise BadUrl("webhooks go over https; plain http only to WEBHOOK_HTTP_NETWORKS")


def pinned_request(method: str, url: str, *, policy: AddressPolicy, resolver: Resolver,
                   deadline: Deadline, headers: dict, body: bytes | None = None,
                   plain_http_networks: tuple | None = None):
    """Send one request (no redirects followed, no retries) to the checked address of
    `url`'s host, all of it within `deadline`. Returns (response, exchange); the
    caller reads the response as a stream and closes the exchange. Raises `BadUrl`
    for a URL or address the policy refuses, `DeadlineExceeded` when the lookup
    outlasts the deadline, and urllib3's and the socket's errors for network
    failures (a cut at the deadline among them: see `Exchange.cut`). With
    `plain_http_networks` (webhooks), an http:// URL is refused unless its address is
    in one of them."""
    scheme, host, port, target = url_parts(url)
    if deadline.expired():
        raise DeadlineExceeded("the deadline passed before the request began")
    address = policy.checked_address(host, port, within(deadline, resolver))
    if scheme == "http" and plain_http_networks is not None:
        check_plain_http(address, plain_http_networks)
    timeout = max(0.001, deadline.remaining())
    if scheme == "https":
        conn = _WatchedHTTPS(address, port, timeout=timeout, server_hostname=host,
                             assert_hostname=host, cert_reqs="CERT_REQUIRED",
                             ca_certs=certifi.where())
    else:
        conn = _WatchedHTTP(address, port, timeout=timeout)
    exchange = Exchange(conn, deadline)
    host_header = f"[{host}]" if ":" in host else host
    if port != DEFAULT_PORTS[scheme]:
        host_header += f":{port}"
    try:
        conn.request(method, target, body=body, preload_content=False, decode_content=False,
                     headers={"Host": host_header, **headers})
        response = conn.getresponse()
    except Exception:
        exchange.close()
        raise
    return response, exchange
