"""Realistic JPEGs: scikit-image's photos at camera-like sizes and quality."""

from __future__ import annotations

from PIL import Image

from bench.photos import PHOTOS, encode, photo

SIZES = {"1600x1200": (1600, 1200), "500x375": (500, 375), "4000x3000": (4000, 3000)}


def jpegs(size: str, count: int = len(PHOTOS)) -> list[bytes]:
    width, height = SIZES[size]
    images = []
    for index in range(count):
        source = photo(PHOTOS[index % len(PHOTOS)]).convert("RGB")
        # A different crop per copy, so no two uploads are the same bytes.
        offset = index // len(PHOTOS)
        source = source.crop((offset, offset, source.width - offset, source.height - offset))
        images.append(encode(source.resize((width, height), Image.Resampling.BICUBIC),
                             "JPEG", quality=90))
    return images
