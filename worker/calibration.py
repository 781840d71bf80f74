"""The images int8 quantization is calibrated on, and the quantization itself (NNCF
post-training quantization of the OpenVINO model).

Post-training quantization picks each layer's int8 range from the activations it
sees on sample inputs, so the samples should look like what the service will
classify: `CALIBRATION_DIR` (a few hundred of your own images). Without it, the
small public-domain set in `worker/calibration/` (SOURCES.md says what it is) is
used. Fewer images than `SAMPLES` are stretched with random crops and flips
(seeded: the same set gives the same model), as NNCF's default subset is 300.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from worker.artefacts import file_digest
from worker.preprocess import CROP_SIZE, crop, decode

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).with_name("calibration")
SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
SAMPLES = 300
SEED = 0
MAX_PIXELS = 40_000_000  # images read from a folder (calibration, check-precision)


class CalibrationError(ValueError):
    """No usable calibration images."""


@dataclass(frozen=True)
class CalibrationSet:
    files: tuple[Path, ...]

    @classmethod
    def from_setting(cls, directory: Path | None) -> CalibrationSet:
        folder = DEFAULT_DIR if directory is None else Path(directory)
        if not folder.is_dir():
            raise CalibrationError(f"CALIBRATION_DIR={folder}: no such directory")
        files = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES))
        if not files:
            raise CalibrationError(f"CALIBRATION_DIR={folder}: no images in it "
                                   f"({', '.join(sorted(SUFFIXES))})")
        return cls(files)

    @property
    def identity(self) -> str:
        """Changes with any image's name or bytes (the int8 model's cache key)."""
        parts = "|".join(f"{p.name}:{file_digest(p)}" for p in self.files)
        return hashlib.sha256(parts.encode()).hexdigest()[:16]

    def samples(self, count: int = SAMPLES) -> list[np.ndarray]:
        """`count` uint8 1×224×224×3 inputs: every image's standard crop, then random
        crops and flips of them until there are `count` (or the first `count`
        images' crops, when there are that many)."""
        images = []
        for path in self.files[:count]:
            try:
                images.append(decode(path.read_bytes(), MAX_PIXELS))
            except Exception as error:  # one bad file does not spoil the set
                log.warning("calibration image %s skipped: %s", path.name, error)
        if not images:
            raise CalibrationError("none of the calibration images could be decoded")
        samples = [crop(image) for image in images]
        rng = random.Random(SEED)
        while len(samples) < count:
            samples.append(_random_view(rng.choice(images), rng))
        return [sample[None] for sample in samples[:count]]


def _random_view(image: Image.Image, rng: random.Random) -> np.ndarray:
    """A random square of 35-100 % of the shorter side, resized to 224, maybe mirrored."""
    side = int(min(image.size) * rng.uniform(0.35, 1.0))
    left = rng.randint(0, image.width - side)
    top = rng.randint(0, image.height - side)
    view = image.crop((left, top, left + side, top + side)).resize(
        (CROP_SIZE, CROP_SIZE), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        view = ImageOps.mirror(view)
    return np.asarray(view, dtype=np.uint8)


def quantize(model, calibration: CalibrationSet, count: int = SAMPLES):
    """The OpenVINO `model` quantized to int8 by NNCF on the calibration samples."""
    import nncf

    samples = calibration.samples(count)
    log.info("quantizing to int8 on %d samples from %d images", len(samples),
             len(calibration.files))
    return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                         preset=nncf.QuantizationPreset.PERFORMANCE)
