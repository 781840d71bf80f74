"""METRICS_DIR is emptied of an earlier run's counters at start, and of nothing
else: the real gunicorn configuration refuses a directory that holds other files
(it used to `rmtree` it, so METRICS_DIR=/tmp wiped /tmp)."""

import subprocess
import sys

from bench.stack import ROOT, base_env
from web.metrics_dir import empty_metrics_dir


def test_an_earlier_runs_counters_are_removed(tmp_path):
    for name in ("counter_123.db", "gauge_all_123.db", "histogram_9.db"):
        (tmp_path / name).write_bytes(b"old")
    empty_metrics_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_holding_anything_else_is_refused_and_left_alone(tmp_path):
    (tmp_path / "counter_1.db").write_bytes(b"old")
    (tmp_path / "thesis.tex").write_text("three years of work")
    loaded = subprocess.run([sys.executable, "-c", "import web.gunicorn_conf"], cwd=ROOT,
                            env=base_env(METRICS_DIR=tmp_path), capture_output=True,
                            text=True, timeout=60)
    assert loaded.returncode != 0
    assert "METRICS_DIR" in loaded.stderr and "thesis.tex" in loaded.stderr
    assert (tmp_path / "thesis.tex").read_text() == "three years of work"
    assert (tmp_path / "counter_1.db").exists()  # nothing was touched
