"""Name lookups for URL fetches and webhooks that one slow zone cannot starve.

The system resolver (getaddrinfo) has no timeout a caller can set: a lookup that
outlives its request keeps its thread, and names whose DNS answers slowly (which an
attacker arranges) could pin every thread of a shared lookup pool, failing everyone's
URL fetches and webhooks. `DnsResolver` asks the name servers itself (dnspython):

- every lookup has a deadline (its request's), and gives up at it, its socket
  closed: nothing is left behind;
- it runs in the caller's thread (no shared pool), and at most `per_zone` lookups of
  one zone (a name's last two labels) run at once in a process. One more waits for a
  slot within its own deadline (`wait_for_slot`: a web request, whose thread is its
  own), or fails at once with `ZoneBusy` (the workers' webhook dispatchers, which put
  the delivery back for later and go on with others): a tenant's slow zone costs
  that tenant alone;
- addresses written as numbers and names in /etc/hosts are answered without DNS, as
  the system resolver would; the name servers are /etc/resolv.conf's (with its
  search domains), or `DNS_NAMESERVERS`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import dns.exception
import dns.name
import dns.nameserver
import dns.resolver

DEFAULT_TIMEOUT_SECONDS = 5.0
PER_ZONE = 2


class LookupTimedOut(TimeoutError):
    """The name did not resolve by the deadline."""


class ZoneBusy(OSError):
    """As many lookups of this zone as a process allows are under way."""


def hosts_file(path: str = "/etc/hosts") -> dict[str, list[str]]:
    """name -> addresses of a hosts file (empty when there is none)."""
    found: dict[str, list[str]] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split("#", 1)[0].split()
        for name in fields[1:]:
            found.setdefault(name.lower(), []).append(fields[0])
    return found


def zone_of(host: str) -> str:
    return ".".join(host.rstrip(".").lower().split(".")[-2:])


class DnsResolver:
    def __init__(self, nameservers: Iterable[tuple[str, int]] = (), *, per_zone: int = PER_ZONE,
                 default_timeout: float = DEFAULT_TIMEOUT_SECONDS, hosts: str = "/etc/hosts",
                 wait_for_slot: bool = False):
        nameservers = list(nameservers)
        try:
            self._resolver = dns.resolver.Resolver(configure=not nameservers)
        except dns.resolver.NoResolverConfiguration:  # no /etc/resolv.conf: nothing to ask
            self._resolver = dns.resolver.Resolver(configure=False)
        if nameservers:
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)
                                          for host, port in nameservers]
        self._resolver.cache = None  # each lookup asks: the answer is what gets checked
        self.per_zone = per_zone
        self.default_timeout = default_timeout
        self._hosts = hosts_file(hosts)
        self.wait_for_slot = wait_for_slot
        self._busy: Counter = Counter()
        self._freed = threading.Condition()

    def __call__(self, host: str, port: int) -> list[str]:
        """`shared.url_guard.Resolver`: the addresses of `host`, within the default
        deadline."""
        return self.resolve(host, port, self.default_timeout)

    def within(self, seconds: float):
        """A resolver whose lookups give up after `seconds` (the request's deadline)."""
        return lambda host, port: self.resolve(host, port, seconds)

    def resolve(self, host: str, port: int, timeout: float) -> list[str]:
        numeric = _numeric(host, port)
        if numeric is not None:
            return numeric
        if host.lower().rstrip(".") in self._hosts:
            return list(self._hosts[host.lower().rstrip(".")])
        deadline = time.monotonic() + timeout
        addresses: list[str] = []
        with self._slot(zone_of(host), deadline):
            for rdtype in ("A", "AAAA"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LookupTimedOut(f"the name {host!r} did not resolve in time")
                try:
                    answer = self._resolver.resolve(host, rdtype, lifetime=remaining,
                                                    search=True)
                except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer,
                        dns.resolver.NoNameservers, dns.name.LabelTooLong,
                        dns.name.EmptyLabel, dns.name.NameTooLong):
                    continue
                except dns.exception.Timeout:
                    raise LookupTimedOut(f"the name {host!r} did not resolve in time") from None
                addresses += [record.address for record in answer]
        return list(dict.fromkeys(addresses))

    @contextmanager
    def _slot(self, zone: str, deadline: float):
        with self._freed:
            while self._busy[zone] >= self.per_zone:
                remaining = deadline - time.monotonic()
                if not self.wait_for_slot:
                    raise ZoneBusy(f"{self.per_zone} lookups of {zone!r} are under way; "
                                   "retry later")
                if remaining <= 0:
                    raise LookupTimedOut(f"lookups of {zone!r} are all taken; none freed "
                                         "in time")
                self._freed.wait(remaining)
            self._busy[zone] += 1
        try:
            yield
        finally:
            with self._freed:
                self._busy[zone] -= 1
                if not self._busy[zone]:
                    del self._busy[zone]
                self._freed.notify_all()


def _numeric(host: str, port: int) -> list[str] | None:
    """The address a host written as a number names (`127.0.0.1`, `::1`, and the
    legacy spellings `2130706433`, `0x7f.1`), without any lookup; None for a name."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return list(dict.fromkeys(info[4][0] for info in infos))
