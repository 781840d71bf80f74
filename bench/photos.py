"""Real photographs for the benchmark and the tests, made in memory from
scikit-image's sample data (no files, no network)."""

from __future__ import annotations

import io

from PIL import Image
from skimage import data

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)())


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()
