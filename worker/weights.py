"""Where the model's weights come from (`MODEL_WEIGHTS`), checked before the worker
takes any job so that a missing file stops it with a message that says what to do.

No torch here (a worker on the OpenVINO engine never imports it): torchvision's
URL and name for IMAGENET1K_V2 and torch.hub's cache layout are restated, and
`tests/worker/test_model.py` checks them against torch's own."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

IMAGENET_NAME = "IMAGENET1K_V2"
IMAGENET_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
# Random weights come from a fixed seed, so that every worker process (and every
# model cache) agrees on them.
RANDOM_SEED = 0


class WeightsUnavailable(RuntimeError):
    """The configured weights cannot be had; the message says how to fix it."""


@dataclass(frozen=True)
class WeightsSource:
    """A resolved `MODEL_WEIGHTS`: `path` is None for random weights."""

    name: str
    path: Path | None

    @property
    def is_random(self) -> bool:
        return self.path is None


def weights_identity(source: WeightsSource) -> str:
    """What model caches are keyed by: the weights file's SHA-256, or the seed."""
    from worker.artefacts import file_digest

    return f"random-seed-{RANDOM_SEED}" if source.is_random else file_digest(source.path)


def hub_dir() -> Path:
    """torch.hub's cache: `$TORCH_HOME/hub`, `TORCH_HOME` defaulting to
    `$XDG_CACHE_HOME/torch` and that to `~/.cache/torch` (as `torch.hub.get_dir`)."""
    cache = os.getenv("XDG_CACHE_HOME", "~/.cache")
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def imagenet_cache_path() -> Path:
    """Where torchvision keeps IMAGENET1K_V2 (under `TORCH_HOME`)."""
    return hub_dir() / "checkpoints" / os.path.basename(IMAGENET_URL)


def resolve_weights(setting: str, *, download: bool = True) -> WeightsSource:
    """Turn `MODEL_WEIGHTS` into a file on disk, downloading torchvision's weights
    into the cache when they are missing and `download` is set."""
    if setting == "random":
        return WeightsSource(name="random", path=None)
    if setting != "imagenet":
        path = Path(setting)
        if not path.is_file():
            raise WeightsUnavailable(f"MODEL_WEIGHTS={setting!r}: no such file")
        return WeightsSource(name=path.name, path=path)

    target = imagenet_cache_path()
    if target.is_file():
        return WeightsSource(name=IMAGENET_NAME, path=target)
    if download:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            from torch.hub import download_url_to_file

            download_url_to_file(IMAGENET_URL, str(target), progress=False)
        except Exception as error:  # no network, proxy refused, disk full, ...
            target.unlink(missing_ok=True)
            raise WeightsUnavailable(_how_to_fix(target, error)) from None
        return WeightsSource(name=IMAGENET_NAME, path=target)
    raise WeightsUnavailable(_how_to_fix(target, None))


def _how_to_fix(target: Path, error: Exception | None) -> str:
    reason = f" (download failed: {error})" if error else ""
    return (
        f"the ResNet50 IMAGENET1K_V2 weights are not in {target}{reason}.\n"
        "Fix it in one of these ways:\n"
        f"  * run once with network access (they are downloaded to {target}),\n"
        f"  * copy the file {os.path.basename(IMAGENET_URL)} there, or set TORCH_HOME to a "
        "folder whose hub/checkpoints/ holds it,\n"
        "  * set MODEL_WEIGHTS to the path of a ResNet50 state_dict file,\n"
        "  * or set MODEL_WEIGHTS=random for a demo with untrained weights."
    )
