"""What this process may use: CPU cores (the CPU affinity, further limited by the
cgroup's CPU quota where there is one: a Kubernetes CPU limit, `docker --cpus`) and
memory (the cgroup's limit, else the machine's), and the collector that exports
both as `resq_cpu_cores` and `resq_memory_limit_bytes` (web and worker alike)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """Cores allowed by the cgroup quota (v2 `cpu.max`, else v1 CFS files); None
    when unlimited or unknown."""
    v2 = root / "cpu.max"
    try:
        quota, period = v2.read_text().split()[:2]
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def usable_cores(root: Path = CGROUP_ROOT) -> int:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        affinity = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is None:
        return affinity
    return max(1, min(affinity, math.floor(limit)))


def memory_limit_bytes() -> int:
    """The cgroup's memory limit, else the machine's memory."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class CapacityCollector(Collector):
    """`resq_cpu_cores` and `resq_memory_limit_bytes` of this process (its pod)."""

    def collect(self):
        cores = GaugeMetricFamily("resq_cpu_cores",
                                  "Cores this process may use (CPU affinity and cgroup quota)")
        cores.add_metric([], usable_cores())
        memory = GaugeMetricFamily("resq_memory_limit_bytes",
                                   "Memory this process may use (cgroup limit, else the machine's)")
        memory.add_metric([], memory_limit_bytes())
        yield cores
        yield memory
