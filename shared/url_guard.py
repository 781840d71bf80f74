"""Which addresses a URL submission may make the web tier connect to (SSRF,
OWASP API7:2023).

A URL's host is resolved once (`resolve`), every address it resolves to is
checked, and the fetch then connects to the checked address itself, so a DNS
answer that changes between the check and the connection (DNS rebinding) cannot
redirect it. Only globally routable unicast addresses pass, plus the networks an
operator names in `URL_FETCH_ALLOW_NETWORKS`. Addresses that carry an IPv4
address inside an IPv6 one (IPv4-mapped, 6to4, NAT64) are judged by the IPv4
address they carry, and so do the deprecated IPv4-compatible (`::a.b.c.d`) and
IPv4-translated (`::ffff:0:a.b.c.d`) forms; site-local `fec0::/10` is refused.
Only the ports in `URL_FETCH_ALLOW_PORTS` (80 and 443 by default) are reached, so
a public host's other services are out of reach too. Numeric spellings of a host
(`2130706433`, `0x7f.1`, `0177.0.0.1`) need no special case: the resolver turns them
into the address they name, and the address is what is checked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

from shared.errors import BadUrl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d (deprecated)
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (SIIT)
WEB_PORTS = (80, 443)
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the system resolver)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, compatible, translated,
    6to4, NAT64), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if any(address in net for net in (NAT64_PREFIX, IPV4_COMPATIBLE, IPV4_TRANSLATED)):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


class AddressPolicy:
    def __init__(self, allow_networks: Iterable[IPNetwork] = (),
                 allow_ports: Iterable[int] | None = WEB_PORTS):
        """`allow_ports` None: any port."""
        self.allow_networks = tuple(allow_networks)
        self.allow_ports = None if allow_ports is None else frozenset(allow_ports)

    def allows(self, address: IPAddress) -> bool:
        inner = embedded_ipv4(address)
        if any(candidate in network for network in self.allow_networks
               for candidate in {address, inner} if candidate.version == network.version):
            return True
        if address in NAT64_LOCAL:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
            return False
        return all(candidate.is_global and not candidate.is_multicast
                   for candidate in {address, inner})

    def checked_address(self, host: str, port: int, resolver: Resolver) -> str:
        """The address to connect to for `host`; raises `BadUrl` when the host does
        not resolve, when any address it resolves to is not allowed, or when the
        port is not allowed."""
        if self.allow_ports is not None and port not in self.allow_ports:
            ports = ", ".join(map(str, sorted(self.allow_ports)))
            raise BadUrl(f"the URL's port {port} is not one resq connects to ({ports}; "
                         "URL_FETCH_ALLOW_PORTS)")
        found = resolver(host, port)
        if not found:
            raise BadUrl(f"the URL's host {host!r} does not resolve")
        addresses = []
        for text in found:
            try:
                addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
            except ValueError:
                raise BadUrl(f"the URL's host {host!r} resolves to a bad address") from None
        refused = [a for a in addresses if not self.allows(a)]
        if refused:
            raise BadUrl(f"the URL's host {host!r} is a private, loopback or otherwise "
                         "non-public address; resq does not fetch from those")
        return str(addresses[0])
