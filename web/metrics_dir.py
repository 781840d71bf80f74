"""The directory where gunicorn's processes keep their Prometheus counters
(`METRICS_DIR`): emptied of an earlier run's files at start, and of nothing else.

A directory that holds anything but prometheus-client's own files (`counter_<pid>.db`,
`gauge_all_<pid>.db`, ...) is refused with a message, never emptied: pointing
`METRICS_DIR` at `/tmp` or a home directory must not wipe it.
"""

from __future__ import annotations

import re
from pathlib import Path

PROMETHEUS_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_\d+\.db$")


class ForeignFiles(Exception):
    """The directory holds files that are not prometheus-client's."""


def empty_metrics_dir(path: Path) -> None:
    """Create `path` if needed and remove the counters an earlier run left there;
    raise `ForeignFiles` (touching nothing) if it holds anything else."""
    path.mkdir(parents=True, exist_ok=True)
    entries = list(path.iterdir())
    foreign = sorted(e.name for e in entries
                     if not (e.is_file() and PROMETHEUS_FILE.match(e.name)))
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise ForeignFiles(f"METRICS_DIR {path} holds files that are not resq's metrics "
                           f"({shown}); give the web tier a directory of its own")
    for entry in entries:
        entry.unlink(missing_ok=True)
