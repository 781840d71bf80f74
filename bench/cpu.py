"""CPU seconds the service's processes spend (web tier, worker, Redis), read from
their counters: what a job costs outside decode and the model is the difference
between this per job and the pipeline's own CPU per image."""

from __future__ import annotations

import psutil


class ServiceCpu:
    def __init__(self, *pids: int):
        self.pids = pids

    def seconds(self) -> float:
        """CPU seconds so far of the processes and all their children."""
        total = 0.0
        for pid in self.pids:
            try:
                root = psutil.Process(pid)
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in processes:
                try:
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system
        return total
