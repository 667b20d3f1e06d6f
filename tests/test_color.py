"""Colour preservation and post-run adjustments, on tiny arrays."""

import numpy as np
import pytest

from nst import color


def _random_image(seed: int, shape=(12, 16, 3)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def test_yiq_round_trip():
    image = _random_image(0)
    np.testing.assert_allclose(color.yiq_to_rgb(color.rgb_to_yiq(image)), image, atol=1e-5)


def test_restore_chroma_keeps_stylized_luminance_and_content_colour():
    stylized, content = _random_image(1), _random_image(2)
    restored = color.restore_chroma(stylized, content)
    inside = np.all((restored > 0.01) & (restored < 0.99), axis=2)  # unclipped pixels
    np.testing.assert_allclose(
        color.luminance(restored)[inside], color.luminance(stylized)[inside], atol=1e-4
    )
    np.testing.assert_allclose(
        color.rgb_to_yiq(restored)[inside][:, 1:],
        color.rgb_to_yiq(content)[inside][:, 1:],
        atol=1e-4,
    )


def test_match_histogram_gives_the_content_mean_and_covariance():
    rng = np.random.default_rng(3)
    style = np.clip(rng.normal([0.2, 0.3, 0.7], 0.05, (64, 64, 3)), 0, 1).astype(np.float32)
    content = np.clip(rng.normal([0.6, 0.5, 0.3], 0.08, (64, 64, 3)), 0, 1).astype(np.float32)
    matched = color.match_histogram(style, content)
    pixels, target = matched.reshape(-1, 3), content.reshape(-1, 3)
    np.testing.assert_allclose(pixels.mean(0), target.mean(0), atol=0.01)
    np.testing.assert_allclose(np.cov(pixels.T), np.cov(target.T), atol=5e-4)


def test_match_luminance_matches_mean_and_deviation():
    style, content = _random_image(4) * 0.3, _random_image(5)
    matched = color.match_luminance(style, content)
    assert matched.shape == style.shape and np.allclose(matched[..., 0], matched[..., 2])
    assert abs(matched[..., 0].mean() - color.luminance(content).mean()) < 0.01


def test_adjust_identity_gray_brightness_and_strength():
    image, content = _random_image(6), _random_image(7)
    np.testing.assert_allclose(color.adjust(image), image, atol=1e-6)
    gray = color.adjust(image, saturation=0.0)
    yiq = color.rgb_to_yiq(gray)
    assert np.abs(yiq[..., 1:]).max() < 1e-5
    np.testing.assert_allclose(color.adjust(image, brightness=0.5), image * 0.5, atol=1e-6)
    np.testing.assert_allclose(
        color.adjust(image, strength=0.0, content=content), content, atol=1e-6
    )
    with pytest.raises(ValueError, match="strength"):
        color.adjust(image, strength=0.5)


def test_hue_rotation_by_360_is_identity_and_180_changes_colour():
    image = _random_image(8) * 0.5 + 0.25
    np.testing.assert_allclose(color.adjust(image, hue=360.0), image, atol=1e-5)
    rotated = color.adjust(image, hue=180.0)
    np.testing.assert_allclose(color.luminance(rotated), color.luminance(image), atol=0.05)
    assert np.abs(rotated - image).mean() > 0.05


def test_mask_region_is_the_masks_luminance_at_the_asked_size():
    from nst.color import mask_region

    rgb = np.zeros((4, 6, 3), np.float32)
    rgb[:, 3:] = 1.0  # right half white
    region = mask_region(rgb, 8, 12)
    assert region.shape == (8, 12, 3) and region.dtype == np.float32
    np.testing.assert_allclose(region[:, :2], 0.0, atol=0.02)  # away from the resampled edge
    np.testing.assert_allclose(region[:, 10:], 1.0, atol=0.02)
    gray = mask_region(np.full((2, 2), 0.25, np.float32), 2, 2)
    np.testing.assert_allclose(gray, 0.25)
    assert mask_region(np.full((2, 2), 3.0, np.float32), 2, 2).max() == 1.0  # clipped
