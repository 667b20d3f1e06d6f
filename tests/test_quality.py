"""The figures of the quality panel: edges kept and palette moved, and the panel itself."""

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from nst import quality
from nst.benchmarks import panel


def _scene(height: int = 96, width: int = 128) -> np.ndarray:
    """A photo-like test card: a blue sky, a dark building with lit windows, green ground."""
    image = np.zeros((height, width, 3), np.float32)
    image[: height // 2] = [0.45, 0.65, 0.95]
    image[height // 2 :] = [0.25, 0.55, 0.2]
    image[height // 4 : height * 3 // 4, width // 4 : width // 2] = [0.2, 0.15, 0.1]
    for row in range(height // 4 + 4, height * 3 // 4 - 4, 10):
        image[row : row + 4, width // 4 + 4 : width // 2 - 4 : 2] = [0.95, 0.85, 0.4]
    return image


def _painting(height: int = 96, width: int = 128) -> np.ndarray:
    """Warm diagonal stripes: other colours, other edges."""
    rows, cols = np.mgrid[0:height, 0:width]
    stripes = (np.sin((rows + cols) / 3.0) > 0).astype(np.float32)
    return np.stack([0.6 + 0.35 * stripes, 0.3 + 0.2 * stripes, 0.1 * stripes], axis=-1)


def test_edge_agreement_is_one_for_the_photo_and_falls_as_its_edges_go():
    photo = _scene()
    assert quality.edge_agreement(photo, photo) == pytest.approx(1.0)
    # The same picture at another size still agrees closely (compared at one analysis size).
    larger = np.kron(photo, np.ones((2, 2, 1), np.float32))
    assert quality.edge_agreement(photo, larger) > 0.9
    # Half the photo's edges replaced by stripes: clearly lower; the stripes alone: about 0.
    half = photo.copy()
    half[:, 64:] = _painting()[:, 64:]
    unrelated = quality.edge_agreement(photo, _painting())
    assert abs(unrelated) < 0.2
    assert unrelated < quality.edge_agreement(photo, half) < 0.9
    assert quality.edge_agreement(photo, np.full_like(photo, 0.5)) == 0.0  # no edges at all


def test_palette_shift_measures_the_way_from_photo_to_painting_colours():
    photo, painting = _scene(), _painting()
    assert quality.palette_shift(photo, painting, photo) == pytest.approx(0.0, abs=0.02)
    assert quality.palette_shift(photo, painting, painting) == pytest.approx(1.0, abs=0.02)
    # The photo's layout in the painting's colours (pixels drawn from the painting) moved all
    # the way, whatever its edges.
    rng = np.random.default_rng(0)
    recoloured = painting.reshape(-1, 3)[rng.permutation(photo.shape[0] * photo.shape[1])]
    assert quality.palette_shift(photo, painting, recoloured.reshape(photo.shape)) > 0.9
    # Halfway in colour space is about halfway.
    middle = quality.palette_shift(photo, painting, 0.5 * photo + 0.5 * painting)
    assert 0.2 < middle < 0.8


def test_sliced_wasserstein_is_zero_for_equal_distributions_and_sees_a_shift():
    photo = _scene()
    assert quality.sliced_wasserstein(photo, photo[::-1]) == pytest.approx(0.0, abs=1e-9)
    shifted = np.clip(photo + 0.1, 0, 1)
    distance = quality.sliced_wasserstein(photo, shifted)
    assert 0.02 < distance < 0.2


def test_texture_at_scale_is_one_for_the_painting_and_zero_for_the_photo():
    photo, painting = _scene(), _painting()
    assert quality.texture_at_scale(photo, painting, painting) == pytest.approx(1.0)
    assert quality.texture_at_scale(photo, painting, photo) == pytest.approx(0.0, abs=1e-6)
    # The painting at another size has its statistics at the painting's scale too (each image
    # is compared at the same shorter sides); a half-and-half blend lies in between.
    larger = np.kron(painting, np.ones((2, 2, 1), np.float32))
    assert quality.texture_at_scale(photo, painting, larger) > 0.8
    middle = quality.texture_at_scale(photo, painting, 0.5 * photo + 0.5 * painting)
    assert 0.0 < middle < 1.0


def test_contact_sheet_has_a_row_per_run():
    photo, painting = _scene(), _painting()
    entry = quality.PanelEntry("scene", "stripes", photo, painting, photo, ["loss 1.0"])
    sheet = Image.open(io.BytesIO(quality.contact_sheet([entry, entry], side=100)))
    assert sheet.format == "PNG" and sheet.height == 8 + 2 * 108
    with pytest.raises(ValueError, match="no runs"):
        quality.contact_sheet([])


def test_panel_runs_every_pair_and_writes_sheet_and_figures(tmp_path, content_path, style_path):
    photos, paintings = tmp_path / "photos", tmp_path / "paintings"
    photos.mkdir()
    paintings.mkdir()
    shutil.copy(content_path, photos / f"photo{content_path.suffix}")
    for name in ("first", "second"):
        shutil.copy(style_path, paintings / f"{name}{style_path.suffix}")
    (paintings / "notes.txt").write_text("not an image")
    base = panel.StyleConfig(steps=2, precision="float32")
    summary = panel.panel_section(photos, paintings, 64, tmp_path / "out" / "panel", base)
    assert [(row["content"], row["style"]) for row in summary["pairs"]] == [
        (f"photo{content_path.suffix}", f"first{style_path.suffix}"),
        (f"photo{content_path.suffix}", f"second{style_path.suffix}"),
    ]
    for row in summary["pairs"]:
        assert set(row["parts"]) == {"content", "style", "tv"}
        assert row["loss"] == pytest.approx(sum(row["parts"].values()), rel=1e-5)
        assert row["steps"] == 2 and -1.0 <= row["edge_agreement"] <= 1.0
        assert row["texture_at_scale"] <= 1.0 and row["instant"]["texture_at_scale"] <= 1.0
        # The instant network's picture beside the optimizer's, which starts from it and so
        # ends lower on the same objective.
        alone = row["instant"]
        assert -1.0 <= alone["edge_agreement"] <= 1.0 and alone["palette_shift"] <= 1.0
        assert row["loss"] < alone["loss"]
    assert summary["instant_median_palette_shift"] <= 1.0
    assert Image.open(tmp_path / "out" / "panel.png").height == 8 + 4 * 328  # two rows a pair
    assert json.loads((tmp_path / "out" / "panel.json").read_text())["size"] == 64
    # --fast settings reach the panel: the runs use them, the objective stays the defaults'.
    other = panel.panel_section(
        photos, paintings, 64, tmp_path / "other", base, base.replace(steps=3)
    )
    assert [row["steps"] for row in other["pairs"]] == [3, 3]
    # Against other settings: both run on every pair, side by side on the sheet.
    compared = panel.panel_section(
        photos, paintings, 64, tmp_path / "compared", base, against=base.replace(steps=1)
    )
    assert [row["against"]["steps"] for row in compared["pairs"]] == [1, 1]
    assert compared["speedup"] > 0 and 0 <= compared["texture_higher_pairs"] <= 2
    assert Image.open(tmp_path / "compared.png").height == 8 + 6 * 328  # three rows a pair
    # The benchmark table has a row per pair (both runs' figures), the medians and the ratios.
    rows = panel.format_rows(compared)
    first = compared["pairs"][0]
    assert rows[0][0] == "panel 64 px: photo × first"
    assert f"{first['seconds']:.1f} s, texture {first['texture_at_scale']:.2f}" in rows[0][1]
    assert f"against: {first['against']['seconds']:.1f} s" in rows[0][1]
    assert rows[-2] == (
        "panel: seconds of all pairs, against / defaults",
        f"{compared['speedup']:.2f}×",
        "≥ 3×",
    )
    assert rows[-1][1] == f"{compared['texture_higher_pairs']} of 2"
    assert len(panel.format_rows(summary)) == 3  # two pairs and the medians
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        panel.panel_section(tmp_path / "empty", paintings, 64, tmp_path / "again", base)
