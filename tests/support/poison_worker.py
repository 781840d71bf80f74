"""`python -m tests.support.poison_worker`: the real worker (`python -m worker`),
except that decoding an image that carries `POISON_MARKER` kills the process with
SIGKILL, as a native decoder crash or the OOM killer would.

This is the one stand-in of the poison-job test: no real image can be relied on to
crash a healthy decoder, so the crash itself is injected. Everything around it
(the queue, the redelivery, the attempt count, the worker restarts) is real.
"""

import os
import signal
import sys

import worker.runtime
from worker.__main__ import main

POISON_MARKER = b"resq-poison-marker"

_real_preprocess = worker.runtime.preprocess


def _preprocess_or_die(data: bytes, *args, **kwargs):
    if POISON_MARKER in data:
        os.kill(os.getpid(), signal.SIGKILL)
    return _real_preprocess(data, *args, **kwargs)


worker.runtime.preprocess = _preprocess_or_die

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
