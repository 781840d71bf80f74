"""Image bytes → the 224×224 RGB crop ResNet50 sees, as uint8 (height, width, 3).

Matches torchvision's reference transforms for IMAGENET1K_V2 (resize the shorter
side to 232 with antialiased bilinear, center-crop 224, ImageNet mean/std), after
applying the EXIF orientation and converting any mode to RGB. Decoding, resizing
and cropping happen here, in the job threads; the normalisation (mean/std, layout)
is the engine's: OpenVINO's graph does it, the torch engine calls `normalise` on
the batch. The parity test (`tests/worker/test_preprocess.py`) states the tolerance.
No torch here: a worker on the OpenVINO engine never imports it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from shared.errors import BadImage
from shared.images import open_image

# Part of the model's identity (the result cache's key): raise it whenever what this
# module hands the model for the same bytes changes.
PREPROCESS_VERSION = "1"
RESIZE_SIZE = 232
CROP_SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

_HIGH_DEPTH_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_BACKGROUND = (255, 255, 255)


# JPEGs are decoded at a reduced DCT scale (1/2, 1/4, 1/8) while the shorter side
# stays at least twice the resize target, so the antialiased resize that follows
# still sees twice the pixels it keeps: several times less decoding for a large
# photo, within the parity test's tolerance.
DRAFT_MIN_SIDE = 2 * RESIZE_SIZE


def decode(data: bytes, max_pixels: int, *, max_decode_bytes: int | None = None,
           draft: bool = True) -> Image.Image:
    """Decode the first frame of an accepted image, upright and in RGB. The web tier
    checked the same limits; they are checked again here, before any pixel."""
    image = open_image(data, max_pixels, max_decode_bytes)
    try:
        if draft and image.format == "JPEG" and image.mode in ("RGB", "L"):
            image.draft(image.mode, (DRAFT_MIN_SIDE, DRAFT_MIN_SIDE))
        image.load()
        image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except BadImage:
        raise
    except Exception as error:  # truncated or corrupt data: Pillow raises many kinds
        raise BadImage(f"the image cannot be decoded: {error}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB. Transparent pixels are laid on white; 16-bit and float
    grey images are scaled to 8 bits by their range instead of being clipped."""
    if image.mode in _HIGH_DEPTH_MODES:
        image = _to_8bit_grey(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Laid on white in place, by its own alpha: no full-size RGBA temporaries.
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB") if image.mode != "RGB" else image


# High bit depths are scaled a band of rows at a time: the temporaries stay a few
# megabytes whatever the image's size (whole-image float64 arithmetic cost about
# 24 bytes a pixel: 1 GB for a 40-megapixel 16-bit PNG of 80 KB).
ROWS_PER_BAND = 256


def _to_8bit_grey(image: Image.Image) -> Image.Image:
    array = np.asarray(image)  # uint16 for I;16*, int32 for I, float32 for F
    if image.mode.startswith("I;16"):
        scale = 65535.0
    else:
        peak = float(array.max()) if array.size else 0.0
        scale = peak if peak > 255 else 255.0
    out = np.empty(array.shape, dtype=np.uint8)
    factor = np.float32(255.0 / scale)
    for top in range(0, array.shape[0], ROWS_PER_BAND):
        band = array[top:top + ROWS_PER_BAND].astype(np.float32)
        band *= factor
        np.clip(band, 0, 255, out=band)
        np.rint(band, out=band)
        out[top:top + ROWS_PER_BAND] = band
    return Image.fromarray(out)


def resized_size(width: int, height: int, short_side: int = RESIZE_SIZE) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to `short_side`, rounding as
    torchvision does."""
    if width <= height:
        return short_side, int(short_side * height / width)
    return int(short_side * width / height), short_side


def center_box(width: int, height: int, crop: int = CROP_SIZE) -> tuple[int, int, int, int]:
    top = int(round((height - crop) / 2.0))
    left = int(round((width - crop) / 2.0))
    return left, top, left + crop, top + crop


# Normalisation as one multiply-add per value: (x/255 - mean)/std = x*scale + shift.
_SCALE = (1.0 / (255.0 * np.asarray(STD, dtype=np.float32))).reshape(1, 3, 1, 1)
_SHIFT = (-np.asarray(MEAN, dtype=np.float32) / np.asarray(STD, dtype=np.float32)
          ).reshape(1, 3, 1, 1)
# The same in 8-bit terms, for engines that fold it into their graph:
# (x - mean*255) / (std*255).
MEAN_255 = tuple(m * 255.0 for m in MEAN)
STD_255 = tuple(s * 255.0 for s in STD)


def crop(image: Image.Image) -> np.ndarray:
    """An RGB image → uint8 224×224×3, resized and center-cropped."""
    resized = image.resize(resized_size(*image.size), Image.Resampling.BILINEAR)
    return np.asarray(resized.crop(center_box(*resized.size)), dtype=np.uint8)


def normalise(batch: np.ndarray) -> np.ndarray:
    """uint8 N×224×224×3 crops → float32 N×3×224×224, normalised as torchvision's
    transforms do (in NumPy: the job threads never enter torch's thread pool)."""
    planar = batch.transpose(0, 3, 1, 2).astype(np.float32)
    return np.ascontiguousarray(planar * _SCALE + _SHIFT, dtype=np.float32)


def preprocess(data: bytes, max_pixels: int, *, max_decode_bytes: int | None = None,
               draft: bool = True) -> np.ndarray:
    """Image bytes → the uint8 224×224×3 crop the model sees."""
    return crop(decode(data, max_pixels, max_decode_bytes=max_decode_bytes, draft=draft))
