"""`python -m worker` as a process: it refuses to start without weights, and with
bad settings, and says how to fix it."""

import subprocess
import sys

import pytest

from bench.stack import ROOT, base_env, free_port

pytestmark = pytest.mark.processes


def run_worker(**env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker"], cwd=ROOT, env=base_env(**env),
                          capture_output=True, text=True, timeout=120)


def test_refuses_to_start_without_reachable_weights(tmp_path):
    # The download is sent through a proxy on a closed loopback port, so it fails
    # here as it would offline, and no traffic leaves the machine.
    closed = f"http://127.0.0.1:{free_port()}"
    done = run_worker(MODEL_WEIGHTS="imagenet", TORCH_HOME=tmp_path, https_proxy=closed,
                      HTTPS_PROXY=closed, http_proxy=closed, HTTP_PROXY=closed,
                      REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 3
    assert "cannot start" in done.stderr
    assert "MODEL_WEIGHTS=random" in done.stderr and str(tmp_path) in done.stderr
    assert not any((tmp_path / "hub" / "checkpoints").glob("*.pth"))


def test_refuses_to_start_without_its_weights_file(tmp_path):
    missing = tmp_path / "resnet50-finetuned.pth"
    done = run_worker(MODEL_WEIGHTS=str(missing), REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 3
    assert "cannot start" in done.stderr and str(missing) in done.stderr


def test_refuses_bad_settings_with_one_line_each():
    done = run_worker(MODEL_PRECISION="fp8", BATCH_MAX_SIZE="0")
    assert done.returncode == 2
    assert "MODEL_PRECISION:" in done.stderr and "BATCH_MAX_SIZE:" in done.stderr
