"""Each image installs only its own pinned requirements file (docker/*.Dockerfile),
while the test virtualenv has them all: a module that imports a package its image
lacks passes every other test and fails only in the container. Here each tier's
modules are imported with only its image's distributions visible
(tests/support/image_imports.py). Caught: the worker image had no urllib3 (the
webhook sender) nor certifi (shared.pinned_http), so `python -m worker` died at
import in the container."""

import json
import subprocess
import sys

import pytest

from tests.support.processes import ROOT, base_env

# Modules of the worker package that need torch: the image's build stage
# (worker/prepare.py converts the model with them) and MODEL_ENGINE=torch, which the
# worker image does not offer. Everything else must import without torch.
TORCH_ONLY = {"worker.compiled", "worker.model", "worker.torch_engine"}

IMAGES = {
    # image: (requirements files its Dockerfile installs, packages it copies)
    "web": (["web.txt"], ["web", "shared"]),
    "flower": (["web.txt", "flower.txt"], ["shared"]),
    "worker": (["worker-runtime.txt"], ["worker", "shared"]),
}


def unimportable(requirements: list[str], packages: list[str]) -> dict[str, str]:
    files = ",".join(str(ROOT / "requirements" / name) for name in requirements)
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests/support/image_imports.py"), files, *packages],
        cwd=ROOT, env=base_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_every_module_imports_with_only_its_images_requirements(image):
    failed = unimportable(*IMAGES[image])
    expected = TORCH_ONLY if image == "worker" else set()
    assert set(failed) == expected, failed
    assert all("torch" in error for error in failed.values()), failed


def test_the_check_sees_a_missing_distribution():
    """The finder really hides what a file does not pin: with only common.txt, the
    web tier's Flask is missing."""
    failed = unimportable(["common.txt"], ["web"])
    assert "web.app" in failed and "flask" in failed["web.app"].lower(), failed
