"""Real images for the tests, made in memory: photos from scikit-image and
synthetic images in every mode resq must accept."""

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


def jpeg(width: int = 320, height: int = 240, name: str = "chelsea") -> bytes:
    return encode(photo(name).convert("RGB").resize((width, height)), "JPEG", quality=90)


def png(image: Image.Image) -> bytes:
    return encode(image, "PNG")
