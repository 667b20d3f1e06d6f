"""Every kind of upload: correct handling or one plain sentence, in the decoder and the CLI."""

import numpy as np
import pytest
from PIL import Image

from nst.cli import main
from nst.images import ImageError, check_shape, load_image
from tests.upload_cases import CASES, encode, photo

IDS = [name for name, _, _ in CASES]


@pytest.mark.parametrize(("name", "data", "expected"), CASES, ids=IDS)
def test_decoder(name, data, expected):
    kind, detail = expected
    if kind == "ok":
        image = load_image(data)
        check_shape(image)
        assert image.shape == (*detail, 3) and image.dtype == np.float32
        assert np.isfinite(image).all() and 0 <= image.min() <= image.max() <= 1
        return
    with pytest.raises(ImageError) as error:
        check_shape(load_image(data))
    message = str(error.value)
    assert detail in message and message.endswith(".") and "\n" not in message


def test_exif_rotated_photo_is_upright():
    image = load_image(dict((n, d) for n, d, _ in CASES)["exif-rotated phone photo"])
    # photo(): red grows left->right, green top->bottom. Rotated 90° clockwise for display,
    # the original left edge (low red) is now at the top.
    assert image[:10, :, 0].mean() < image[-10:, :, 0].mean() - 0.3


def test_file_over_the_upload_limit():
    data = encode(photo(), "PNG")
    with pytest.raises(ImageError, match=r"KB, more than the 1 KB limit; please upload a smaller"):
        load_image(data, max_bytes=1024)
    assert load_image(data, max_bytes=len(data)).shape == (64, 96, 3)


@pytest.mark.parametrize(("name", "data", "expected"), CASES, ids=IDS)
def test_cli(name, data, expected, tmp_path, style_path, capsys):
    upload = tmp_path / "upload.jpg"
    upload.write_bytes(data)
    out = tmp_path / "out.png"
    code = main(
        [
            str(upload),
            str(style_path),
            "-o",
            str(out),
            "--size",
            "64",
            "--steps",
            "1",
            "--quiet",
            "--precision",
            "float32",
        ]
    )
    captured = capsys.readouterr()
    kind, detail = expected
    if kind == "error":
        assert code == 2
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and detail in lines[0] and lines[0].startswith("nst: error: content")
        assert not out.exists()
        return
    assert code == 0, captured.err
    height, width = detail
    with Image.open(out) as result:
        # Longest side 64 (never under 32 px on a side), orientation kept upright.
        assert max(result.size) == 64 and (result.width > result.height) == (width > height)
