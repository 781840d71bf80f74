"""Preprocessing against torchvision's reference transforms for IMAGENET1K_V2.

Tolerance, in 8-bit pixel levels (0-255) after undoing the normalisation:
mean absolute difference ≤ 0.5, 99th percentile ≤ 3, maximum ≤ 8. (A plain
resize is exact today; the margin is for faster decoders that must still agree.)
"""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import ResNet50_Weights

from shared.errors import BadImage
from tests.support.images import PHOTOS, encode, photo
from tests.support.model_inputs import as_tensor
from worker.preprocess import STD, decode, preprocess

REFERENCE = ResNet50_Weights.IMAGENET1K_V2.transforms()
MEAN_TOLERANCE, P99_TOLERANCE, MAX_TOLERANCE = 0.5, 3.0, 8.0
LIMIT = 100_000_000


def pixel_levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs() * torch.tensor(STD).view(3, 1, 1) * 255


def assert_within_tolerance(ours: torch.Tensor, reference: torch.Tensor):
    assert ours.shape == reference.shape == (3, 224, 224)
    diff = pixel_levels(ours, reference).flatten()
    assert float(diff.mean()) <= MEAN_TOLERANCE
    assert float(diff.quantile(0.99)) <= P99_TOLERANCE
    assert float(diff.max()) <= MAX_TOLERANCE


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("fmt,size", [("PNG", None), ("JPEG", (1600, 1200)), ("JPEG", (500, 375))])
def test_matches_torchvision_reference_on_real_photos(name, fmt, size):
    image = photo(name).convert("RGB")
    if size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    data = encode(image, fmt)
    reference = REFERENCE(Image.open(io.BytesIO(data)).convert("RGB"))
    crop = preprocess(data, LIMIT)
    assert crop.dtype == np.uint8 and crop.shape == (224, 224, 3)
    assert_within_tolerance(as_tensor(crop[None])[0], reference)


def test_a_different_image_is_outside_the_tolerance():
    # The check can fail: two different photos are far apart.
    a = as_tensor(preprocess(encode(photo("chelsea").convert("RGB"), "PNG"), LIMIT)[None])[0]
    b = REFERENCE(photo("coffee").convert("RGB"))
    with pytest.raises(AssertionError):
        assert_within_tolerance(a, b)


@pytest.mark.parametrize("orientation,transpose", [
    (3, Image.Transpose.ROTATE_180),
    (6, Image.Transpose.ROTATE_270),
    (8, Image.Transpose.ROTATE_90),
])
def test_exif_orientation_is_applied(orientation, transpose):
    upright = photo("rocket").convert("RGB")  # 640x427, not square
    inverse = {Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
               Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270}
    stored = upright.transpose(inverse.get(transpose, transpose))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    decoded = decode(data, LIMIT)
    assert decoded.size == upright.size
    difference = np.abs(np.asarray(decoded, dtype=float) - np.asarray(upright, dtype=float))
    assert difference.mean() < 4  # JPEG noise only; a wrong rotation is far above this


def _modes():
    rgb = photo("chelsea").convert("RGB").resize((300, 200))
    grey = rgb.convert("L")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette_transparent = palette.copy()
    palette_transparent.info["transparency"] = 0
    grey16 = Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)
    return {
        "L": (grey, "PNG"), "LA": (grey.convert("LA"), "PNG"), "P": (palette, "PNG"),
        "P-transparent": (palette_transparent, "PNG"), "RGBA": (rgba, "PNG"),
        "CMYK": (rgb.convert("CMYK"), "JPEG"), "I;16": (grey16, "PNG"),
        "GIF": (palette, "GIF"), "WEBP": (rgb, "WEBP"), "BMP": (rgb, "BMP"), "TIFF": (rgb, "TIFF"),
    }


@pytest.mark.parametrize("mode", list(_modes()))
def test_every_mode_becomes_rgb(mode):
    image, fmt = _modes()[mode]
    decoded = decode(encode(image, fmt), LIMIT)
    assert decoded.mode == "RGB" and decoded.size == image.size
    assert preprocess(encode(image, fmt), LIMIT).shape == (224, 224, 3)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    level = 32768  # mid-grey in 16 bits
    image = Image.fromarray(np.full((64, 64), level, dtype=np.uint16))
    decoded = decode(encode(image, "PNG"), LIMIT)
    assert np.asarray(decoded)[0, 0].tolist() == [128, 128, 128]


def test_transparency_is_laid_on_white():
    clear = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    assert np.asarray(decode(encode(clear, "PNG"), LIMIT))[0, 0].tolist() == [255, 255, 255]


def test_truncated_jpeg_is_a_bad_image():
    data = encode(photo("coffee").convert("RGB"), "JPEG")
    with pytest.raises(BadImage, match="cannot be decoded"):
        decode(data[: len(data) // 2], LIMIT)
