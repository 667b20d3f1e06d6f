"""Image input and output: anything a user uploads becomes a validated RGB float32 array in [0, 1].

Decoding is defensive: the pixel count is checked from the header before any pixel is decoded
(decompression bombs), EXIF orientation is applied (phone photos come out upright), every mode
(grayscale, palette, alpha, CMYK, 16-bit, float) becomes RGB, and animations give their first
frame. Every failure is one ``ImageError`` with a sentence a user can act on.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from nst.config import field_spec

SUPPORTED_FORMATS = "JPEG, PNG, WebP, GIF, BMP or TIFF"
SETTINGS_KEY = "nst:settings"
MIN_SIDE = 32  # the backbones pool 4-5 times; narrower inputs have no deep features left

ImageSource = bytes | bytearray | str | os.PathLike | BinaryIO

# Our own pixel cap (``ServerLimits.max_pixels``) is checked from the header before anything
# else, so the user hears the image's size and our limit. Pillow's own, process-wide bomb guard
# (``Image.MAX_IMAGE_PIXELS``) stays as it is, for every decode in the process: an image within
# our cap but beyond Pillow's hard limit (2 x MAX_IMAGE_PIXELS, 179 megapixels by default) is
# refused too.


class ImageError(ValueError):
    """An input that cannot be used as an image; the message is one plain sentence."""


def load_image(
    source: ImageSource, *, max_pixels: int | None = None, max_bytes: int | None = None
) -> np.ndarray:
    """Decode ``source`` (bytes, a path or a binary file object) to float32 RGB in [0, 1].

    Args:
        source: the encoded file. Paths must exist; bytes may be anything (they are validated).
        max_pixels: refuse images with more pixels than this before decoding them (default:
            ``ServerLimits.max_pixels``'s default).
        max_bytes: refuse files larger than this (e.g. the app's upload limit); None: no limit.

    Returns:
        An array of shape (height, width, 3), upright according to EXIF orientation.

    Raises:
        ImageError: empty, unreadable, truncated, unsupported or oversized input.
    """
    limit = max_pixels if max_pixels is not None else field_spec("max_pixels").default
    data = _read_bytes(source)
    if not data:
        raise ImageError("The file is empty; please choose an image file.")
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageError(
            f"The file is {_size_text(len(data))}, more than the {_size_text(max_bytes)} limit; "
            "please upload a smaller file."
        )
    claimed = _header_size(data)
    if claimed is not None and claimed[0] * claimed[1] > limit:
        raise ImageError(_too_many_pixels(*claimed, limit))
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > limit:
            raise ImageError(_too_many_pixels(width, height, limit))
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb_array(image)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        size = f"{claimed[0]}×{claimed[1]} pixels, more" if claimed else "larger"
        raise ImageError(
            f"The image is {size} than the {_pillow_limit() / 1e6:g} megapixels that can be "
            "decoded safely; please use a smaller image."
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            f"This file is not an image we can read; please upload a {SUPPORTED_FORMATS} file."
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError) as error:
        if "truncated" in str(error).lower() or isinstance(error, EOFError):
            raise ImageError(
                "The image file is truncated or damaged; please upload it again."
            ) from None
        raise ImageError(
            f"The image could not be decoded ({type(error).__name__}); please upload a "
            f"{SUPPORTED_FORMATS} file."
        ) from None
    except MemoryError:
        raise ImageError("The image is too large to decode; please use a smaller image.") from None
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ImageError("The image has no pixels; please choose another image.")
    return rgb


def _too_many_pixels(width: int, height: int, limit: int) -> str:
    return (
        f"The image is {width}×{height} pixels, more than the limit of {limit / 1e6:g} "
        "megapixels; please use a smaller image."
    )


def _pillow_limit() -> int:
    return 2 * (Image.MAX_IMAGE_PIXELS or 0) or 2**63


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the file's header states it, or None if no Pillow plugin reads it.

    Pillow's format plugins parse only the header when they are constructed; unlike
    ``Image.open``, this does not apply Pillow's bomb guard, so the caller can give its own
    limit and the image's real size. No pixel is decoded.
    """
    Image.init()
    prefix = data[:16]
    for factory, accept in list(Image.OPEN.values()):
        try:
            accepted = True if accept is None else accept(prefix)
            if isinstance(accepted, str) or not accepted:  # a str: "maybe, with a warning"
                continue
            with factory(io.BytesIO(data), "") as image:
                return image.size
        except Exception:  # not this format, a malformed header, or a plugin's own guard
            continue
    return None


def _size_text(count: int) -> str:
    if count >= 2**20:
        return f"{count / 2**20:.1f} MB"
    return f"{max(1, round(count / 1024))} KB"


def _read_bytes(source: ImageSource) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"There is no file at {path}; please check the path.")
        try:
            return path.read_bytes()
        except OSError as error:
            raise ImageError(f"The file {path} cannot be read ({error.strerror}).") from None
    if hasattr(source, "read"):
        if hasattr(source, "seek"):
            source.seek(0)
        return source.read()
    raise ImageError(f"Expected image bytes, a path or a file, got {type(source).__name__}.")


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any Pillow mode to float32 RGB in [0, 1]; transparency is composited onto white."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(values / peak, 0.0, 1.0).astype(np.float32)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32))
        peak = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        gray = np.clip(values / peak, 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P" or mode == "PA" or mode in ("LA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.float32) / 255.0


def check_shape(image: np.ndarray, *, what: str = "image") -> None:
    """Raise ImageError if ``image`` is too small or too narrow to stylize at any size."""
    height, width = image.shape[:2]
    if max(height, width) / max(1, min(height, width)) > 32:
        raise ImageError(
            f"The {what} is {width}×{height} pixels, a more extreme aspect ratio than 32:1; "
            "please crop it closer to a rectangle."
        )


def style_side(size: int, style_scale: float) -> int:
    """The longest side a style image is measured at: ``size * style_scale`` (the brush size),
    at least ``2 * MIN_SIDE`` and at most 4096 px."""
    return int(np.clip(round(size * style_scale), MIN_SIDE * 2, 4096))


def working_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) with the longest side ``size``, aspect kept, no side under MIN_SIDE."""
    scale = size / max(height, width)
    return (
        max(MIN_SIDE, round(height * scale)),
        max(MIN_SIDE, round(width * scale)),
    )


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize float RGB to exactly (height, width) with Lanczos (bicubic-quality) filtering."""
    if image.shape[:2] == (height, width):
        return image.astype(np.float32, copy=False)
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32)).resize(
                (width, height), Image.Resampling.LANCZOS
            )
        )
        for c in range(image.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0).astype(np.float32)


def resize_longest(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so the longest side is ``size`` pixels, keeping the aspect ratio."""
    return resize_to(image, *working_shape(*image.shape[:2], size))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] to uint8 with rounding; NaNs become 0."""
    return np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0).astype(np.uint8)


def to_png_bytes(
    image: np.ndarray, settings: dict | None = None, *, dpi: int | None = None
) -> bytes:
    """Encode as PNG, with ``settings`` embedded as JSON in an ``nst:settings`` text chunk and
    ``dpi`` (a print's resolution), when given, in its pHYs chunk."""
    info = PngImagePlugin.PngInfo()
    if settings is not None:
        info.add_text(SETTINGS_KEY, json.dumps(settings, sort_keys=True))
    buffer = io.BytesIO()
    extra = {"dpi": (dpi, dpi)} if dpi else {}
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG", pnginfo=info, **extra)
    return buffer.getvalue()


def to_jpeg_bytes(image: np.ndarray, quality: int = 95, *, dpi: int | None = None) -> bytes:
    """Encode as a baseline JPEG (``dpi``, when given, in its JFIF header)."""
    buffer = io.BytesIO()
    extra = {"dpi": (dpi, dpi)} if dpi else {}
    Image.fromarray(to_uint8(image)).save(
        buffer, format="JPEG", quality=quality, subsampling=0, **extra
    )
    return buffer.getvalue()


def read_settings(png: bytes) -> dict:
    """The settings embedded by ``to_png_bytes`` (empty dict if there are none)."""
    with Image.open(io.BytesIO(png)) as image:
        text = image.text.get(SETTINGS_KEY) if hasattr(image, "text") else None
    return json.loads(text) if text else {}


def save_image(
    image: np.ndarray,
    path: str | os.PathLike,
    settings: dict | None = None,
    *,
    dpi: int | None = None,
) -> Path:
    """Write PNG (settings embedded) or JPEG, chosen by the file extension; ``dpi``: the
    resolution a print is made at, so that print software sizes the paper right."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".png":
        data = to_png_bytes(image, settings, dpi=dpi)
    elif suffix in (".jpg", ".jpeg"):
        data = to_jpeg_bytes(image, dpi=dpi)
    else:
        raise ImageError(f"Cannot write '{suffix or target.name}': use a .png or .jpg file name.")
    target.write_bytes(data)
    return target
