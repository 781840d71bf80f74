"""The client installs alone: `pip install .[client]` into an empty virtualenv gives
a `resq` command that submits an image to a real server and prints its result, with
none of the server tiers' dependencies (pyproject.toml's extras; requirements/ is the
lock the images use). pip reaches the package index as a user's would."""

import json
import shutil
import subprocess
import sys

import pytest

from bench.stack import ROOT, base_env
from tests.support.images import jpeg

pytestmark = pytest.mark.processes

# What the wheel is built from (pyproject.toml's packages), copied so that the build
# leaves nothing in the working tree.
SOURCES = ["pyproject.toml", "resq_client", "shared", "web", "worker", "bench"]
SERVER_ONLY = {"flask", "celery", "gunicorn", "redis", "pydantic", "pillow", "openvino",
               "torch", "numpy"}


def test_pip_install_client_gives_a_working_resq_and_nothing_else(http_service, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "results"))
        else:
            shutil.copy2(ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin/pip"), "install", "--quiet", f"{source}[client]"],
        capture_output=True, text=True, timeout=600, env=base_env())
    assert installed.returncode == 0, installed.stderr[-3000:]

    listed = subprocess.run([str(venv / "bin/pip"), "list", "--format", "json"],
                            capture_output=True, text=True, check=True, timeout=120)
    names = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert "requests" in names and "resq" in names
    assert not names & SERVER_ONLY, names & SERVER_ONLY

    image = tmp_path / "cat.jpg"
    image.write_bytes(jpeg())
    done = subprocess.run([str(venv / "bin/resq"), "--url", http_service, "--json",
                           "submit", str(image), "--wait", "60"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path,
                          env=base_env())
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout.splitlines()[-1])
    assert job["status"] == "succeeded" and job["result"]["predictions"], job
