"""Decoding any upload to RGB float32, resizing, and PNG/JPEG output."""

import contextlib
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nst.images import (
    ImageError,
    check_shape,
    load_image,
    read_settings,
    resize_longest,
    save_image,
    to_jpeg_bytes,
    to_png_bytes,
    working_shape,
)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _gradient(width=40, height=30) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            np.full((height, width), 128.0),
        ],
        axis=2,
    ).astype(np.uint8)


def _check_rgb(array: np.ndarray, shape: tuple[int, int]) -> None:
    assert array.dtype == np.float32 and array.shape == (*shape, 3)
    assert array.min() >= 0.0 and array.max() <= 1.0


def test_rgb_png_round_trip_is_exact():
    pixels = _gradient()
    array = load_image(_encode(Image.fromarray(pixels), "PNG"))
    _check_rgb(array, (30, 40))
    np.testing.assert_array_equal(np.round(array * 255).astype(np.uint8), pixels)


def test_grayscale_becomes_three_equal_channels():
    array = load_image(_encode(Image.fromarray(_gradient()[..., 0]), "PNG"))
    _check_rgb(array, (30, 40))
    assert np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(
        array[..., 1], array[..., 2]
    )


def test_sixteen_bit_png_keeps_its_range():
    values = np.linspace(0, 65535, 40 * 30).reshape(30, 40).astype(np.uint16)
    array = load_image(_encode(Image.fromarray(values), "PNG"))
    _check_rgb(array, (30, 40))
    assert array[0, 0, 0] == 0.0 and array[-1, -1, 0] == pytest.approx(1.0)
    assert array[15, 20, 0] == pytest.approx(values[15, 20] / 65535, abs=1e-4)


def test_palette_with_transparency_is_composited_on_white():
    image = Image.new("P", (8, 8))
    image.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    image.putpixel((0, 0), 1)
    image.info["transparency"] = 0  # index 0 (red) is transparent
    array = load_image(_encode(image, "PNG", transparency=0))
    np.testing.assert_allclose(array[4, 4], [1.0, 1.0, 1.0])  # transparent -> white
    np.testing.assert_allclose(array[0, 0], [0.0, 0.0, 1.0])  # opaque blue stays


def test_rgba_and_la_alpha_are_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    array = load_image(_encode(Image.fromarray(rgba), "PNG"))
    np.testing.assert_allclose(array[0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(array[3, 0], [1.0, 1.0, 1.0])
    la = Image.fromarray(rgba[..., [1, 3]], mode="LA")
    np.testing.assert_allclose(load_image(_encode(la, "PNG"))[3, 0], [1.0, 1.0, 1.0])


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (16, 12), (0, 255, 255, 0))  # pure red in CMYK
    array = load_image(_encode(cmyk, "JPEG", quality=95))
    _check_rgb(array, (12, 16))
    assert array[..., 0].mean() > 0.9 and array[..., 1].mean() < 0.1


def test_exif_rotated_photo_comes_out_upright():
    pixels = np.zeros((20, 40, 3), np.uint8)  # stored landscape, left half white
    pixels[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    array = load_image(_encode(Image.fromarray(pixels), "JPEG", exif=exif, quality=95))
    _check_rgb(array, (40, 20))  # displayed portrait
    assert array[:15].mean() > 0.9 and array[25:].mean() < 0.1  # white on top after rotation


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 255, 0)]]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    array = load_image(data)
    assert array[..., 0].mean() > 0.9 and array[..., 1].mean() < 0.1


def test_paths_and_file_objects(tmp_path):
    data = _encode(Image.fromarray(_gradient()), "PNG")
    (tmp_path / "a.png").write_bytes(data)
    assert load_image(tmp_path / "a.png").shape == (30, 40, 3)
    assert load_image(str(tmp_path / "a.png")).shape == (30, 40, 3)
    assert load_image(io.BytesIO(data)).shape == (30, 40, 3)
    with pytest.raises(ImageError, match="There is no file at"):
        load_image(tmp_path / "missing.png")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"just some text renamed to .jpg", "not an image we can read; please upload a JPEG"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "not an image we can read"),
    ],
)
def test_non_images_raise_one_plain_sentence(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_jpeg_is_reported():
    data = _encode(Image.fromarray(_gradient(400, 300)), "JPEG")
    with pytest.raises(ImageError, match="truncated or damaged"):
        load_image(data[: len(data) // 2])


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims a huge size (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))


def test_decompression_bomb_is_refused_before_decoding():
    data = _png_header_only(100_000, 100_000)
    assert len(data) < 200
    with pytest.raises(ImageError, match=r"100000×100000 pixels"):
        load_image(data, max_pixels=50_000_000)


def test_pillow_bomb_guard_stays_on_for_the_whole_process():
    # Our decoder checks its own cap from the header; it must not switch Pillow's guard off
    # for decodes it does not make.
    assert Image.MAX_IMAGE_PIXELS is not None
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(_png_header_only(100_000, 100_000)))


def test_pillow_guard_applies_within_our_cap(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses over 2000 pixels
    small = _encode(Image.new("RGB", (40, 30)), "PNG")  # 1200: over Pillow's warning level
    with pytest.warns(Image.DecompressionBombWarning):
        assert load_image(small).shape == (30, 40, 3)
    large = _encode(Image.new("RGB", (60, 40)), "PNG")  # 2400: within our cap, over Pillow's
    with pytest.raises(ImageError, match=r"^The image is 60×40 pixels, more than the 0\.002 "):
        load_image(large)


def test_concurrent_decodes_agree():
    from concurrent.futures import ThreadPoolExecutor

    files = [_encode(Image.fromarray(_gradient(64 + n, 48)), "PNG") for n in range(8)]
    expected = [load_image(data) for data in files]
    with ThreadPoolExecutor(4) as pool:
        decoded = list(pool.map(load_image, files * 4))
    for index, array in enumerate(decoded):
        np.testing.assert_array_equal(array, expected[index % len(files)])


def test_tiny_and_extreme_images():
    tiny = load_image(_encode(Image.new("RGB", (5, 3), (10, 20, 30)), "PNG"))
    assert tiny.shape == (3, 5, 3)
    assert working_shape(3, 5, 128) == (77, 128)  # tiny inputs are scaled up
    check_shape(tiny)
    with pytest.raises(ImageError, match="aspect ratio"):
        check_shape(np.zeros((10, 4000, 3), np.float32))
    assert working_shape(100, 3000, 512) == (32, 512)  # narrow sides never fall under 32


def test_resize_longest_keeps_aspect():
    image = np.random.default_rng(0).uniform(0, 1, (300, 400, 3)).astype(np.float32)
    resized = resize_longest(image, 128)
    assert resized.shape == (96, 128, 3) and resized.dtype == np.float32
    assert resized.min() >= 0.0 and resized.max() <= 1.0


def test_png_settings_and_jpeg(tmp_path):
    image = _gradient().astype(np.float32) / 255
    png = to_png_bytes(image, {"style_weight": 20.0, "styles": ["a.jpg"]})
    assert read_settings(png) == {"style_weight": 20.0, "styles": ["a.jpg"]}
    assert read_settings(to_png_bytes(image)) == {}
    np.testing.assert_allclose(load_image(png), image, atol=1 / 255)
    jpeg = to_jpeg_bytes(image)
    assert jpeg[:3] == b"\xff\xd8\xff" and np.abs(load_image(jpeg) - image).mean() < 0.02
    save_image(image, tmp_path / "x.png", {"a": 1})
    assert read_settings((tmp_path / "x.png").read_bytes()) == {"a": 1}
    save_image(image, tmp_path / "x.jpg")
    assert Image.open(tmp_path / "x.jpg").format == "JPEG"
    with pytest.raises(ImageError, match=r"\.png or \.jpg"):
        save_image(image, tmp_path / "x.gif")
    # A print's files say their resolution, so print software sizes the paper right.
    for name in ("print.png", "print.jpg"):
        save_image(image, tmp_path / name, {"a": 1}, dpi=300)
        with Image.open(tmp_path / name) as printed:
            assert tuple(round(v) for v in printed.info["dpi"]) == (300, 300)
    with Image.open(tmp_path / "x.png") as plain:
        assert "dpi" not in plain.info


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_only_give_rgb_or_image_error(data):
    try:
        array = load_image(data)
    except ImageError as error:
        assert str(error)
    else:
        assert array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.float32


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "I;16", "I", "F"]),
    st.integers(1, 24),
    st.integers(1, 24),
    st.sampled_from(["PNG", "TIFF", "BMP", "GIF", "WEBP", "JPEG"]),
    st.integers(0, 2**32 - 1),
)
def test_random_small_images_decode_to_rgb(mode, width, height, fmt, seed):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).convert(mode)
    try:
        data = _encode(image, fmt)
    except (OSError, ValueError, KeyError):
        return  # Pillow cannot write this mode in this format; nothing to decode
    try:
        array = load_image(data)
    except ImageError as error:
        assert str(error)
        return
    _check_rgb(array, (height, width))
    # Corrupt the tail: still RGB or an ImageError, never another exception.
    with contextlib.suppress(ImageError):
        load_image(data[: max(1, len(data) * 2 // 3)])
