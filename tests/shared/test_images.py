import pytest
from PIL import Image

from shared.errors import BadImage, ImageTooLarge, UnsupportedImageFormat
from shared.images import inspect_image
from tests.support.images import encode, jpeg


def test_reads_format_and_size_from_the_header():
    info = inspect_image(jpeg(320, 240), max_pixels=10**6)
    assert (info.format, info.width, info.height) == ("JPEG", 320, 240)


def test_pixel_limit_is_checked_before_decoding():
    # 20000 x 20000 in a few kilobytes: a decompression bomb.
    bomb = encode(Image.new("1", (20000, 20000)), "PNG")
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLarge):
        inspect_image(bomb, max_pixels=40_000_000)


def test_limit_is_the_setting():
    with pytest.raises(ImageTooLarge, match="limit of 76799 pixels"):
        inspect_image(jpeg(320, 240), max_pixels=320 * 240 - 1)


@pytest.mark.parametrize("data", [b"hello world", b"<html></html>", b"%PDF-1.4\n",
                                  b"<svg xmlns='http://www.w3.org/2000/svg'/>"])
def test_non_images_are_refused(data):
    with pytest.raises(UnsupportedImageFormat):
        inspect_image(data, max_pixels=10**6)


def test_formats_outside_the_list_are_not_opened():
    eps_like = encode(Image.new("RGB", (8, 8)), "PPM")  # Pillow reads PPM; resq does not
    with pytest.raises(UnsupportedImageFormat):
        inspect_image(eps_like, max_pixels=10**6)


def test_empty_body():
    with pytest.raises(BadImage, match="empty"):
        inspect_image(b"", max_pixels=10**6)


def sixteen_bit_png(width: int, height: int) -> bytes:
    return encode(Image.new("I;16", (width, height), 4000), "PNG")


def test_decode_cost_is_checked_from_the_header_by_mode():
    # Same pixels, two modes: a 16-bit grey image costs about 12 bytes a pixel to
    # decode, an RGB one about 9; a limit between the two refuses only the first.
    width, height = 1000, 1000
    limit = 10 * width * height
    assert inspect_image(jpeg(width, height), 10**8, max_decode_bytes=limit).mode == "RGB"
    with pytest.raises(ImageTooLarge, match="mode I;16: decoding it takes about 11 MiB"):
        inspect_image(sixteen_bit_png(width, height), 10**8, max_decode_bytes=limit)


def test_every_accepted_mode_has_a_measured_cost():
    from PIL import Image

    from shared.images import DECODE_BYTES_PER_PIXEL, decode_cost

    for mode in ("1", "L", "P", "RGB", "RGBA", "LA", "I;16", "I", "F", "CMYK"):
        assert mode in DECODE_BYTES_PER_PIXEL
    unlisted = Image.new("HSV", (1, 1))  # a mode the table does not name: the worst figure
    assert decode_cost(unlisted, 10) == 10 * max(DECODE_BYTES_PER_PIXEL.values())
    palette = Image.new("P", (1, 1))
    assert decode_cost(palette, 10) == 10 * DECODE_BYTES_PER_PIXEL["P"]
    palette.info["transparency"] = 0  # decoded through RGBA: charged as such
    assert decode_cost(palette, 10) == 10 * DECODE_BYTES_PER_PIXEL["P+transparency"]
