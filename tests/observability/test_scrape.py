"""A real scrape: redis-server, a worker, gunicorn with 3 processes, Flower with
auth and a real `prometheus` (Debian's package) on free loopback ports, using
deploy/prometheus's config and rules with the test's ports. N jobs go through
over HTTP; Prometheus's query API must then count N in both tiers. The dashboard's
and the alerts' queries must only name metrics that Prometheus really scraped,
and one job's JSON log lines join across the tiers by its id."""

import json
import shutil
import sys
import uuid

import pytest
import requests
import yaml

from bench.stack import (
    ROOT,
    Process,
    await_condition,
    base_env,
    free_port,
    start_gunicorn,
    start_worker,
)
from tests.observability.promql import metric_names
from tests.support.images import jpeg

pytestmark = [pytest.mark.prometheus, pytest.mark.processes]

JOBS = 12
WEB_WORKERS = 3
FLOWER_USER, FLOWER_PASSWORD = "flower", "scrape-secret-1"
DEPLOY = ROOT / "deploy"


def prometheus_config(tmp_path, web_port, worker_port, flower_port):
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yml")]
    password_file = tmp_path / "flower_password"
    password_file.write_text(FLOWER_PASSWORD)
    targets = {"resq-web": web_port, "resq-worker": worker_port, "resq-flower": flower_port}
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]
        if "basic_auth" in job:
            job["basic_auth"] = {"username": FLOWER_USER, "password_file": str(password_file)}
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory):
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: apt-get install prometheus (make test does)"
    tmp = tmp_path_factory.mktemp("scrape")
    queue = f"scrape-{uuid.uuid4().hex[:6]}"
    worker_port = free_port()
    worker = start_worker(redis_url, queue, tmp / "worker.log", WORKER_METRICS_PORT=worker_port,
                          LOG_FORMAT="json")
    web, base = start_gunicorn(redis_url, queue, tmp / "web.log", WEB_WORKERS=WEB_WORKERS,
                               RATE_LIMIT="", LOG_FORMAT="json", METRICS_DIR=tmp / "metrics")
    flower_port = free_port()
    flower = Process([sys.executable, "-m", "shared.flower_main"],
                     base_env(REDIS_URL=redis_url, QUEUE_NAME=queue, FLOWER_PORT=flower_port,
                              FLOWER_BASIC_AUTH=f"{FLOWER_USER}:{FLOWER_PASSWORD}"),
                     tmp / "flower.log")
    prom_port = free_port()
    config = prometheus_config(tmp, int(base.rsplit(":", 1)[1]), worker_port, flower_port)
    prometheus = Process([binary, f"--config.file={config}",
                          f"--storage.tsdb.path={tmp / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{prom_port}"],
                         base_env(), tmp / "prometheus.log")
    prom = f"http://127.0.0.1:{prom_port}"
    try:
        await_condition(lambda: requests.get(prom + "/-/ready", timeout=1).ok, 60, "prometheus")
        yield {"base": base, "prom": prom, "tmp": tmp, "worker": worker, "web": web}
    finally:
        for proc in (prometheus, flower, web, worker):
            proc.stop()


def query(prom: str, expr: str) -> float | None:
    result = requests.get(prom + "/api/v1/query", params={"query": expr}, timeout=5).json()
    samples = result["data"]["result"]
    return float(samples[0]["value"][1]) if samples else None


@pytest.fixture(scope="module")
def jobs_done(stack):
    ids = []
    for _ in range(JOBS):
        # A new connection per job, so the kernel spreads them over gunicorn's processes.
        response = requests.post(stack["base"] + "/jobs?wait=30", data=jpeg(160, 120),
                                 headers={"Content-Type": "image/jpeg", "Connection": "close"},
                                 timeout=60)
        assert response.status_code == 200 and response.json()["status"] == "succeeded"
        ids.append(response.json()["id"])
    # And one refused request, so the rejection counter has a series.
    refused = requests.post(stack["base"] + "/jobs", data=b"", timeout=10,
                            headers={"Content-Type": "image/jpeg"})
    assert refused.status_code == 400
    return ids


def test_prometheus_counts_every_job_in_both_tiers(stack, jobs_done):
    prom = stack["prom"]
    expected = {
        'sum(resq_jobs_submitted_total{form="raw"})': JOBS,
        'sum(resq_rejections_total{reason="bad_image"})': 1,
        'sum(resq_http_requests_total{route="/jobs", method="POST", status="200"})': JOBS,
        'sum(resq_http_request_duration_seconds_count{route="/jobs", wait="yes"})': JOBS,
        'sum(resq_waits_total{outcome="result"})': JOBS,
        'sum(resq_worker_jobs_total{outcome="succeeded"})': JOBS,
        "sum(resq_job_queue_wait_seconds_count)": JOBS,
        "sum(resq_batch_size_sum)": JOBS,
    }

    def counted():
        return {expr: query(prom, expr) for expr in expected}

    try:
        await_condition(lambda: counted() == expected, 60, "Prometheus to count every job",
                        interval=0.5)
    except TimeoutError:
        raise AssertionError(f"counted {counted()}, expected {expected}") from None
    # Several gunicorn processes did the counting (one file of counters per process).
    counters = list((stack["tmp"] / "metrics").glob("counter_*.db"))
    assert len(counters) >= 2, counters
    # Each target is up (Flower, started last, may be a scrape or two behind).
    for job in ("resq-web", "resq-worker", "resq-flower"):
        await_condition(lambda job=job: query(prom, f'up{{job="{job}"}}') == 1.0, 30, f"{job} up",
                        interval=0.5)
    assert query(prom, 'resq_queue_length{job="resq-web"}') == 0.0
    assert query(prom, 'resq_queue_length{job="resq-worker"}') == 0.0
    assert query(prom, "resq_model_load_seconds") > 0
    assert query(prom, "resq_cpu_cores") >= 1


def test_every_dashboard_and_alert_query_names_a_scraped_metric(stack, jobs_done):
    prom = stack["prom"]
    # Series that exist only after some event are not required to exist now.
    await_condition(lambda: query(prom, "sum(resq_worker_jobs_total)") == JOBS, 60, "scrapes")
    scraped = set(requests.get(prom + "/api/v1/label/__name__/values", timeout=5).json()["data"])
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "resq.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = set().union(*(metric_names(expr) for expr in exprs))
    assert len(named) >= 15
    assert named - scraped == set(), f"queries name metrics nobody exports: {named - scraped}"


def test_one_job_can_be_followed_through_both_tiers_logs(stack, jobs_done):
    job_id = jobs_done[0]

    def records(path):
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("job_id") == job_id:
                yield record

    web_lines = list(records(stack["tmp"] / "web.log"))
    worker_lines = list(records(stack["tmp"] / "worker.log"))
    assert any(r["message"] == "job accepted" for r in web_lines), web_lines
    assert any(r.get("logger") == "gunicorn.access" and r.get("status") == "200"
               for r in web_lines), web_lines
    assert any("classified in a batch" in r["message"] for r in worker_lines), worker_lines
    assert any("succeeded" in r["message"] for r in worker_lines), worker_lines
