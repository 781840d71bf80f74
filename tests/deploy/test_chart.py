"""charts/resq rendered with Helm's engine for three value sets, and every object
checked: Kubernetes' schemas (kubernetes-validate), KEDA's CRD schemas for the
ScaledObject and TriggerAuthentication, selectors that match their pods, every
referenced Secret, ConfigMap, Service and key present, probe paths the apps
serve, non-root and read-only containers, and scale-in settings that agree."""

import re
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.lanes import served_lists
from tests.conftest import make_settings, running_app
from tests.deploy.chart import USER_SECRETS, VALUE_SETS, build_renderer, render

KUBERNETES_VERSION = "1.29"
KEDA_SCHEMAS = Path(__file__).parent / "schemas" / "keda"
WORKLOADS = ("Deployment", "StatefulSet")

pytestmark = pytest.mark.chart


@pytest.fixture(scope="session")
def renderer(tmp_path_factory):
    return build_renderer(tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def rendered(request, renderer, tmp_path_factory):
    objects, notes = render(renderer, VALUE_SETS[request.param], tmp_path_factory.mktemp("r"))
    return request.param, objects, notes


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def named(objects, kind, name):
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert found, f"no {kind} named {name}"
    return found[0]


def pod_specs(objects):
    for workload in (o for o in objects if o["kind"] in WORKLOADS):
        yield workload, workload["spec"]["template"]


def keda_schema(kind: str) -> dict:
    crd = yaml.safe_load((KEDA_SCHEMAS / f"keda.sh_{kind.lower()}s.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return version["schema"]["openAPIV3Schema"]


def test_every_object_validates_against_its_schema(rendered):
    name, objects, _ = rendered
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    for obj in objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(obj, keda_schema(obj["kind"]))
        elif obj["apiVersion"].startswith("monitoring.coreos.com/"):
            assert obj["spec"]["endpoints"] and obj["spec"]["selector"]["matchLabels"]
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_labels_follow_helm_conventions_and_selectors_match_pods(rendered):
    _, objects, _ = rendered
    for obj in objects:
        labels = obj["metadata"]["labels"]
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                    "app.kubernetes.io/managed-by", "helm.sh/chart"):
            assert key in labels, (obj["kind"], obj["metadata"]["name"], key)
    pod_labels = []
    for workload, template in pod_specs(objects):
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= template["metadata"]["labels"].items()
        pod_labels.append(template["metadata"]["labels"])

    def selects_pods(selector):
        return any(selector.items() <= labels.items() for labels in pod_labels)

    for service in by_kind(objects, "Service"):
        assert selects_pods(service["spec"]["selector"]), service["metadata"]["name"]
    for pdb in by_kind(objects, "PodDisruptionBudget"):
        assert selects_pods(pdb["spec"]["selector"]["matchLabels"])
    for policy in by_kind(objects, "NetworkPolicy"):
        assert selects_pods(policy["spec"]["podSelector"]["matchLabels"])
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "podSelector" in peer:  # else another namespace's (KEDA's operator)
                    assert selects_pods(peer["podSelector"]["matchLabels"])
    for scaler in by_kind(objects, "HorizontalPodAutoscaler") + by_kind(objects, "ScaledObject"):
        target = scaler["spec"]["scaleTargetRef"]
        named(objects, target.get("kind", "Deployment"), target["name"])


def test_every_referenced_secret_configmap_and_key_exists(rendered):
    name, objects, _ = rendered
    secrets = {s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {}))
               for s in by_kind(objects, "Secret")}
    secrets.update(USER_SECRETS[name])
    configmaps = {c["metadata"]["name"] for c in by_kind(objects, "ConfigMap")}
    for workload, template in pod_specs(objects):
        for container in template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], (workload["metadata"]["name"], ref)
    for auth in by_kind(objects, "TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets[ref["name"]]
    for scaler in by_kind(objects, "ScaledObject"):
        for trigger in scaler["spec"]["triggers"]:
            if "authenticationRef" in trigger:  # the redis triggers; /scaling needs none
                named(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])


def test_probe_paths_are_served(rendered, redis_url):
    _, objects, _ = rendered
    with running_app(make_settings(redis_url, queue_name="chart-probes")) as app:
        web_routes = {rule.rule for rule in app.url_map.iter_rules()}
    from flower.urls import handlers

    flower_routes = {(h.regex.pattern if hasattr(h, "regex") else h[0]).rstrip("$")
                     for h in handlers}
    served = {"web": web_routes, "flower": flower_routes, "worker": {"/metrics", "/healthz"}}
    for _, template in pod_specs(objects):
        for container in template["spec"]["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                get = container.get(probe, {}).get("httpGet")
                if get:
                    assert get["path"] in served[container["name"]], (container["name"], get)
            if container["name"] == "worker":
                ready_file = next(v["value"] for v in container["env"]
                                  if v["name"] == "WORKER_READY_FILE")
                assert container["startupProbe"]["exec"]["command"][-1] == ready_file
                # Liveness means progress (worker.health), not an HTTP answer.
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_pods_run_as_non_root_with_read_only_root_filesystems(rendered):
    _, objects, _ = rendered
    for _, template in pod_specs(objects):
        assert template["spec"]["securityContext"]["runAsNonRoot"] is True
        for container in template["spec"]["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert container["resources"]["limits"]


def test_defaults_carry_the_seed_resources_and_consistent_scale_in_settings(renderer, tmp_path):
    objects, notes = render(renderer, {}, tmp_path)
    worker = named(objects, "Deployment", "demo-resq-worker")["spec"]["template"]["spec"]
    resources = worker["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "2", "memory": "4Gi"}
    settings = named(objects, "ConfigMap", "demo-resq-worker-settings")["data"]
    grace = worker["terminationGracePeriodSeconds"]
    # A scale-in's SIGTERM gets the grace to finish; a worker killed after it has its
    # jobs delivered again after the visibility timeout, which must be longer.
    assert 0 < grace < int(settings["VISIBILITY_TIMEOUT_SECONDS"])
    scaler = by_kind(objects, "ScaledObject")[0]
    load, *lists = scaler["spec"]["triggers"]
    # The jobs open, from the web Service's /scaling; each lane's list, from Redis.
    assert load["type"] == "metrics-api" and load["metadata"]["valueLocation"] == "open"
    assert load["metadata"]["url"] == "http://demo-resq-web.resq.svc:80/scaling"
    assert [t["type"] for t in lists] == ["redis", "redis"]
    assert [t["metadata"]["listName"] for t in lists] == served_lists(settings["QUEUE_NAME"])
    assert {t["metadata"]["address"] for t in lists} == {"demo-resq-redis:6379"}
    # Scale-in goes one worker at a time, each given the grace to finish its jobs.
    scale_down = scaler["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"][
        "scaleDown"]
    assert scale_down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    assert "KEDA" in notes and "demo-resq-web" in notes


def test_each_tier_gets_its_own_settings(renderer, tmp_path):
    """A weights file mounted on workers is named in the worker's ConfigMap only; the
    common settings reach every tier, and each Deployment reads its own ConfigMap."""
    values = {"settings": {"QUEUE_NAME": "photos"},
              "worker": {"settings": {"MODEL_WEIGHTS": "/mnt/weights/resnet50.pth"}}}
    objects, _ = render(renderer, values, tmp_path)
    data = {tier: named(objects, "ConfigMap", f"demo-resq-{tier}-settings")["data"]
            for tier in ("web", "worker", "flower")}
    assert data["worker"]["MODEL_WEIGHTS"] == "/mnt/weights/resnet50.pth"
    assert "MODEL_WEIGHTS" not in data["web"] and "MODEL_WEIGHTS" not in data["flower"]
    assert {tier: found["QUEUE_NAME"] for tier, found in data.items()} == \
        dict.fromkeys(data, "photos")
    assert "QUEUE_MAX_BYTES" in data["web"] and "QUEUE_MAX_BYTES" not in data["worker"]
    for tier in data:
        pod = named(objects, "Deployment", f"demo-resq-{tier}")["spec"]["template"]["spec"]
        sources = [source["configMapRef"]["name"]
                   for source in pod["containers"][0]["envFrom"] if "configMapRef" in source]
        assert sources == [f"demo-resq-{tier}-settings"], (tier, sources)


def test_kedas_operator_may_reach_redis_through_the_network_policy(renderer, tmp_path):
    """The redis triggers are read by KEDA's operator, from its own namespace: with the
    network policies on, Redis must admit it (or the lists can never wake workers)."""
    objects, _ = render(renderer, {}, tmp_path)
    policy = named(objects, "NetworkPolicy", "demo-resq-redis")["spec"]
    peers = [peer for rule in policy["ingress"] for peer in rule["from"]]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}} \
        in peers
    elsewhere, _ = render(renderer, {"worker": {"keda": {"operatorNamespace": "autoscaling"}}},
                          tmp_path)
    peers = [peer for rule in named(elsewhere, "NetworkPolicy", "demo-resq-redis")["spec"][
        "ingress"] for peer in rule["from"]]
    assert {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "autoscaling"}}} in peers


def test_scale_to_zero_and_external_redis_render_as_asked(renderer, tmp_path):
    zero, _ = render(renderer, VALUE_SETS["scale-to-zero"], tmp_path)
    scaler = by_kind(zero, "ScaledObject")[0]["spec"]
    assert scaler["minReplicaCount"] == 0
    assert [t["metadata"].get("activationListLength", t["metadata"].get(
        "activationTargetValue")) for t in scaler["triggers"]] == ["2", "2", "2"]
    assert "replicas" not in named(zero, "Deployment", "demo-resq-worker")["spec"]
    external, _ = render(renderer, VALUE_SETS["external-redis"], tmp_path)
    assert not by_kind(external, "StatefulSet")
    trigger = by_kind(external, "ScaledObject")[0]["spec"]["triggers"][1]["metadata"]
    assert trigger["address"] == "redis.example.internal:6380"
    env = named(external, "Deployment", "demo-resq-web")["spec"]["template"]["spec"][
        "containers"][0]["env"]
    url = next(v["value"] for v in env if v["name"] == "REDIS_URL")
    assert url == "redis://:$(REDIS_PASSWORD)@redis.example.internal:6380/0"
    assert [v["name"] for v in env].index("REDIS_PASSWORD") < [v["name"] for v in env].index(
        "REDIS_URL")  # Kubernetes expands $(VAR) only from earlier entries


def redis_flags(container: dict) -> dict[str, str]:
    """The `--flag value` pairs the Redis container's start script runs redis-server
    with."""
    script = container["command"][-1]
    return {flag: value.strip('"') for flag, value in
            re.findall(r"(--[a-z-]+) (\"[^\"]*\"|[^\s\\]+)", script.split("exec redis-server")[-1])}


def test_redis_is_full_before_its_pod_is_and_admission_before_redis(renderer, tmp_path):
    """As in compose: maxmemory below the Redis container's memory limit, and
    QUEUE_MAX_BYTES below maxmemory, so a burst of uploads meets a 503, not an OOM
    kill of Redis."""
    from tests.deploy.test_compose import parse_bytes

    objects, _ = render(renderer, {}, tmp_path)
    container = named(objects, "StatefulSet", "demo-resq-redis")["spec"]["template"]["spec"][
        "containers"][0]
    flags = redis_flags(container)
    assert flags["--maxmemory-policy"] == "noeviction"
    maxmemory = parse_bytes(flags["--maxmemory"])
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Gi") and maxmemory < int(limit[:-2]) * 1024**3
    settings = named(objects, "ConfigMap", "demo-resq-web-settings")["data"]
    assert int(settings["QUEUE_MAX_BYTES"]) < maxmemory * 0.75


def test_the_results_of_the_most_workers_fit_redis_with_the_queue_full(renderer, tmp_path,
                                                                       redis_url):
    """The defaults agree with the benchmark's rate: RESULT_TTL_SECONDS of the results
    of `worker.keda.maxReplicas` workers at their best fit beside a full queue, with a
    margin (bytes per job measured on a real Redis: tests/support/sizing.py)."""
    from tests.deploy.test_compose import parse_bytes
    from tests.support.sizing import results_fit

    objects, _ = render(renderer, {}, tmp_path)
    flags = redis_flags(named(objects, "StatefulSet", "demo-resq-redis")["spec"]["template"][
        "spec"]["containers"][0])
    web = named(objects, "ConfigMap", "demo-resq-web-settings")["data"]
    worker = named(objects, "ConfigMap", "demo-resq-worker-settings")["data"]
    scaled = next(o for o in objects if o["kind"] == "ScaledObject")
    fits, said = results_fit(redis_url, maxmemory=parse_bytes(flags["--maxmemory"]),
                             queue_max_bytes=int(web["QUEUE_MAX_BYTES"]),
                             queue_max_length=int(web.get("QUEUE_MAX_LENGTH", 10_000)),
                             ttl_seconds=int(worker["RESULT_TTL_SECONDS"]),
                             workers=scaled["spec"]["maxReplicaCount"])
    print(f"\nchart: {said}")
    assert fits, said


def env_of(workload: dict) -> dict:
    return {v["name"]: v.get("value") for v in
            workload["spec"]["template"]["spec"]["containers"][0]["env"]}


def sentinel_pods(objects) -> list[str]:
    """host:port of each sentinel pod, by its StatefulSet and headless Service."""
    sentinels = named(objects, "StatefulSet", "demo-resq-redis-sentinel")["spec"]
    service = named(objects, "Service", sentinels["serviceName"])["spec"]
    assert service["clusterIP"] == "None"
    port = sentinels["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    return [f"demo-resq-redis-sentinel-{n}.{sentinels['serviceName']}.resq.svc:{port}"
            for n in range(sentinels["replicas"])]


def test_sentinel_mode_runs_a_primary_replicas_and_sentinels_apart(renderer, tmp_path):
    """redis.mode sentinel: three Redis pods (a primary and two replicas, each with its
    append-only file and volume) and three sentinels, each kind spread over nodes;
    every resq pod and KEDA's list triggers find the primary through exactly those
    sentinels; the network policies let each reach what it must."""
    objects, _ = render(renderer, VALUE_SETS["sentinel"], tmp_path)
    redis = named(objects, "StatefulSet", "demo-resq-redis")["spec"]
    sentinels = named(objects, "StatefulSet", "demo-resq-redis-sentinel")["spec"]
    assert redis["replicas"] == 3 and sentinels["replicas"] == 3
    for spec in (redis, sentinels):
        affinity = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
        term = affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchLabels"].items() <= \
            spec["template"]["metadata"]["labels"].items()
    script = redis["template"]["spec"]["containers"][0]["command"][-1]
    assert "--appendonly yes" in script and "--replicaof" in script
    assert "noeviction" in script and "masterauth $REDIS_PASSWORD" in script
    for spec in (redis, sentinels):  # the start scripts are sound shell
        command = spec["template"]["spec"]["containers"][0]["command"]
        assert subprocess.run(["sh", "-n", "-c", command[-1]]).returncode == 0
    pods = sentinel_pods(objects)
    assert len(pods) == 3
    for workload in ("demo-resq-web", "demo-resq-worker", "demo-resq-flower"):
        env = env_of(named(objects, "Deployment", workload))
        assert env["REDIS_SENTINELS"].split(",") == pods, workload
        assert env["REDIS_SENTINEL_MASTER"] == "resq" and "REDIS_SENTINEL_PASSWORD" in env
    triggers = [t for t in by_kind(objects, "ScaledObject")[0]["spec"]["triggers"]
                if t["type"] != "metrics-api"]
    assert [t["type"] for t in triggers] == ["redis-sentinel", "redis-sentinel"]
    assert [t["metadata"]["listName"] for t in triggers] == served_lists("resq")
    assert {t["metadata"]["addresses"] for t in triggers} == {",".join(pods)}
    auth = by_kind(objects, "TriggerAuthentication")[0]["spec"]["secretTargetRef"]
    assert {ref["parameter"] for ref in auth} == {"password", "sentinelPassword"}
    # Redis pods and sentinels admit each other, resq's pods and KEDA's operator.
    for target, port in (("redis", 6379), ("redis-sentinel", 26379)):
        policy = named(objects, "NetworkPolicy", f"demo-resq-{target}")["spec"]
        allowed = {peer.get("podSelector", {}).get("matchLabels", {}).get(
            "app.kubernetes.io/component") for rule in policy["ingress"]
            for peer in rule["from"]}
        assert {"web", "worker", "flower", "redis", "redis-sentinel"} <= allowed
        assert policy["ingress"][0]["ports"] == [{"port": port, "protocol": "TCP"}]
    egress = named(objects, "NetworkPolicy", "demo-resq-worker")["spec"]["egress"][0]
    assert {p["port"] for p in egress["ports"]} == {6379, 26379}


def test_an_external_sentinel_setup_is_used_as_given(renderer, tmp_path):
    objects, _ = render(renderer, VALUE_SETS["external-sentinel"], tmp_path)
    assert not by_kind(objects, "StatefulSet")
    given = VALUE_SETS["external-sentinel"]["redis"]["external"]["sentinels"]
    env = env_of(named(objects, "Deployment", "demo-resq-worker"))
    assert env["REDIS_SENTINELS"].split(",") == given
    assert env["REDIS_URL"] == "redis://:$(REDIS_PASSWORD)@primary/0"
    triggers = by_kind(objects, "ScaledObject")[0]["spec"]["triggers"][1:]
    assert {t["metadata"]["addresses"] for t in triggers} == {",".join(given)}
    egress = named(objects, "NetworkPolicy", "demo-resq-web")["spec"]["egress"][0]
    assert egress["to"] == [{"ipBlock": {"cidr": "10.30.0.0/16"}}]
    assert [p["port"] for p in egress["ports"]] == [6379, 26379, 26380]


SECRET_USERS = {  # which pods each secret is for: what reads it
    "API_KEYS": {"web"},
    "WEBHOOK_SECRET": {"worker"},
    "FLOWER_BASIC_AUTH": {"flower"},
}


def without_heredocs(script: str) -> str:
    """A shell script less the bodies of its here-documents (config files it writes)."""
    kept, ending = [], None
    for line in script.splitlines():
        if ending is not None:
            ending = None if line.strip() == ending else ending
            continue
        kept.append(line)
        if "<<" in line:
            ending = line.split("<<", 1)[1].strip().strip("'\"-")
    return "\n".join(kept)


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_no_secret_on_a_command_line_and_each_only_where_it_is_used(renderer, tmp_path,
                                                                    value_set):
    """Nothing a secret holds reaches a process's arguments (every user of the node
    reads them in `ps`): no `$(SECRET)` expansion in command or args, no secret
    variable passed to a program in a script (config files a script writes are
    fine), probes included. And each secret reaches only the pods that read it."""
    objects, _ = render(renderer, VALUE_SETS[value_set], tmp_path)
    reached: dict[str, set[str]] = {}
    for workload, template in pod_specs(objects):
        component = template["metadata"]["labels"]["app.kubernetes.io/component"]
        for container in template["spec"]["containers"]:
            secret_vars = {e["name"] for e in container.get("env", [])
                           if "secretKeyRef" in e.get("valueFrom", {})}
            for name in secret_vars:
                reached.setdefault(name, set()).add(component)
            probes = [container.get(p, {}).get("exec", {}).get("command", [])
                      for p in ("readinessProbe", "livenessProbe", "startupProbe")]
            for words in [container.get("command", []), container.get("args", []), *probes]:
                text = "\n".join(without_heredocs(word) for word in words)
                for name in secret_vars:
                    for form in (f"$({name})", f"${name}", f"${{{name}}}"):
                        assert form not in text, (workload["metadata"]["name"], name, text)
                assert "--requirepass" not in text and "-a " not in text, text
    for name, users in SECRET_USERS.items():
        assert reached.get(name, set()) <= users, (name, reached.get(name))
