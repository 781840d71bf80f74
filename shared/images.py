"""Image checks both tiers share: which formats are opened at all, and the size
limits (pixels, and the memory decoding them costs), applied from the header before
any pixel is decoded."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from shared.errors import BadImage, ImageTooLarge, UnsupportedImageFormat

# Pillow identifies formats by trying plugins; naming them keeps every other decoder
# (EPS, PSD, ICNS, ...) closed to strangers' bytes.
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
ACCEPTED_MEDIA_TYPES: frozenset[str] = frozenset(
    {"image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp", "image/gif",
     "image/bmp", "image/x-ms-bmp", "image/tiff"}
)

# Our own pixel limit is checked explicitly; Pillow's is kept as a second net, its
# warning turned into an error by each tier's entry point
# (`shared.patches.refuse_decompression_bombs`).


# Peak bytes a pixel that decoding an image of each mode to RGB costs a worker,
# measured in a fresh process per mode (`tests/worker/test_decode_memory.py` checks
# each entry against a real decode): Pillow's storage, the conversion's temporaries
# and the banded float32 scaling of high bit depths. Modes not listed get the
# largest figure. A palette with a transparent entry is decoded through RGBA and laid
# on white ("P+transparency", measured 10.2).
DECODE_BYTES_PER_PIXEL: dict[str, int] = {
    "1": 6, "L": 6, "P": 6, "P+transparency": 11, "RGB": 9, "YCbCr": 9, "CMYK": 10,
    "RGBA": 10, "RGBa": 10,
    "PA": 14, "LA": 14, "La": 14, "I;16": 12, "I;16L": 12, "I;16B": 12, "I;16N": 12,
    "I": 14, "F": 14,
}
WORST_DECODE_BYTES_PER_PIXEL = max(DECODE_BYTES_PER_PIXEL.values())


def decode_cost(image: Image.Image, pixels: int) -> int:
    """Peak bytes decoding `pixels` pixels of `image` costs, by its mode (see the table
    above), from its header alone."""
    kind = image.mode
    if kind == "P" and "transparency" in image.info:
        kind = "P+transparency"
    return pixels * DECODE_BYTES_PER_PIXEL.get(kind, WORST_DECODE_BYTES_PER_PIXEL)


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    mode: str


def open_image(data: bytes, max_pixels: int, max_decode_bytes: int | None = None
               ) -> Image.Image:
    """Open (not decode) `data` as one of the accepted formats and check its size.

    Raises `BadImage` for bytes that are not an accepted image and `ImageTooLarge`
    when width × height is over `max_pixels` or, with `max_decode_bytes`, when
    decoding its pixels in its mode would cost more than that many bytes.
    """
    if not data:
        raise BadImage("the image is empty")
    Image.MAX_IMAGE_PIXELS = max_pixels  # same value in every call of a process
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise UnsupportedImageFormat(
            "not an image in an accepted format (" + ", ".join(ACCEPTED_FORMATS) + ")"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(f"the image has more than the limit of {max_pixels} pixels") from None
    except Exception as error:  # a malformed header: Pillow raises many kinds
        raise BadImage(f"the image header cannot be read: {error}") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise BadImage("the image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels; "
            f"the limit is {max_pixels} pixels"
        )
    cost = decode_cost(image, width * height)
    if max_decode_bytes is not None and cost > max_decode_bytes:
        raise ImageTooLarge(
            f"the image is {width}x{height} in mode {image.mode}: decoding it takes about "
            f"{cost // 2**20} MiB; the limit is {max_decode_bytes // 2**20} MiB "
            f"(fewer pixels, or 8 bits a channel, fit)"
        )
    return image


def inspect_image(data: bytes, max_pixels: int, max_decode_bytes: int | None = None
                  ) -> ImageInfo:
    """Check `data` from its header only and describe it."""
    image = open_image(data, max_pixels, max_decode_bytes)
    return ImageInfo(format=image.format, width=image.width, height=image.height, mode=image.mode)
