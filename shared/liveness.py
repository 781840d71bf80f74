"""A liveness probe for where there is no kubelet: `make run` and compose.

    python -m shared.liveness URL                   one check: exit 0 if URL answers 2xx
    python -m shared.liveness URL --watch PID       SIGKILL PID after FAILURES failed
        [--period SECONDS] [--failures N]           checks in a row (a kubelet's
                                                    failureThreshold); ends with PID

The watch counts failures only once the endpoint has answered (a worker serves
`/healthz` from before its model is loaded, so the time until then is start-up,
which a startup probe would cover), and leaves restarting to whoever started PID
(`make run`'s supervisor restarts the worker it kills).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import urllib.error
import urllib.request


def healthy(url: str, timeout: float = 5.0) -> bool | None:
    """True for a 2xx answer, False for another answer, None for no answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except urllib.error.HTTPError:
        return False
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch(url: str, pid: int, period: float, failures: int) -> int:
    answered, failed = False, 0
    while _alive(pid):
        state = healthy(url)
        answered = answered or state is not None
        failed = failed + 1 if (state is False or (state is None and answered)) else 0
        if failed >= failures:
            print(f"resq: {url} failed {failed} checks in a row; killing process {pid}",
                  file=sys.stderr, flush=True)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return 1
        time.sleep(period)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.liveness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--watch", type=int, metavar="PID")
    parser.add_argument("--period", type=float, default=10.0)
    parser.add_argument("--failures", type=int, default=3)
    args = parser.parse_args(argv)
    if args.watch is None:
        return 0 if healthy(args.url) else 1
    return watch(args.url, args.watch, args.period, args.failures)


if __name__ == "__main__":
    sys.exit(main())
