"""The Dockerfiles, read as text (no Docker engine here to build them): multi-stage,
a non-root user in every final stage, a HEALTHCHECK, no torch in the web image,
CPU-only torch wheels and the weights and compiled model baked into the worker;
and `python -m worker.bake`, the worker image's build step, really runs."""

import re
import subprocess
import sys

import pytest

from bench.stack import ROOT, base_env

DOCKER = ROOT / "docker"


def stages(path) -> dict[str, str]:
    """Each stage's text by name (the last unnamed one as `final`)."""
    found, name, lines = {}, None, []
    for line in path.read_text().splitlines():
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            if name is not None:
                found[name] = "\n".join(lines)
            name, lines = match.group(1) or "final", [line]
        elif name is not None:
            lines.append(line)
    found[name] = "\n".join(lines)
    return found


@pytest.mark.parametrize(("dockerfile", "stage"), [("web.Dockerfile", "web"),
                                                    ("web.Dockerfile", "flower"),
                                                    ("worker.Dockerfile", "final")])
def test_final_stages_run_as_a_non_root_user_with_a_healthcheck(dockerfile, stage):
    text = stages(DOCKER / dockerfile)[stage]
    user = re.search(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert user and user.group(1) not in ("0", "root")
    assert re.search(r"^HEALTHCHECK\s+--", text, re.MULTILINE)
    assert re.search(r"^CMD \[", text, re.MULTILINE)
    assert "COPY --from=" in text  # built in an earlier stage, not here


def test_the_worker_healthcheck_is_liveness_not_an_http_answer():
    # /metrics answers while the batcher is wedged; /healthz does not (worker/health.py).
    text = stages(DOCKER / "worker.Dockerfile")["final"]
    check = re.search(r"^HEALTHCHECK.*\n\s+CMD (.*)$", text, re.MULTILINE).group(1)
    assert "shared.liveness" in check and "/healthz" in check


def test_the_web_image_has_no_torch():
    web = stages(DOCKER / "web.Dockerfile")["web"]
    assert "worker" not in web and "torch" not in web
    for name in ("web.txt", "common.txt", "flower.txt"):
        pins = [line for line in (ROOT / "requirements" / name).read_text().splitlines()
                if line and not line.startswith("#")]
        assert not any(line.lower().startswith(("torch", "nvidia")) for line in pins)


def test_the_worker_image_bakes_weights_and_model_and_carries_no_torch():
    build = stages(DOCKER / "worker.Dockerfile")["build"]
    assert "download.pytorch.org/whl/cpu" in build
    assert "python -m worker.bake" in build and "MODEL_WEIGHTS=imagenet" in build
    runtime = stages(DOCKER / "worker.Dockerfile")["runtime"]
    assert "worker-runtime.txt" in runtime and "worker.txt " not in runtime
    final = stages(DOCKER / "worker.Dockerfile")["final"]
    assert "COPY --from=build /opt/resq /opt/resq" in final
    assert "COPY --from=runtime /opt/venv /opt/venv" in final and "torch" not in final.split(
        "ENV", 1)[0]
    assert "COMPILE_CACHE_DIR=/opt/resq/compiled" in final and "g++" not in final
    pins = [line for line in (ROOT / "requirements" / "worker-runtime.txt").read_text()
            .splitlines() if line and not line.startswith("#")]
    assert not any(line.lower().startswith(("torch", "nvidia", "nncf")) for line in pins)


def test_dockerignore_lets_in_only_what_the_images_copy():
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*"
    assert {line.rstrip("/") for line in lines if line.startswith("!")} == {
        "!requirements", "!shared", "!web", "!worker"}


@pytest.mark.processes
def test_the_worker_build_step_runs(tmp_path):
    """`python -m worker.bake` as the image runs it (random weights and eager mode
    here: downloading needs the network, compiling is tested in test_compiled.py)."""
    result = subprocess.run([sys.executable, "-m", "worker.bake"], cwd=ROOT, timeout=300,
                            env=base_env(MODEL_WEIGHTS="random", MODEL_COMPILE="false",
                                         TORCH_THREADS=1, LOG_FORMAT="json"),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "runtime ready" in result.stderr


@pytest.mark.parametrize("dockerfile", ["web.Dockerfile", "worker.Dockerfile"])
def test_base_image_and_extra_authority_are_build_arguments_defaulting_to_public(dockerfile):
    """A user behind a registry mirror names another base image; one behind a
    TLS-intercepting proxy hands its authority in; without either, the public image."""
    text = (DOCKER / dockerfile).read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    froms = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert froms[0] == "${PYTHON_IMAGE}"
    assert all(image in ("${PYTHON_IMAGE}", "base", "build", "build-flower", "runtime")
               for image in froms), froms  # no public image named past the argument
    base = stages(DOCKER / dockerfile)["base"]
    assert 'ARG EXTRA_CA_CERTS=""' in base and "update-ca-certificates" in base
    assert "PIP_CERT=/etc/ssl/certs/ca-certificates.crt" in base


def test_the_worker_build_names_its_indexes_and_weights_as_arguments():
    build = stages(DOCKER / "worker.Dockerfile")["build"]
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in build
    assert "ARG PYPI_INDEX_URL=https://pypi.org/simple" in build
    assert '--index-url "$TORCH_INDEX_URL"' in build
    assert "ARG MODEL_WEIGHTS=imagenet" in build
    final = stages(DOCKER / "worker.Dockerfile")["final"]
    assert "ARG MODEL_WEIGHTS=imagenet" in final and "ENV MODEL_WEIGHTS=$MODEL_WEIGHTS" in final
