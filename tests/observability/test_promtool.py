"""The Prometheus config and alert rules in deploy/prometheus, checked by the real
promtool (Debian's `prometheus` package): config and rules are valid, and every
alert has a firing and a quiet unit test that pass."""

import shutil
import subprocess

import pytest
import yaml

from bench.stack import ROOT

pytestmark = pytest.mark.prometheus

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: apt-get install prometheus (make test does)"
    return subprocess.run([binary, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True,
                          timeout=120)


def test_config_and_rules_are_valid(tmp_path):
    # password_file must exist for `check config`; the compose file mounts the real one.
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    (tmp_path / "flower_password").write_text("x")
    for job in config["scrape_configs"]:
        if "basic_auth" in job:
            job["basic_auth"]["password_file"] = str(tmp_path / "flower_password")
    config["rule_files"] = [str(PROMETHEUS_DIR / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_every_alert_has_a_firing_and_a_quiet_case_that_pass():
    alerts = {rule["alert"] for group in yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
              ["groups"] for rule in group["rules"]}
    cases = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    firing, quiet = set(), set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts == firing == quiet
    assert {"ResqServiceDown", "ResqHighLatency", "ResqHighErrorRate", "ResqHighCpu",
            "ResqHighMemory", "ResqBacklogWithNoWorker", "ResqOldestJobTooOld",
            "ResqJobFailureRatio", "ResqWorkersRestarting"} <= alerts
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
