"""Each image installs only its own pinned requirements file (docker/*.Dockerfile),
while the test virtualenv has them all: a module that imports a package its image
lacks passes every other test and fails only in the container. Here each tier's
modules are imported with only its image's distributions visible
(tests/support/image_imports.py). Caught: the worker image had no urllib3 (the
webhook sender) nor certifi (shared.pinned_http), so `python -m worker` died at
import in the container, and then no `packaging` (kombu's redis transport)."""

import json
import subprocess
import sys

import pytest

from bench.stack import ROOT, base_env

# Modules of the worker package that need torch: the image's build stage
# (worker/bake.py converts the model with them) and MODEL_ENGINE=torch, which the
# worker image does not offer. Everything else must import without torch.
TORCH_ONLY = {"worker.compiled", "worker.model", "worker.torch_engine"}
# Flower's entry module (`celery -A shared.flower_app flower`), run by the Flower image
# only: it puts Flower's /metrics behind auth as it loads (shared/patches.py).
FLOWER_ONLY = {"shared.flower_app"}

# What the processes import only when they run, by a name in their configuration:
# Celery's transport and result backend (from REDIS_URL), its pool, gunicorn's
# worker class. Caught: kombu's redis transport needs `packaging`, which only the web
# image had, so the worker image died as Celery connected.
CELERY = ["kombu.transport.redis", "celery.backends.redis"]
IMAGES = {
    # image: (requirements files its Dockerfile installs, packages it copies,
    #         modules loaded by name at run time)
    "web": (["web.txt"], ["web", "shared"], [*CELERY, "gunicorn.workers.gthread"]),
    "flower": (["web.txt", "flower.txt"], ["shared"], [*CELERY, "flower.command"]),
    "worker": (["worker-runtime.txt"], ["worker", "shared"],
               [*CELERY, "celery.concurrency.thread", "openvino"]),
}


def unimportable(requirements: list[str], packages: list[str],
                 modules: list[str] = ()) -> dict[str, str]:
    files = ",".join(str(ROOT / "requirements" / name) for name in requirements)
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests/support/image_imports.py"), files, *packages,
         "--", *modules],
        cwd=ROOT, env=base_env(PYTHONPATH=str(ROOT)), capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_every_module_imports_with_only_its_images_requirements(image):
    failed = unimportable(*IMAGES[image])
    expected = {"web": FLOWER_ONLY, "worker": TORCH_ONLY | FLOWER_ONLY, "flower": set()}[image]
    assert set(failed) == expected, failed
    assert all(("flower" if module in FLOWER_ONLY else "torch") in error
               for module, error in failed.items()), failed


def test_the_check_sees_a_missing_distribution():
    """The finder really hides what a file does not pin: with only common.txt, the
    web tier's Flask is missing."""
    failed = unimportable(["common.txt"], ["web"])
    assert "web.app" in failed and "flask" in failed["web.app"].lower(), failed
