"""CPU and memory of the web tier, for the same alerts and panels as the workers'.

Under gunicorn the web tier is a process group: the master and its worker
processes. prometheus_client's multiprocess mode exports no `process_*` metrics at
all, and one process's own figures would say little about its pod, so this
collector reads `/proc` for the whole group whichever worker serves the scrape:

- `process_cpu_seconds_total`: CPU of the master, of its live workers, and of the
  workers it has reaped (the kernel keeps those in the master's `cutime`/`cstime`),
  so the counter does not fall when gunicorn replaces a worker;
- `process_resident_memory_bytes`: the sum of their resident sets (pages shared
  since the fork are counted in each: an upper bound of the pod's usage);
- `process_start_time_seconds`: the master's start;

together with `resq_cpu_cores` and `resq_memory_limit_bytes` of the pod.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int, proc: Path) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state on (field 3), or None if gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # the name may hold spaces and parentheses


def _children(parent: int, proc: Path) -> list[int]:
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name), proc)
            if fields is not None and int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def _boot_time(proc: Path) -> float:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


class ProcessGroupCollector(Collector):
    """`process_*` metrics of the process `root()` names and its children."""

    def __init__(self, root=os.getppid, proc: Path = PROC):
        self.root = root
        self.proc = proc

    def collect(self):
        root = self.root()
        master = _stat_fields(root, self.proc)
        if master is None:
            return
        # Offsets in the fields from the state on: ppid 1, utime 11, stime 12,
        # cutime 13, cstime 14, starttime 19, rss 21 (proc(5) numbers them 3 on).
        ticks = sum(int(master[i]) for i in (11, 12, 13, 14))
        rss = int(master[21])
        for child in _children(root, self.proc):
            fields = _stat_fields(child, self.proc)
            if fields is not None:
                ticks += int(fields[11]) + int(fields[12])
                rss += int(fields[21])
        cpu = CounterMetricFamily("process_cpu_seconds_total",
                                  "CPU seconds of the web tier's process group (gunicorn's "
                                  "master and its workers, reaped workers included)")
        cpu.add_metric([], ticks / _TICKS)
        memory = GaugeMetricFamily("process_resident_memory_bytes",
                                   "Resident memory of the web tier's process group, summed")
        memory.add_metric([], rss * _PAGE)
        started = GaugeMetricFamily("process_start_time_seconds",
                                    "Start of the web tier's gunicorn master, in Unix time")
        started.add_metric([], _boot_time(self.proc) + int(master[19]) / _TICKS)
        yield cpu
        yield memory
        yield started
