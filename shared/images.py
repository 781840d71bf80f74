"""Image checks both tiers share: which formats are opened at all, and the size
limits, applied from the header before any pixel is decoded."""

from __future__ import annotations

import io
import warnings
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

# Our own pixel limit is checked explicitly; Pillow's is kept as a second net and its
# warning is turned into an error so a decompression bomb never decodes.
warnings.simplefilter("error", Image.DecompressionBombWarning)


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    mode: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open (not decode) `data` as one of the accepted formats and check its size.

    Raises `BadImage` for bytes that are not an accepted image and `ImageTooLarge`
    when width × height is over `max_pixels`.
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
    return image


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Check `data` from its header only and describe it."""
    image = open_image(data, max_pixels)
    return ImageInfo(format=image.format, width=image.width, height=image.height, mode=image.mode)
