"""A real DNS server on loopback (UDP, dnspython's wire format), for the tests of name
lookups: every name resolves to 127.0.0.1 at once, except the names of `slow_zone`,
whose queries it never answers (as a zone whose DNS an attacker makes slow). It
counts the queries of each zone it was asked."""

from __future__ import annotations

import socket
import threading
from collections import Counter

import dns.message
import dns.rdatatype
import dns.rrset

from shared.dns_resolver import zone_of


class DnsServer:
    def __init__(self, slow_zone: str = "slow.test", address: str = "127.0.0.1"):
        self.slow_zone = slow_zone
        self.address = address
        self.queries: Counter = Counter()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="dns")
        self._thread.start()

    @property
    def setting(self) -> str:
        """`DNS_NAMESERVERS` for this server."""
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(wire)
            except Exception:
                continue
            question = query.question[0]
            name = question.name.to_text().rstrip(".")
            self.queries[zone_of(name)] += 1
            if zone_of(name) == self.slow_zone:
                continue  # never answered
            response = dns.message.make_response(query)
            if question.rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A",
                                                           self.address))
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(5)

    def __enter__(self) -> DnsServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
