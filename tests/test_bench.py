"""`python -m bench --quick` keeps the benchmark working: it starts the real stack,
drives it, and writes the JSON and the plot with every key docs/performance.md names.
(No timing is asserted: performance is read from `make bench`, not from tests.)"""

import json
import subprocess
import sys

import pytest

from bench.stack import ROOT, base_env

REQUIRED = ("e2e_images_per_s", "pipeline_ceiling_images_per_s", "seed_baseline_images_per_s",
            "wait_p50_ms_1_client", "wait_p95_ms_1_client", "pipeline_latency_ms_1_image",
            "cold_start_s", "precision", "max_batch")

pytestmark = pytest.mark.processes


def test_quick_benchmark_writes_json_and_plot(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, env=base_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    assert all(key in results for key in REQUIRED)
    assert results["failures"] == 0
    assert [row["concurrency"] for row in results["sweep_1600x1200"]] == [1, 4]
    assert all(row["requests"] > 0 for row in results["sweep_1600x1200"])
    assert results["e2e_images_per_s"] > 0 and results["seed_baseline_images_per_s"] > 0
    assert results["precision"] in ("fp32", "bf16") and results["max_batch"] == 8
    # Each engine's own figures under `engines` (here the default one only).
    [default] = results["engines"].values()
    assert default["engine"] == results["engine"] and default["model_only_images_per_s"] > 0
    assert 0 <= default["cpu_outside_decode_and_model_share"] <= 1
    png = (tmp_path / "latest.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    # The lanes: every wait behind the backlog answered with its result, and every
    # job past its deadline ended `expired`.
    waits, expired = results["lanes"]["interactive_under_backlog"], results["lanes"]["expired"]
    assert waits["succeeded"] == waits["requests"] == 3
    assert expired["codes"] == ["expired"] and expired["worker_cpu_ms_per_expired_job"] > 0
    # A batch against the same images as separate jobs: every item done, every figure.
    batches = results["batches"]
    assert batches["batch"]["failed"] == 0 and batches["separate_jobs"]["refused"] == 0
    assert all(value is not None for value in batches["ratios"].values())
    # the ratios are printed last, under their heading
    printed = done.stdout.strip().split("resq benchmark")[-1].splitlines()
    # Half the images repeated, with the result cache on and off: every one answered,
    # and with the cache on, every repeat (but the racing few) from the cache.
    cache = results["result_cache"]
    assert cache["off"]["failures"] == cache["on"]["failures"] == 0
    assert cache["off"]["cached"] == 0 < cache["on"]["cached"] <= cache["on"]["requests"] // 2
    for name in ("worker CPU per expired job", "batches: batch / separate jobs images/s",
                 "batches: first progress event ms",
                 "result cache: half repeated, cache on / off images/s"):
        assert any(line.strip().startswith(name) for line in printed), (name, printed)
