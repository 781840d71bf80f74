"""URL submissions cannot reach what the web tier can (SSRF, OWASP API7:2023).

Every probe aims at this machine's loopback: traps listen on 127.0.0.1 and ::1
and must receive no connection at all, so nothing leaves the machine even if
the guard fails. The one allowed image server listens on 127.0.0.2, on the same
port as the traps, and is let through by `URL_FETCH_ALLOW_NETWORKS`. Host names
go through a resolver the test controls (a tiny real fake of DNS, which cannot
be run here); numeric hosts go through the system resolver.
"""

import ipaddress

import pytest

from shared.errors import BadUrl
from shared.url_guard import AddressPolicy, resolve
from tests.conftest import make_settings, running_app
from tests.support.http_server import Trap, serve
from tests.support.images import jpeg
from web.services import services

ALLOWED = "127.0.0.2"


class FakeDns:
    """Names to addresses; `rebind.test` answers the allowed server first and a
    trap afterwards, as a DNS-rebinding attacker's name server would."""

    def __init__(self):
        self.calls: list[str] = []
        self.answers = {
            "allowed.test": [ALLOWED],
            "loopback.test": ["127.0.0.1"],
            "mixed.test": [ALLOWED, "127.0.0.1"],
            "v6mapped.test": ["::ffff:127.0.0.1"],
            "v6loopback.test": ["::1"],
        }

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host == "rebind.test":
            return [ALLOWED] if self.calls.count(host) == 1 else ["127.0.0.1"]
        if host in self.answers:
            return self.answers[host]
        if host.endswith(".test"):
            return []
        return resolve(host, port)


@pytest.fixture()
def guarded(redis_url):
    trap4 = Trap("127.0.0.1")
    trap6 = Trap("::1", trap4.port)
    port = trap4.port
    image = jpeg()
    routes = {
        "/cat.jpg": (200, "image/jpeg", image),
        "/to-cat": (302, "text/plain", f"http://{ALLOWED}:{port}/cat.jpg".encode()),
    }
    for name, target in {
        "loopback": f"http://127.0.0.1:{port}/cat.jpg",
        "localhost": f"http://localhost:{port}/cat.jpg",
        "named": f"http://loopback.test:{port}/cat.jpg",
        "v6": f"http://[::1]:{port}/cat.jpg",
        "decimal": f"http://2130706433:{port}/cat.jpg",
        "gopher": f"gopher://127.0.0.1:{port}/_",
        "relative-host": f"//127.0.0.1:{port}/cat.jpg",
    }.items():
        routes[f"/redirect-{name}"] = (302, "text/plain", target.encode())
    settings = make_settings(redis_url, queue_name="ssrf-idle",
                             url_fetch_allow_networks=f"{ALLOWED}/32")
    with serve(routes, host=ALLOWED, port=port) as (base, requested), \
            running_app(settings) as app:
        resolver = FakeDns()
        services(app).intake.fetcher.resolver = resolver
        yield app.test_client(), port, requested, (trap4, trap6)
    trap4.close()
    trap6.close()


def probes(port: int) -> list[str]:
    a = ALLOWED
    return [
        f"http://127.0.0.1:{port}/cat.jpg",
        f"http://localhost:{port}/cat.jpg",
        f"http://localhost.:{port}/cat.jpg",
        f"http://2130706433:{port}/cat.jpg",          # decimal
        f"http://0x7f000001:{port}/cat.jpg",          # hex
        f"http://0177.0.0.1:{port}/cat.jpg",          # octal
        f"http://0x7f.0.0.1:{port}/cat.jpg",          # mixed
        f"http://127.1:{port}/cat.jpg",               # short form
        f"http://0:{port}/cat.jpg",                   # 0.0.0.0 reaches loopback
        f"http://0.0.0.0:{port}/cat.jpg",
        f"http://[::1]:{port}/cat.jpg",
        f"http://[::]:{port}/cat.jpg",
        f"http://[::ffff:127.0.0.1]:{port}/cat.jpg",  # IPv4-mapped
        f"http://[::ffff:7f00:1]:{port}/cat.jpg",
        f"http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/cat.jpg",
        f"http://loopback.test:{port}/cat.jpg",       # a name that resolves to loopback
        f"http://mixed.test:{port}/cat.jpg",          # one good address, one loopback
        f"http://v6mapped.test:{port}/cat.jpg",
        f"http://v6loopback.test:{port}/cat.jpg",
        f"http://allowed.test@127.0.0.1:{port}/cat.jpg",  # user info is not the host
        f"http://127.0.0.1:{port}#@{a}:{port}/cat.jpg",
        f"HTTP://127.0.0.1:{port}/cat.jpg",
        f"http://{a}:{port}/redirect-loopback",       # redirects to the traps
        f"http://{a}:{port}/redirect-localhost",
        f"http://{a}:{port}/redirect-named",
        f"http://{a}:{port}/redirect-v6",
        f"http://{a}:{port}/redirect-decimal",
        f"http://{a}:{port}/redirect-gopher",
        f"http://{a}:{port}/redirect-relative-host",
        f"gopher://127.0.0.1:{port}/_",
        f"dict://127.0.0.1:{port}/info",
        f"ftp://127.0.0.1:{port}/cat.jpg",
        "file:///etc/passwd",
        "http://nowhere.test/cat.jpg",                # does not resolve
    ]


def test_no_probe_reaches_a_listener(guarded):
    client, port, requested, traps = guarded
    refused = {}
    for url in probes(port):
        response = client.post("/jobs", json={"url": url})
        refused[url] = (response.status_code, (response.get_json().get("error") or {}).get("code"))
    reached = [peer for trap in traps for peer in trap.connections]
    print(f"{len(refused)} SSRF probes; trap connections: {len(reached)}; "
          f"refused: {sum(code == 'bad_url' for _, code in refused.values())}")
    assert len(refused) >= 15
    assert all(status == 400 and code == "bad_url" for status, code in refused.values()), refused
    assert reached == []
    # Only the allowed server saw the redirect probes, and nothing past them.
    assert all(path.startswith("/redirect-") for path in requested)


def test_an_allowed_address_is_fetched_and_its_redirects_followed(guarded):
    client, port, requested, traps = guarded
    response = client.post("/jobs", json={"url": f"http://{ALLOWED}:{port}/to-cat"})
    assert response.status_code == 202, response.get_json()
    assert requested == ["/to-cat", "/cat.jpg"]


def test_a_rebinding_name_is_connected_to_at_the_address_that_was_checked(guarded):
    client, port, requested, traps = guarded
    response = client.post("/jobs", json={"url": f"http://rebind.test:{port}/cat.jpg"})
    # Resolved once (to the allowed server); a second lookup would have named a trap.
    assert response.status_code == 202, response.get_json()
    assert requested == ["/cat.jpg"]
    assert [peer for trap in traps for peer in trap.connections] == []


@pytest.mark.parametrize("address", [
    "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "192.0.0.1",
    "198.18.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255", "0.0.0.0", "127.0.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12::1", "ff02::1", "2001:db8::1",
    "::ffff:10.0.0.1", "::ffff:169.254.169.254", "2002:a9fe:a9fe::1", "64:ff9b::a00:1",
    "64:ff9b:1::1",
    # IPv4-compatible and IPv4-translated forms of loopback and private addresses, and
    # site-local: each used to pass. (Checked as values only: a probe at them would
    # leave the machine if the guard failed.)
    "::7f00:1", "::127.0.0.1", "::a00:1", "::ffff:0:7f00:1", "::ffff:0:127.0.0.1",
    "::ffff:0:a00:1", "fec0::1", "fef0::1",
])
def test_non_public_addresses_are_refused(address):
    """The policy alone, on address values: no connection is made."""
    assert not AddressPolicy().allows(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111",
                                     "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address):
    assert AddressPolicy().allows(ipaddress.ip_address(address))


def test_named_private_networks_can_be_allowed():
    policy = AddressPolicy([ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd00::/8")])
    assert policy.allows(ipaddress.ip_address("10.20.3.4"))
    assert policy.allows(ipaddress.ip_address("::ffff:10.20.3.4"))
    assert policy.allows(ipaddress.ip_address("fd00::5"))
    assert not policy.allows(ipaddress.ip_address("10.21.0.1"))
    assert not policy.allows(ipaddress.ip_address("127.0.0.1"))


def test_only_web_ports_are_reached_unless_widened():
    """A public host's other services (its SSH, its database, its admin port) are out
    of reach: 80 and 443 only, unless URL_FETCH_ALLOW_PORTS widens them. The port
    is refused before any lookup or connection."""
    public = AddressPolicy()
    lookups = []

    def dns(host, port):
        lookups.append(host)
        return ["8.8.8.8"]

    for port in (80, 443):
        assert public.checked_address("example.test", port, dns) == "8.8.8.8"
    for port in (22, 6379, 8080, 8443):
        with pytest.raises(BadUrl, match=f"port {port}"):
            public.checked_address("example.test", port, dns)
    assert lookups == ["example.test", "example.test"]
    assert AddressPolicy(allow_ports=(8080,)).checked_address("example.test", 8080, dns)
    assert AddressPolicy(allow_ports=None).checked_address("example.test", 6379, dns)


def test_a_url_on_another_port_is_refused_without_a_connection(redis_url):
    settings = make_settings(redis_url, queue_name="ssrf-ports",
                             url_fetch_allow_networks=f"{ALLOWED}/32",
                             url_fetch_allow_ports="80,443")
    with serve({"/cat.jpg": (200, "image/jpeg", jpeg())}, host=ALLOWED) as (base, requested), \
            running_app(settings) as app:
        response = app.test_client().post("/jobs", json={"url": f"{base}/cat.jpg"})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_url"
    assert "port" in response.get_json()["error"]["message"] and requested == []
