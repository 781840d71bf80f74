"""ImageNet-1k class names in the model's output order (torchvision's
IMAGENET1K_V2 `categories`, kept here so that no engine needs torch to read them;
`tests/worker/test_engines.py` checks they are still torchvision's)."""

from __future__ import annotations

from pathlib import Path

IMAGENET_CLASSES: tuple[str, ...] = tuple(
    (Path(__file__).with_name("imagenet_classes.txt")).read_text().splitlines())
