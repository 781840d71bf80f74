"""Renders charts/resq with tests/deploy/helm_render (Helm's engine: Go's
text/template and sprig, built here with Debian's Go and sprig packages)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from bench.stack import ROOT

CHART = ROOT / "charts" / "resq"
RENDERER = Path(__file__).parent / "helm_render" / "main.go"
GOPATH = "/usr/share/gocode"

# Value sets the tests render: the defaults, an external Redis, scale to zero, Redis
# behind sentinels in the release, and an external Sentinel setup.
VALUE_SETS = {
    "default": {},
    "external-redis": {
        "redis": {"enabled": False,
                  "external": {"host": "redis.example.internal", "port": 6380,
                               "cidr": "10.20.0.0/16"},
                  "auth": {"existingSecret": "external-redis", "passwordKey": "password"}},
        "apiKeysSecret": "resq-api-keys",
        "webhookSecret": "resq-webhooks",
        "networkPolicy": {"enabled": True, "workerEgressCidrs": ["203.0.113.0/24"]},
        "flower": {"existingSecret": "resq-flower-auth"},
        "serviceMonitor": {"enabled": True},
    },
    "scale-to-zero": {
        "worker": {"keda": {"minReplicas": 0, "maxReplicas": 20, "activationListLength": 2}},
        "web": {"autoscaling": {"enabled": False}, "replicas": 3},
        "flower": {"enabled": False},
        "networkPolicy": {"enabled": False},
    },
    "sentinel": {"redis": {"mode": "sentinel"}},
    "external-sentinel": {
        "redis": {"enabled": False, "mode": "sentinel",
                  "external": {"sentinels": ["sentinel-a.example.internal:26379",
                                             "sentinel-b.example.internal:26379",
                                             "sentinel-c.example.internal:26380"],
                               "cidr": "10.30.0.0/16"},
                  "auth": {"existingSecret": "external-redis", "passwordKey": "password"}},
    },
}
# Secrets a value set names but expects the user to create.
USER_SECRETS = {
    "default": {},
    "external-redis": {"external-redis": {"password"}, "resq-api-keys": {"API_KEYS"},
                       "resq-webhooks": {"WEBHOOK_SECRET"},
                       "resq-flower-auth": {"FLOWER_BASIC_AUTH"}},
    "scale-to-zero": {},
    "sentinel": {},
    "external-sentinel": {"external-redis": {"password"}},
}


def build_renderer(directory: Path) -> Path:
    go = shutil.which("go")
    assert go, "go is missing: apt-get install golang-go golang-github-masterminds-sprig-dev"
    assert Path(GOPATH, "src/github.com/Masterminds/sprig").is_dir(), \
        "sprig is missing: apt-get install golang-github-masterminds-sprig-dev"
    binary = directory / "helm_render"
    env = {**os.environ, "GOPATH": GOPATH, "GO111MODULE": "off",
           "GOCACHE": str(directory / "gocache"), "GOFLAGS": ""}
    result = subprocess.run([go, "build", "-o", str(binary), str(RENDERER)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return binary


def render(binary: Path, values: dict, tmp: Path, release: str = "demo",
           namespace: str = "resq") -> tuple[list[dict], str]:
    """The rendered objects, and NOTES.txt as text."""
    values_file = tmp / f"values-{abs(hash(yaml.safe_dump(values)))}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = subprocess.run([str(binary), str(CHART), release, namespace, str(values_file)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    manifests, _, notes = result.stdout.partition("# NOTES.txt\n")
    objects = [doc for doc in yaml.safe_load_all(manifests) if doc]
    return objects, notes
