"""Decoding costs memory in proportion to an image's pixels, with a small constant
per mode, never whole-image float64 temporaries: peak RSS of a fresh process that
decodes a 4-megapixel image of each mode (a real PNG or TIFF), per pixel. A
16-bit PNG used to peak at 26 bytes a pixel (1 GB at the 40-megapixel cap, from an
80 KB upload); an RGBA one at 20."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from bench.stack import ROOT, base_env
from shared.images import decode_cost

pytestmark = pytest.mark.processes

SIDE = 2000
# The old float64 path cost 26-29 bytes a pixel; each mode's measured peak must stay
# within the figure admission charges for it (`shared.images.DECODE_BYTES_PER_PIXEL`).

MEASURE = """
import resource, sys
import torch  # noqa: F401  (in the baseline, as in a worker)
from worker.preprocess import decode
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = decode(data, 10**9)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024 / (image.size[0] * image.size[1]))
"""


def images():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)
    rgb = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    return {
        "L": (Image.fromarray(grey), "PNG"),
        "RGB": (Image.fromarray(rgb), "PNG"),
        "RGBA": (Image.fromarray(np.dstack([rgb, grey])), "PNG"),
        "LA": (Image.fromarray(np.dstack([grey, grey])[:, :, :2].copy(), "LA"), "PNG"),
        "P": (Image.fromarray(rgb).convert("P"), "PNG"),
        # A palette with a transparent entry: decoded through RGBA, laid on white.
        "P+transparency": (transparent_palette(rgb), "PNG"),
        "I;16": (Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),
        "I": (Image.fromarray(grey.astype(np.int32) * 1000), "TIFF"),
        "F": (Image.fromarray(grey.astype(np.float32) * 3.5), "TIFF"),
        "CMYK": (Image.fromarray(rgb).convert("CMYK"), "TIFF"),
    }


def transparent_palette(rgb) -> Image.Image:
    image = Image.fromarray(rgb).convert("P")
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize("mode", list(images()))
def test_peak_memory_of_a_decode_per_pixel(mode, tmp_path):
    image, fmt = images()[mode]
    path = tmp_path / f"image.{fmt.lower()}"
    image.save(path, fmt, **({"transparency": 0} if "transparency" in mode else {}))
    stored = Image.open(path)
    assert stored.mode == mode.split("+")[0]  # the mode under test is what was stored
    assert ("transparency" in stored.info) == ("transparency" in mode)
    charged = decode_cost(stored, 1)  # what admission charges it a pixel
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], cwd=ROOT,
                          env=base_env(PYTHONPATH=ROOT), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    per_pixel = float(done.stdout.strip())
    print(f"\n{mode}: {per_pixel:.1f} bytes a pixel at peak "
          f"({per_pixel * 40e6 / 2**30:.2f} GiB at the 40-megapixel cap)")
    assert per_pixel <= charged, f"{mode}: {per_pixel:.1f} bytes a pixel, charged {charged}"
