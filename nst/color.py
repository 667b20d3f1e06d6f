"""Colour operations in NumPy: colour preservation (Gatys et al. 2017) and instant adjustments.

All functions take and return float32 RGB arrays in [0, 1] of shape (height, width, 3).
"""

from __future__ import annotations

import numpy as np

from nst.images import resize_to

# RGB -> YIQ (NTSC). Y is luminance; I and Q carry the colour. Gatys et al. 2017 use YIQ for
# luminance-only transfer; hue rotation and saturation are rotations and scalings of (I, Q).
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    dtype=np.float32,
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    return image @ _RGB_TO_YIQ.T


def yiq_to_rgb(image: np.ndarray) -> np.ndarray:
    return image @ _YIQ_TO_RGB.T


def luminance(image: np.ndarray) -> np.ndarray:
    """Y of YIQ, shape (height, width)."""
    return image @ _RGB_TO_YIQ[0]


def gray_rgb(luma: np.ndarray) -> np.ndarray:
    """A luminance map as a 3-channel gray image (the backbones expect RGB)."""
    return np.repeat(np.clip(luma, 0.0, 1.0)[..., None], 3, axis=2).astype(np.float32)


def match_luminance(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Style luminance shifted and scaled to the content's mean and deviation, as gray RGB.

    Gatys et al. 2017, section 5.1: luminance-only transfer first matches the style's luminance
    histogram to the content's by a linear map of mean and standard deviation.
    """
    style_luma, content_luma = luminance(style), luminance(content)
    scale = content_luma.std() / max(float(style_luma.std()), 1e-6)
    matched = (style_luma - style_luma.mean()) * scale + content_luma.mean()
    return gray_rgb(matched)


def restore_chroma(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Combine the stylized image's luminance with the content's I and Q colour channels."""
    content_yiq = rgb_to_yiq(resize_to(content, *stylized.shape[:2]))
    content_yiq[..., 0] = luminance(stylized)
    return np.clip(yiq_to_rgb(content_yiq), 0.0, 1.0).astype(np.float32)


def match_histogram(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Recolour ``style`` so its colour mean and covariance equal the content's.

    Gatys et al. 2017, section 5.2: an affine map x' = A x + b of the style's pixels, with A
    from the matrix square roots of the two covariances (the "image analogies" variant, which
    keeps colour axes aligned and avoids the rotations a Cholesky factor introduces).
    """
    style_pixels = style.reshape(-1, 3).astype(np.float64)
    content_pixels = content.reshape(-1, 3).astype(np.float64)
    style_mean, content_mean = style_pixels.mean(0), content_pixels.mean(0)
    style_cov = np.cov(style_pixels, rowvar=False) + np.eye(3) * 1e-5
    content_cov = np.cov(content_pixels, rowvar=False) + np.eye(3) * 1e-5
    transform = _sqrtm(content_cov) @ np.linalg.inv(_sqrtm(style_cov))
    matched = (style_pixels - style_mean) @ transform.T + content_mean
    return np.clip(matched.reshape(style.shape), 0.0, 1.0).astype(np.float32)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def adjust(
    image: np.ndarray,
    *,
    hue: float = 0.0,
    saturation: float = 1.0,
    brightness: float = 1.0,
    strength: float = 1.0,
    content: np.ndarray | None = None,
) -> np.ndarray:
    """Instant post-run adjustments; no optimization involved.

    Args:
        image: the stylized result.
        hue: rotation of the hue in degrees (rotation of the YIQ colour plane).
        saturation: factor on the colour channels I and Q (0 gives gray).
        brightness: factor on all channels.
        strength: blend with ``content`` (resized to the image): 1 is the stylized image alone.
        content: the original photo; required when ``strength`` < 1.
    """
    result = image.astype(np.float32, copy=True)
    if strength < 1.0:
        if content is None:
            raise ValueError("strength: a content image is needed to blend with.")
        base = resize_to(content, *image.shape[:2])
        result = strength * result + (1.0 - strength) * base
    if hue != 0.0 or saturation != 1.0:
        yiq = rgb_to_yiq(result)
        angle = np.deg2rad(hue)
        cos, sin = np.cos(angle) * saturation, np.sin(angle) * saturation
        i, q = yiq[..., 1].copy(), yiq[..., 2].copy()
        yiq[..., 1] = cos * i - sin * q
        yiq[..., 2] = sin * i + cos * q
        result = yiq_to_rgb(yiq)
    if brightness != 1.0:
        result = result * brightness
    return np.clip(result, 0.0, 1.0).astype(np.float32)


def mask_region(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A mask of any size and mode as a (height, width, 3) float32 weight in [0, 1]: white is
    1 (the first painting), black 0; colour masks count by their luminance."""
    values = mask if mask.ndim == 2 else luminance(mask[..., :3])
    gray = np.clip(values, 0.0, 1.0).astype(np.float32)
    return resize_to(np.repeat(gray[..., None], 3, axis=2), height, width)
