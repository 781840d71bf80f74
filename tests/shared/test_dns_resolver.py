"""Name lookups against a real DNS server on loopback whose one zone never answers:
a lookup gives up at its deadline, leaving nothing behind; lookups of other zones go
on meanwhile; one zone holds at most `per_zone` lookups of a process at once (one
more fails at once). Numbers and /etc/hosts names need no DNS."""

import threading
import time

import pytest

from shared.dns_resolver import DnsResolver, LookupTimedOut, ZoneBusy
from shared.pinned_http import Deadline, DeadlineExceeded, within
from tests.support.dns_server import DnsServer


@pytest.fixture()
def server():
    with DnsServer() as made:
        yield made


def test_a_lookup_gives_up_at_its_deadline_and_leaves_nothing_behind(server):
    resolver = DnsResolver([("127.0.0.1", server.port)])
    with pytest.raises(LookupTimedOut):
        resolver.resolve("a.slow.test", 443, 0.3)
    assert not resolver._busy  # its slot is free again: nothing runs on after it
    assert resolver.resolve("a.fast.test", 443, 2) == ["127.0.0.1"]
    assert server.queries["slow.test"] >= 1


def test_a_slow_zone_costs_other_zones_nothing(server):
    """The old shared pool (8 threads, lookups without a deadline) was pinned by eight
    slow lookups, after which every other lookup timed out too: shown here with a
    resolver that has no deadline of its own, as the system's has none. resq's own
    resolver answers another zone at once while the slow ones wait."""
    patient = DnsResolver([("127.0.0.1", server.port)], per_zone=100)

    def without_deadline(host, port):  # as getaddrinfo: no deadline a caller can set
        return patient.resolve(host, port, 3)

    pinned = [threading.Thread(target=lambda n=n: _quietly(
        within(Deadline(0.2), without_deadline), f"h{n}.slow.test"), daemon=True)
        for n in range(8)]
    for thread in pinned:
        thread.start()
    for thread in pinned:
        thread.join()  # each gave up at its deadline, and left its lookup in the pool
    with pytest.raises(DeadlineExceeded):  # the pool is full: a fast zone fails too
        within(Deadline(0.5), without_deadline)("a.fast.test", 443)

    ours = DnsResolver([("127.0.0.1", server.port)], per_zone=100)
    slow = [threading.Thread(target=_quietly, args=(ours.within(2), f"s{n}.slow.test"),
                             daemon=True) for n in range(20)]
    for thread in slow:
        thread.start()
    assert within(Deadline(2), ours)("a.fast.test", 443) == ["127.0.0.1"]
    assert any(thread.is_alive() for thread in slow)  # answered while those still wait
    for thread in slow:
        thread.join()


def test_one_zone_holds_at_most_its_share_of_lookups(server):
    """A webhook dispatcher's resolver fails at once past the share (the delivery is
    put back); a web request's waits for a slot within its own deadline."""
    resolver = DnsResolver([("127.0.0.1", server.port)], per_zone=2)
    waiting = DnsResolver([("127.0.0.1", server.port)], per_zone=2, wait_for_slot=True)
    started = [threading.Thread(target=_quietly, args=(resolver.within(1), f"x{n}.slow.test"),
                                daemon=True) for n in range(2)]
    for thread in started:
        thread.start()
    while sum(resolver._busy.values()) < 2:  # both in flight: awaited, not slept on
        time.sleep(0.01)
    with pytest.raises(ZoneBusy):
        resolver.resolve("x3.slow.test", 443, 1)
    assert resolver.resolve("y.other.test", 443, 1) == ["127.0.0.1"]
    for thread in started:
        thread.join()
    assert not resolver._busy  # every slot given back
    # Waiting: a third lookup of the zone takes the slot the first two free.
    held = [threading.Thread(target=_quietly, args=(waiting.within(0.5), f"w{n}.slow.test"),
                             daemon=True) for n in range(2)]
    for thread in held:
        thread.start()
    while sum(waiting._busy.values()) < 2:
        time.sleep(0.01)
    with pytest.raises(LookupTimedOut):  # its slot came, and then its own deadline
        waiting.resolve("w3.slow.test", 443, 1.5)
    assert server.queries["slow.test"] >= 5  # it was asked: it got a slot in time


def test_numbers_and_hosts_file_names_need_no_dns(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("10.1.2.3 internal.example internal\n# 10.9.9.9 commented.example\n")
    resolver = DnsResolver([("127.0.0.1", 9)], hosts=str(hosts))  # a port nothing serves
    assert resolver.resolve("2130706433", 80, 1) == ["127.0.0.1"]
    assert resolver.resolve("::1", 80, 1) == ["::1"]
    assert resolver.resolve("internal.example", 80, 1) == ["10.1.2.3"]
    with pytest.raises(LookupTimedOut):
        resolver.resolve("commented.example", 80, 0.3)


def _quietly(lookup, host: str) -> None:
    try:
        lookup(host, 443)
    except (LookupTimedOut, DeadlineExceeded, ZoneBusy):
        pass
