"""The hostile and odd inputs of tests/test_hostile_input.py, generated here: each
a `Case` that sends one request to a real server and says what must come back."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from PIL import Image

from tests.support.images import encode, jpeg, photo

# What a case must produce: an HTTP error (status, code), or an accepted job that
# ends `succeeded`, or an accepted job that ends failed with `code`.
SUCCEEDED = ("job", "succeeded")


def failed(code: str) -> tuple[str, str]:
    return ("job", f"failed:{code}")


@dataclass
class Case:
    name: str
    send: Callable[[str], requests.Response]
    expect: tuple = SUCCEEDED
    # Some inputs may be refused up front or fail as a job, both correctly.
    also: tuple = field(default=())


def post(body: bytes, content_type: str | None = "image/jpeg", path: str = "/jobs",
         headers: dict | None = None):
    hdrs = dict(headers or {})
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    return lambda base: requests.post(base + path, data=body, headers=hdrs, timeout=60)


def multipart(files: list[tuple[str, bytes]], fields: dict | None = None):
    """A multipart/form-data body (form fields as parts too, so that a body with
    no file is still multipart)."""
    parts = [(name, ("x.jpg", data, "image/jpeg")) for name, data in files]
    parts += [(name, (None, value)) for name, value in (fields or {}).items()]
    return lambda base: requests.post(base + "/jobs", files=parts, timeout=60)


# --- crafted files ----------------------------------------------------------------
def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG header that declares width × height pixels, with a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024, 9)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def gif_bomb(width: int = 65_535, height: int = 65_535) -> bytes:
    """A GIF whose screen and only frame declare width × height pixels."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return header + frame + b"\x02\x02\x44\x01\x00;"


def corrupt_png_crc() -> bytes:
    data = bytearray(encode(photo("coffee").resize((64, 48)), "PNG"))
    idat = data.find(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    data[idat + 4 + length] ^= 0xFF  # first byte of the IDAT CRC
    return bytes(data)


def corrupt_png_data() -> bytes:
    data = bytearray(encode(photo("coffee").resize((64, 48)), "PNG"))
    idat = data.find(b"IDAT")
    for i in range(idat + 10, idat + 40):
        data[i] ^= 0x5A
    return bytes(data)


def exif_rotated() -> bytes:
    image = photo("chelsea").resize((120, 80))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    return encode(image, "JPEG", exif=exif.tobytes())


def multi_frame_gif() -> bytes:
    frames = [Image.new("RGB", (64, 48), color) for color in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buffer.getvalue()


def palette_with_transparency() -> bytes:
    image = Image.new("P", (64, 48), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (16, 16, 48, 32))
    return encode(image, "PNG", transparency=0)


def sixteen_bit_png() -> bytes:
    image = Image.new("I;16", (64, 48))
    image.putdata([i * 97 % 65536 for i in range(64 * 48)])
    return encode(image, "PNG")


def long_header_request(path: str, header_bytes: int, count: int = 1):
    headers = {f"X-Filler-{i}": "a" * header_bytes for i in range(count)}
    return lambda base: requests.get(base + path, headers=headers, timeout=30)


def chunked(body: bytes, piece: int = 64 * 1024):
    def pieces():
        for start in range(0, len(body), piece):
            yield body[start:start + piece]

    return lambda base: requests.post(base + "/jobs", data=pieces(), timeout=60,
                                      headers={"Content-Type": "image/jpeg"})


SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="48">'
       b'<rect width="64" height="48" fill="red"/></svg>')
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def corpus(max_upload_bytes: int) -> list[Case]:
    good = jpeg(160, 120)
    whole = jpeg(640, 480)
    over = max_upload_bytes + 1024
    return [
        # not images, or not ones resq opens
        Case("empty body", post(b""), (400, "bad_image")),
        Case("text as image/jpeg", post(b"hello, world\n" * 10), (400, "unsupported_image_format")),
        Case("html", post(b"<html><body>hi</body></html>", "text/html"),
             (415, "unsupported_media_type")),
        Case("random bytes", post(bytes(range(256)) * 64), (400, "unsupported_image_format")),
        Case("svg", post(SVG, "image/svg+xml"), (415, "unsupported_media_type")),
        Case("svg as image/png", post(SVG, "image/png"), (400, "unsupported_image_format")),
        Case("pdf", post(PDF, "application/pdf"), (415, "unsupported_media_type")),
        Case("pdf as image/jpeg", post(PDF), (400, "unsupported_image_format")),
        Case("no content type", post(good, None), (415, "unsupported_media_type")),
        Case("jpeg as octet-stream", post(good, "application/octet-stream"),
             (415, "unsupported_media_type")),
        # broken images
        Case("truncated jpeg", post(whole[: len(whole) // 3]), failed("bad_image")),
        Case("jpeg header only", post(whole[:20]), (400, "bad_image"),
             also=((400, "unsupported_image_format"),)),
        # Pillow does not check IDAT checksums: intact pixels behind a bad CRC decode.
        Case("png with a bad CRC", post(corrupt_png_crc(), "image/png"), SUCCEEDED,
             also=((400, "bad_image"), failed("bad_image"))),
        Case("png with corrupt pixel data", post(corrupt_png_data(), "image/png"),
             failed("bad_image"), also=((400, "bad_image"),)),
        # decompression bombs: huge dimensions in a tiny file
        Case("png bomb 100000x100000", post(png_bomb(), "image/png"), (413, "image_too_large")),
        Case("gif bomb 65535x65535", post(gif_bomb(), "image/gif"), (413, "image_too_large")),
        Case("png just over the pixel limit", post(png_bomb(7000, 6000), "image/png"),
             (413, "image_too_large")),
        # odd but valid images
        Case("multi-frame gif", post(multi_frame_gif(), "image/gif")),
        Case("16-bit png", post(sixteen_bit_png(), "image/png")),
        Case("cmyk jpeg", post(encode(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "JPEG"))),
        Case("palette png with transparency", post(palette_with_transparency(), "image/png")),
        Case("rgba png",
             post(encode(Image.new("RGBA", (64, 48), (0, 0, 255, 10)), "PNG"), "image/png")),
        Case("exif-rotated jpeg", post(exif_rotated())),
        Case("1x1", post(encode(Image.new("RGB", (1, 1), "white"), "PNG"), "image/png")),
        Case("10000x10", post(encode(Image.new("RGB", (10000, 10), "white"), "PNG"), "image/png")),
        Case("10x10000", post(encode(Image.new("L", (10, 10000), 128), "PNG"), "image/png")),
        Case("jpeg sent as image/png", post(good, "image/png")),
        Case("largest accepted image, 6300x6300",
             post(encode(Image.new("RGB", (6300, 6300), "white"), "PNG"), "image/png")),
        # bodies and forms
        Case("body over the limit", post(b"\xff\xd8" + b"\0" * over), (413, "payload_too_large")),
        Case("chunked body over the limit, no Content-Length",
             chunked(b"\xff\xd8" + b"\0" * over), (413, "payload_too_large")),
        Case("chunked jpeg", chunked(whole)),
        Case("multipart with no file", multipart([], {"top_k": "3"}), (422, "invalid_field")),
        Case("multipart file under another name", multipart([("file", good)]),
             (422, "invalid_field")),
        Case("multipart with two images (two jobs)", multipart([("image", good), ("image", good)])),
        Case("multipart with 33 images", multipart([("image", good)] * 33), (422, "invalid_field")),
        Case("multipart with 2000 parts", multipart([("image", good)],
                                                    {f"f{i}": "x" for i in range(2000)}),
             (413, "payload_too_large")),
        Case("multipart with a broken body",
             post(b"--xyz\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc",
                  "multipart/form-data; boundary=xyz"), (422, "invalid_field")),
        # JSON and fields
        Case("malformed json", post(b'{"url": ', "application/json"), (400, "bad_request")),
        Case("json that is not utf-8", post(b'{"url": "\xff\xfe"}', "application/json"),
             (400, "bad_request")),
        Case("json array", post(b"[1, 2]", "application/json"), (422, "invalid_field")),
        Case("url of the wrong type", post(json.dumps({"url": 5}).encode(), "application/json"),
             (422, "invalid_field")),
        Case("top_k of the wrong type", post(good, path="/jobs?top_k=many"),
             (422, "invalid_field")),
        Case("top_k 0", post(good, path="/jobs?top_k=0"), (422, "invalid_field")),
        Case("top_k too large", post(good, path="/jobs?top_k=1001"), (422, "invalid_field")),
        Case("negative wait", post(good, path="/jobs?wait=-1"), (422, "invalid_field")),
        Case("url longer than 2048", post(json.dumps({"url": "http://a.example/" + "a" * 3000})
                                          .encode(), "application/json"), (400, "bad_url")),
        # HTTP limits (answered by gunicorn, in JSON too)
        Case("request line of 10000 characters",
             lambda base: requests.get(base + "/jobs/" + "a" * 10_000, timeout=30),
             (414, "uri_too_long")),
        Case("header of 10000 characters", long_header_request("/healthz", 10_000),
             (431, "request_header_fields_too_large"), also=((400, "bad_request"),)),
        Case("150 headers", long_header_request("/healthz", 10, count=150),
             (431, "request_header_fields_too_large"), also=((400, "bad_request"),)),
        Case("path traversal in a job id",
             lambda base: requests.get(base + "/jobs/..%2F..%2Fetc%2Fpasswd", timeout=30),
             (404, "job_not_found"), also=((404, "not_found"),)),
    ]
