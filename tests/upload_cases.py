"""Every kind of file a public upload form receives, made in memory (shared by the tests).

Each case is (name, bytes, expectation): either ("ok", (height, width)) for the decoded,
upright size, or ("error", text the one-sentence message must contain).
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def photo(width: int = 96, height: int = 64) -> Image.Image:
    """A smooth, colourful test picture."""
    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    rgb = np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            0.5 + 0.5 * np.sin(6 * x + 4 * y),
        ],
        axis=2,
    )
    return Image.fromarray((rgb * 255).astype(np.uint8))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG of ~60 bytes whose header claims width x height pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))


def _palette_with_transparency() -> bytes:
    image = photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90° clockwise (a phone held upright)
    return encode(photo(96, 64), "JPEG", exif=exif, quality=90)


def _animated(fmt: str) -> bytes:
    frames = [photo(), photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _sixteen_bit() -> bytes:
    values = (np.linspace(0, 65535, 96 * 64).reshape(64, 96)).astype(np.uint16)
    return encode(Image.fromarray(values), "PNG")


def _truncated_jpeg() -> bytes:
    data = encode(photo(400, 300), "JPEG", quality=90)
    return data[: len(data) // 2]


HEIC_HEADER = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"

CASES: list[tuple[str, bytes, tuple[str, object]]] = [
    ("empty", b"", ("error", "The file is empty")),
    ("text renamed to .jpg", b"hello, this is not a picture\n" * 20, ("error", "not an image")),
    ("pdf renamed to .jpg", PDF, ("error", "not an image")),
    ("truncated jpeg", _truncated_jpeg(), ("error", "truncated or damaged")),
    ("decompression bomb", png_bomb(), ("error", "megapixels")),
    ("heic", HEIC_HEADER, ("error", "JPEG, PNG, WebP")),
    (
        "extreme aspect 4000x10",
        encode(Image.new("RGB", (4000, 10), (200, 30, 30)), "PNG"),
        ("error", "aspect ratio"),
    ),
    ("animated gif", _animated("GIF"), ("ok", (64, 96))),
    ("animated webp", _animated("WEBP"), ("ok", (64, 96))),
    ("16-bit png", _sixteen_bit(), ("ok", (64, 96))),
    ("cmyk jpeg", encode(photo().convert("CMYK"), "JPEG", quality=90), ("ok", (64, 96))),
    ("palette png with transparency", _palette_with_transparency(), ("ok", (64, 96))),
    ("grayscale", encode(photo().convert("L"), "PNG"), ("ok", (64, 96))),
    ("rgba", encode(photo().convert("RGBA"), "PNG"), ("ok", (64, 96))),
    ("exif-rotated phone photo", _exif_rotated(), ("ok", (96, 64))),
    ("tiny 12x9", encode(photo(12, 9), "PNG"), ("ok", (9, 12))),
]
