"""compose.yaml, checked by a real compose parser (Debian's docker-compose v1,
`config`), and what it must hold: Redis with AOF, noeviction, a volume and a
healthcheck; web, worker and Flower waiting for a healthy Redis, read-only with a
/tmp tmpfs; a worker that `--scale` can multiply; Flower behind auth; Prometheus
with the repo's rules and Grafana with the dashboard. (No Docker engine here:
nothing is started.)"""

import os
import shutil
import subprocess

import pytest
import yaml

from bench.stack import ROOT

pytestmark = pytest.mark.compose

# What compose.yaml reads from the environment: left out of the test's own, so that
# the defaults are checked whatever the shell running the tests has set.
COMPOSE_VARIABLES = ("FLOWER_", "GRAFANA_", "API_KEYS", "MODEL_WEIGHTS", "IMAGE_TAG",
                     "WEB_PORT", "PROMETHEUS_", "PYTHON_IMAGE", "REDIS_IMAGE",
                     "EXTRA_CA_CERTS", "TORCH_INDEX_URL", "PYPI_INDEX_URL", "WEBHOOK_SECRET")


def compose_config(*options: str, **env) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: apt-get install docker-compose (make test does)"
    return subprocess.run([binary, "-f", str(ROOT / "compose.yaml"), *options, "config"],
                          cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**{k: v for k, v in os.environ.items()
                                  if not k.startswith(COMPOSE_VARIABLES)}, **env})


def mounts(service) -> dict[str, str]:
    """target -> source of a service's volumes (v1 prints them as short strings)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


@pytest.fixture(scope="module")
def services():
    result = compose_config(FLOWER_PASSWORD="compose-test-pass",
                            GRAFANA_PASSWORD="grafana-test-pass")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_compose_needs_a_flower_password():
    result = compose_config(GRAFANA_PASSWORD="grafana-test-pass")
    assert result.returncode != 0 and "FLOWER_PASSWORD" in result.stderr


def test_compose_needs_a_grafana_password_and_keeps_prometheus_on_loopback(services):
    result = compose_config(FLOWER_PASSWORD="compose-test-pass")
    assert result.returncode != 0 and "GRAFANA_PASSWORD" in result.stderr
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == \
        "grafana-test-pass"
    published = services["prometheus"]["ports"]
    assert published and all(str(port).startswith("127.0.0.1:") for port in published), \
        published


def test_redis_keeps_accepted_jobs(services):
    redis = services["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert mounts(redis)["/data"] == "redis-data"  # a named volume
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_redis_is_full_before_its_container_is_and_admission_before_redis(services):
    """noeviction does nothing without maxmemory: Redis would grow until the kernel
    kills it. maxmemory sits below the container's limit, and QUEUE_MAX_BYTES below
    maxmemory, so a burst of uploads meets a 503, not an OOM kill."""
    redis = services["redis"]
    args = redis["command"]
    maxmemory = parse_bytes(args[args.index("--maxmemory") + 1])
    assert maxmemory < parse_bytes(str(redis["mem_limit"]))
    assert int(services["web"]["environment"]["QUEUE_MAX_BYTES"]) < maxmemory * 0.75


def test_an_hour_of_one_workers_results_fits_redis_with_the_queue_full(services, redis_url):
    """The defaults agree with the benchmark's rate: RESULT_TTL_SECONDS of one worker's
    results at its best fit beside a full queue, with a margin (bytes per job measured
    on a real Redis: tests/support/sizing.py)."""
    from tests.support.sizing import results_fit

    env = services["worker"]["environment"]
    args = services["redis"]["command"]
    fits, said = results_fit(redis_url, maxmemory=parse_bytes(args[args.index("--maxmemory") + 1]),
                             queue_max_bytes=int(services["web"]["environment"]["QUEUE_MAX_BYTES"]),
                             queue_max_length=10_000, ttl_seconds=int(env["RESULT_TTL_SECONDS"]),
                             workers=1)
    print(f"\ncompose: {said}")
    assert fits, said


def parse_bytes(text: str) -> int:
    units = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "k": 1024, "m": 1024**2, "g": 1024**3}
    text = text.strip().lower()
    for unit, factor in units.items():
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * factor
    return int(text)


@pytest.mark.parametrize("name", ["web", "worker", "flower"])
def test_resq_services_wait_for_redis_and_run_read_only(services, name):
    service = services[name]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["read_only"] is True and "/tmp" in service["tmpfs"]
    assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_the_worker_can_be_scaled(services):
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale needs both free
    assert worker["stop_grace_period"] == "60s"
    assert worker["build"]["dockerfile"] == "docker/worker.Dockerfile"


def test_flower_prometheus_and_grafana_are_wired(services):
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "flower:compose-test-pass"
    prometheus = services["prometheus"]
    assert mounts(prometheus)["/etc/prometheus"].endswith("deploy/prometheus")
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    flower_job = next(j for j in config["scrape_configs"] if j["job_name"] == "resq-flower")
    assert flower_job["basic_auth"]["password_file"] in prometheus["entrypoint"][-1]
    grafana = mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning"].endswith("deploy/grafana/provisioning")
    assert grafana["/var/lib/grafana/dashboards"].endswith("deploy/grafana/dashboards")


def test_images_and_build_arguments_come_from_the_environment():
    """Public images by default; a user behind a mirror or a proxy sets variables."""
    mirrored = compose_config(FLOWER_PASSWORD="p", GRAFANA_PASSWORD="g",
                              PYTHON_IMAGE="mirror.example/python:3.11-slim",
                              REDIS_IMAGE="mirror.example/redis:7.2-alpine",
                              PROMETHEUS_IMAGE="mirror.example/prometheus:v2.53.0",
                              GRAFANA_IMAGE="mirror.example/grafana:11.1.0",
                              EXTRA_CA_CERTS="-----BEGIN CERTIFICATE-----",
                              TORCH_INDEX_URL="https://pypi.mirror.example/simple")
    assert mirrored.returncode == 0, mirrored.stderr
    found = yaml.safe_load(mirrored.stdout)["services"]
    assert {name: found[name]["image"] for name in ("redis", "prometheus", "grafana")} == {
        "redis": "mirror.example/redis:7.2-alpine",
        "prometheus": "mirror.example/prometheus:v2.53.0",
        "grafana": "mirror.example/grafana:11.1.0"}
    for name in ("web", "worker", "flower"):
        args = found[name]["build"]["args"]
        assert args["PYTHON_IMAGE"] == "mirror.example/python:3.11-slim"
        assert args["EXTRA_CA_CERTS"] == "-----BEGIN CERTIFICATE-----"
    assert found["worker"]["build"]["args"]["TORCH_INDEX_URL"] == \
        "https://pypi.mirror.example/simple"
    defaults = yaml.safe_load(compose_config(FLOWER_PASSWORD="p", GRAFANA_PASSWORD="g")
                              .stdout)["services"]
    assert defaults["redis"]["image"] == "redis:7.2-alpine"
    assert defaults["web"]["build"]["args"]["PYTHON_IMAGE"] == "python:3.11-slim"


def host_ports(service) -> list[str]:
    """`[address:]port` published on the host (v1 prints a dict, or a string with an
    address)."""
    found = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            found.append(str(entry["published"]))
        else:
            found.append(":".join(str(entry).split(":")[:-1]))
    return found


def test_ports_tags_and_weights_come_from_the_environment():
    """A second stack on one machine (the compose test's, say) moves its ports and tags
    its images without touching a user's `:latest`; the defaults stay as documented."""
    moved = yaml.safe_load(compose_config(
        FLOWER_PASSWORD="p", GRAFANA_PASSWORD="g", WEB_PORT="18000", FLOWER_PORT="15555",
        PROMETHEUS_PORT="19090", GRAFANA_PORT="13000", IMAGE_TAG="ci",
        MODEL_WEIGHTS="random").stdout)["services"]
    assert {name: host_ports(moved[name]) for name in ("web", "flower", "prometheus",
                                                        "grafana")} == {
        "web": ["18000"], "flower": ["15555"], "prometheus": ["127.0.0.1:19090"],
        "grafana": ["13000"]}
    assert {name: moved[name]["image"] for name in ("web", "worker", "flower")} == {
        "web": "resq-web:ci", "worker": "resq-worker:ci", "flower": "resq-flower:ci"}
    assert moved["worker"]["build"]["args"]["MODEL_WEIGHTS"] == "random"
    defaults = yaml.safe_load(compose_config(FLOWER_PASSWORD="p", GRAFANA_PASSWORD="g")
                              .stdout)["services"]
    assert defaults["web"]["image"] == "resq-web:latest"
    assert defaults["worker"]["build"]["args"]["MODEL_WEIGHTS"] == "imagenet"
    assert host_ports(defaults["web"]) == ["8000"]
    assert host_ports(defaults["prometheus"]) == ["127.0.0.1:9090"]


def test_the_ha_profile_adds_a_replica_and_three_sentinels_the_tiers_use():
    """`COMPOSE_PROFILES=ha` with REDIS_SENTINELS: a replica of Redis with its own
    append-only file and three sentinels (a quorum of 2) that find Redis by name; every
    resq service gets the sentinels. Without the profile none of them runs (they are
    the only services with a profile)."""
    sentinels = "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"
    result = compose_config("--profile", "ha", FLOWER_PASSWORD="p", GRAFANA_PASSWORD="g",
                            REDIS_SENTINELS=sentinels)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    replica = " ".join(services["redis-replica"]["command"])
    assert "--replicaof redis 6379" in replica and "--appendonly yes" in replica
    assert "redis-replica-data:/data" in " ".join(services["redis-replica"]["volumes"])
    for n in (1, 2, 3):
        sentinel = services[f"sentinel-{n}"]
        script = sentinel["command"][0].replace("$$", "$")
        assert "sentinel monitor resq ${primary:-redis} 6379 2" in script
        assert sentinel["environment"]["SENTINEL_NAME"] == f"sentinel-{n}"
        assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    for name in ("web", "worker", "flower"):
        assert services[name]["environment"]["REDIS_SENTINELS"] == sentinels
        assert services[name]["environment"]["REDIS_SENTINEL_MASTER"] == "resq"
    profiled = {name for name, service in services.items() if service.get("profiles")}
    assert profiled == {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}
    assert all(services[name]["profiles"] == ["ha"] for name in profiled)
