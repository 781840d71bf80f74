"""Real images for the tests, made in memory: photos from scikit-image and
synthetic images in every mode resq must accept."""

from __future__ import annotations

from PIL import Image

# The photographs come from bench/ (the benchmark uses them too); re-exported here.
from bench.photos import PHOTOS, encode, photo  # noqa: F401


def jpeg(width: int = 320, height: int = 240, name: str = "chelsea") -> bytes:
    return encode(photo(name).convert("RGB").resize((width, height)), "JPEG", quality=90)


def png(image: Image.Image) -> bytes:
    return encode(image, "PNG")
