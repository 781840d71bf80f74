"""The web tier exports its CPU and memory (finding 8 of the hardening issue):
prometheus_client's multiprocess mode exports no `process_*` metrics, so the seed's
CPU and memory alerts covered workers only. Real gunicorn (a master and two
workers); the figures are checked against /proc read here."""

import os
import signal
import uuid
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.stack import await_condition, start_gunicorn

pytestmark = pytest.mark.processes


def scrape(base: str) -> dict:
    text = requests.get(f"{base}/metrics", timeout=10).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if not s.labels}


def group(master: int) -> list[int]:
    pids = [master]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == master:
                pids.append(int(entry.name))
    return pids


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_cpu_and_memory_of_the_whole_web_tier(redis_url, tmp_path):
    proc, base = start_gunicorn(redis_url, f"idle-{uuid.uuid4().hex[:8]}", tmp_path / "web.log")
    first = scrape(base)
    pids = group(proc.pid)
    measured = sum(rss(pid) for pid in pids)
    assert len(pids) == 3  # the master and WEB_WORKERS=2
    print(f"\nweb tier: {first['process_resident_memory_bytes'] / 2**20:.0f} MiB exported, "
          f"{measured / 2**20:.0f} MiB summed from /proc over {len(pids)} processes")
    assert abs(first["process_resident_memory_bytes"] - measured) < 0.2 * measured
    assert first["resq_cpu_cores"] >= 1 and first["resq_memory_limit_bytes"] > measured
    started = os.stat(f"/proc/{proc.pid}").st_ctime
    assert abs(first["process_start_time_seconds"] - started) < 5

    for _ in range(200):
        requests.get(f"{base}/readyz", timeout=10)
    busy = scrape(base)["process_cpu_seconds_total"]
    assert busy > first["process_cpu_seconds_total"]

    # gunicorn replaces a killed worker: the counter keeps the dead one's CPU.
    os.kill(pids[1], signal.SIGKILL)
    await_condition(lambda: len(group(proc.pid)) == 3 and set(group(proc.pid)) - set(pids),
                    30, "a replacement web worker")
    await_condition(lambda: requests.get(f"{base}/healthz", timeout=5).ok, 30, "web")
    after = scrape(base)["process_cpu_seconds_total"]
    assert after >= busy, (busy, after)
    proc.stop()
