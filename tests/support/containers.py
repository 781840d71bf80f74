"""Podman, driven the way the compose test needs it (tests/deploy/test_compose_stack.py).

No container registry is reachable where the tests run, so nothing is pulled:
- the Python base image is made from Debian's archive with debootstrap and
  `podman import`ed once (kept in podman's store for later runs);
- Redis and Prometheus are stand-ins built from Debian's packages on that base
  (tests/deploy/standins/*.Containerfile), since their public images cannot be had;
- the host's own certificate authorities (those beyond Debian's Mozilla set: a
  TLS-intercepting proxy's, say) are handed to the builds as EXTRA_CA_CERTS.

docker-compose v1 talks to `podman system service` on a private socket. Without
systemd podman never runs health checks by itself, so `HealthChecks` runs
`podman healthcheck run` for the project's containers, as a daemon's timer would.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench.stack import ROOT

STANDINS = ROOT / "tests" / "deploy" / "standins"
BASE_IMAGE = "localhost/resq-test/python:3.11"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# python3.11-venv is configured only with the wheels `python -m venv` bundles.
BASE_PACKAGES = ["python3.11", "python3.11-venv", "python3-distutils", "python3-lib2to3",
                 "python3-pip-whl", "python3-setuptools-whl", "ca-certificates"]
PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


# Podman's settings where the machine has none of its own (tests/deploy/containers.conf).
SUITE_CONTAINERS_CONF = ROOT / "tests" / "deploy" / "containers.conf"
SYSTEM_CONTAINERS_CONF = Path("/etc/containers/containers.conf")


def podman_env() -> dict[str, str]:
    """The environment podman runs in: as root on a machine with no containers.conf
    of its own, the suite's (CONTAINERS_CONF); otherwise the machine's, untouched."""
    env = dict(os.environ)
    if (os.geteuid() == 0 and "CONTAINERS_CONF" not in env
            and not SYSTEM_CONTAINERS_CONF.exists()):
        env["CONTAINERS_CONF"] = str(SUITE_CONTAINERS_CONF)
    return env


def podman(*args: str, check: bool = True, timeout: float = 600,
           **kwargs) -> subprocess.CompletedProcess:
    binary = shutil.which("podman")
    assert binary, "podman is missing: apt-get install podman (make test does)"
    result = subprocess.run([binary, *args], capture_output=True, text=True,
                            timeout=timeout, env=podman_env(), **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def image_size(name: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", name).stdout.strip())


def ensure_base_image(name: str = BASE_IMAGE) -> str:
    """Debian bookworm with Python 3.11 as `python`, where python:3.11-slim would be
    (about a minute the first time, then kept in podman's store)."""
    if image_exists(name):
        return name
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    assert os.path.exists(debootstrap), "debootstrap is missing (make test installs it)"
    with tempfile.TemporaryDirectory(prefix="resq-rootfs-") as rootfs:
        subprocess.run([debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                        DEBIAN_SUITE, rootfs, DEBIAN_MIRROR],
                       check=True, capture_output=True, timeout=900)
        Path(rootfs, "usr/local/bin/python").symlink_to("/usr/bin/python3.11")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in glob.glob(os.path.join(rootfs, cache, "*")):
                if os.path.isfile(path):
                    os.remove(path)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        try:
            podman("import", "--change", "CMD [\"python3\"]", "-", name, stdin=tar.stdout)
        finally:
            tar.stdout.close()
            tar.wait()
    return name


def build_standin(name: str, base: str = BASE_IMAGE) -> str:
    """localhost/resq-test/NAME from tests/deploy/standins/NAME.Containerfile (cached)."""
    tag = f"localhost/resq-test/{name}:latest"
    podman("build", "--format", "docker", "--build-arg", f"BASE_IMAGE={base}", "-t", tag,
           "-f", str(STANDINS / f"{name}.Containerfile"), str(STANDINS), timeout=900)
    return tag


def local_authorities(bundle: str = "/etc/ssl/certs/ca-certificates.crt",
                      public: str = "/usr/share/ca-certificates/mozilla") -> str:
    """PEM text of the authorities this host trusts beyond the public ones: what a
    build behind this host's TLS-intercepting proxy needs (empty where there is none)."""
    known = {match.group(0) for path in glob.glob(os.path.join(public, "*.crt"))
             for match in PEM.finditer(Path(path).read_text())}
    if not os.path.exists(bundle):
        return ""
    extra = [match.group(0) for match in PEM.finditer(Path(bundle).read_text())
             if match.group(0) not in known]
    return "\n".join(extra)


class PodmanService:
    """`podman system service` on a private socket, for docker-compose's API calls."""

    def __init__(self, directory: Path):
        self.socket = directory / "podman.sock"
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen | None = None
        self.log = directory / "podman-service.log"

    def __enter__(self) -> PodmanService:
        os.makedirs("/run/podman", exist_ok=True)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [shutil.which("podman") or "podman", "system", "service", "--time=0", self.url],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=podman_env())
        deadline = time.monotonic() + 60
        while not self._answers():
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            assert time.monotonic() < deadline, "podman's API socket never answered"
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(5)
                client.connect(str(self.socket))
                client.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
                return client.recv(64).startswith(b"HTTP/1.")
        except OSError:
            return False

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class HealthChecks(threading.Thread):
    """Runs the health checks of a compose project's running containers every
    `interval` seconds (podman without systemd has no timer to run them)."""

    def __init__(self, project: str, interval: float = 2.0):
        super().__init__(daemon=True, name=f"healthchecks-{project}")
        self.project, self.interval = project, interval
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            listed = podman("ps", "--filter", f"label=com.docker.compose.project={self.project}",
                            "--format", "{{.ID}} {{.Status}}", check=False, timeout=60)
            for line in listed.stdout.splitlines():
                container, _, status = line.partition(" ")
                if "(" in status:  # "Up 5 seconds (starting)": it has a health check
                    podman("healthcheck", "run", container, check=False, timeout=60)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=120)


class Compose:
    """docker-compose v1 on compose.yaml under a project name of its own."""

    def __init__(self, project: str, env: dict[str, str]):
        binary = shutil.which("docker-compose")
        assert binary, "docker-compose is missing: apt-get install docker-compose (make test does)"
        self.command = [binary, "-p", project, "-f", str(ROOT / "compose.yaml")]
        self.project, self.env = project, env

    def __call__(self, *args: str, timeout: float = 600) -> str:
        result = subprocess.run([*self.command, *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def container(self, service: str) -> dict:
        """`podman inspect` of the service's (first) container."""
        ids = podman("ps", "-a", "-q",
                     "--filter", f"label=com.docker.compose.project={self.project}",
                     "--filter", f"label=com.docker.compose.service={service}").stdout.split()
        assert ids, f"no container for {service}"
        return json.loads(podman("inspect", ids[0]).stdout)[0]

    def logs(self, service: str, tail: int = 60) -> str:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            result = podman("logs", "--tail", str(tail), self.container(service)["Id"],
                            check=False, timeout=60)
            return result.stdout + result.stderr
        return ""

