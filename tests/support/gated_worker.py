"""`python -m tests.support.gated_worker`: the real worker (`python -m worker`),
except that decoding an image that carries `GATE_MARKER` first creates
`$RESQ_TEST_GATE_DIR/entered` and then waits until `$RESQ_TEST_GATE_DIR/open`
exists. A test holds a job in the middle of its run this way, for as long as it
needs, to force a race (cancel against the worker) on a machine of any speed.

The gate is the only stand-in: the queue, the job store, the batch and the model
around it are the real ones.
"""

import os
import sys
import time
from pathlib import Path

import worker.runtime
from worker.__main__ import main

GATE_MARKER = b"resq-gate-marker"
GATE_DIR_VAR = "RESQ_TEST_GATE_DIR"
GATE_TIMEOUT_SECONDS = 300

_real_preprocess = worker.runtime.preprocess


def _preprocess_behind_the_gate(data: bytes, *args, **kwargs):
    if GATE_MARKER in data:
        gate = Path(os.environ[GATE_DIR_VAR])
        (gate / "entered").touch()
        deadline = time.monotonic() + GATE_TIMEOUT_SECONDS
        while not (gate / "open").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return _real_preprocess(data, *args, **kwargs)


worker.runtime.preprocess = _preprocess_behind_the_gate

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
