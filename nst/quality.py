"""What a person judges in a result, as numbers: does the photo survive, did the palette move.

Three figures per result, each computed at fixed analysis sizes so that they compare across
output sizes:

- ``edge_agreement``: the Pearson correlation between the photo's and the result's edge maps
  (gradient magnitude of the lightly blurred luminance). 1 means the same edges, about 0 means
  unrelated images. Brush strokes add edges of their own, so a good stylization keeps a clearly
  positive value rather than 1; a result whose subject dissolved into the painting falls toward
  the value of the photo against the painting itself.
- ``palette_shift``: how far the result's colour distribution moved from the photo's toward the
  painting's, ``1 - SW(result, painting) / SW(photo, painting)`` with SW the sliced Wasserstein
  distance between the RGB pixel distributions. 0: the photo's colours; 1: distributed like
  the painting's.
- ``texture_at_scale``: how far the result's texture statistics moved from the photo's toward
  the painting's, at the painting's own scale: Gram matrices of trained VGG16 block1_conv1 to
  block3_conv1 with the result, photo and painting each resized to a shorter side of 128 px
  and of 192 px, where a block3 feature sees a large share of the picture, so that large
  strokes and swirls count as well as fine texture. 0: the photo's; 1: the painting's.

``contact_sheet`` lays out a panel of runs (photo, painting, result and their figures) as one
image; ``nst.bench --only panel`` writes it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from nst.color import luminance
from nst.images import resize_to, to_uint8, working_shape

ANALYSIS_SIDE = 256  # edges and colours are compared at this longest side
EDGE_BLUR = 1.0  # pixels at ANALYSIS_SIDE: suppresses single-pixel speckle, keeps outlines
TEXTURE_SIDES = (128, 192)  # shorter sides at which texture is compared
TEXTURE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1")
TEXTURE_BACKBONE = "vgg16"  # its trained weights follow NST_WEIGHTS, like the engine's
PROJECTIONS = 64  # random directions of the sliced Wasserstein distance
QUANTILES = 1024  # points at which the projected distributions are compared


def _at_analysis_size(image: np.ndarray, like: np.ndarray | None = None) -> np.ndarray:
    if like is not None:
        return resize_to(image, *like.shape[:2])
    return resize_to(image, *working_shape(*image.shape[:2], ANALYSIS_SIDE))


def edge_map(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the blurred luminance of a float RGB image in [0, 1]."""
    gray = ndimage.gaussian_filter(luminance(image).astype(np.float64), EDGE_BLUR)
    return np.hypot(ndimage.sobel(gray, axis=0), ndimage.sobel(gray, axis=1))


def edge_agreement(photo: np.ndarray, result: np.ndarray) -> float:
    """Pearson correlation of the two images' edge maps, compared at the photo's aspect."""
    photo_small = _at_analysis_size(photo)
    result_small = _at_analysis_size(result, like=photo_small)
    first, second = edge_map(photo_small).ravel(), edge_map(result_small).ravel()
    if first.std() == 0 or second.std() == 0:
        return 0.0
    return float(np.corrcoef(first, second)[0, 1])


def sliced_wasserstein(
    first: np.ndarray, second: np.ndarray, projections: int = PROJECTIONS, seed: int = 0
) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between the RGB pixel
    distributions of two images (any sizes), compared at ``QUANTILES`` evenly spaced quantiles."""
    directions = np.random.default_rng(seed).normal(size=(projections, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    levels = np.linspace(0.0, 1.0, QUANTILES)

    def quantiles(image: np.ndarray) -> np.ndarray:
        # np.quantile's linear rule, on rows sorted in place: several times quicker than
        # np.quantile along the columns of the (pixels, projections) array.
        projected = np.sort(directions @ image.reshape(-1, 3).astype(np.float64).T, axis=1)
        position = levels * (projected.shape[1] - 1)
        below = np.floor(position).astype(int)
        above = np.minimum(below + 1, projected.shape[1] - 1)
        share = position - below
        return projected[:, below] * (1.0 - share) + projected[:, above] * share

    return float(np.mean(np.abs(quantiles(first) - quantiles(second))))


def palette_shift(photo: np.ndarray, painting: np.ndarray, result: np.ndarray) -> float:
    """0 when the result keeps the photo's colour distribution, 1 when it has the painting's."""
    photo_small, painting_small = _at_analysis_size(photo), _at_analysis_size(painting)
    result_small = _at_analysis_size(result)
    apart = sliced_wasserstein(photo_small, painting_small)
    if apart == 0:
        return 0.0
    return 1.0 - sliced_wasserstein(result_small, painting_small) / apart


def _shorter_side_to(image: np.ndarray, side: int) -> np.ndarray:
    height, width = image.shape[:2]
    factor = side / min(height, width)
    return resize_to(image, max(1, round(height * factor)), max(1, round(width * factor)))


def _texture_grams(images: Sequence[np.ndarray], side: int) -> list[list[np.ndarray]]:
    """Per image, the Gram matrix (divided by the positions) of every ``TEXTURE_LAYERS`` layer,
    the image resized to a shorter side of ``side``."""
    import tensorflow as tf

    from nst.engine.losses import gram_matrix
    from nst.engine.model import get_extractor

    extractor = get_extractor(TEXTURE_BACKBONE, "max", TEXTURE_LAYERS, "float32")
    grams = []
    for image in images:
        batch = tf.constant(_shorter_side_to(image, side)[None], tf.float32)
        features = extractor.features(batch)
        grams.append([gram_matrix(features[name])[0].numpy() for name in TEXTURE_LAYERS])
    return grams


def _gram_distance(grams: list[np.ndarray], targets: list[np.ndarray]) -> float:
    """Mean over layers of the Frobenius distance between Gram matrices, relative to the
    target's."""
    return float(
        np.mean(
            [
                np.linalg.norm(gram - target) / max(float(np.linalg.norm(target)), 1e-12)
                for gram, target in zip(grams, targets)
            ]
        )
    )


def texture_at_scale(photo: np.ndarray, painting: np.ndarray, result: np.ndarray) -> float:
    """The share of the photo's texture distance to the painting that the result closes, at
    the painting's scale: 0 for the photo's statistics, 1 for the painting's.

    At each of ``TEXTURE_SIDES`` the distance of an image to the painting is the mean over
    ``TEXTURE_LAYERS`` of the Frobenius distance between the Gram matrices, relative to the
    painting's Gram; the share is ``1 - distance(result) / distance(photo)``, and the figure the
    mean over the sizes.
    """
    shares = []
    for side in TEXTURE_SIDES:
        photo_grams, painting_grams, result_grams = _texture_grams([photo, painting, result], side)
        apart = _gram_distance(photo_grams, painting_grams)
        closer = _gram_distance(result_grams, painting_grams)
        shares.append(0.0 if apart == 0 else 1.0 - closer / apart)
    return float(np.mean(shares))


def figures(photo: np.ndarray, painting: np.ndarray, result: np.ndarray) -> dict[str, float]:
    """The three figures of one result: edges kept, palette moved, texture at scale."""
    return {
        "edge_agreement": edge_agreement(photo, result),
        "palette_shift": palette_shift(photo, painting, result),
        "texture_at_scale": texture_at_scale(photo, painting, result),
    }


@dataclass(frozen=True)
class PanelEntry:
    """One run of the panel: its images and the figures printed beside them."""

    content_name: str
    style_name: str
    photo: np.ndarray
    painting: np.ndarray
    result: np.ndarray
    lines: Sequence[str]


def _fit(image: np.ndarray, side: int) -> Image.Image:
    picture = Image.fromarray(to_uint8(image))
    picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    return picture


def contact_sheet(entries: Sequence[PanelEntry], side: int = 320, text_width: int = 420) -> bytes:
    """One PNG: a row per entry with the photo and painting (small), the result and its figures."""
    if not entries:
        raise ValueError("entries: the panel has no runs to show.")
    thumb, gap = side // 2, 8
    row_height = side + gap
    width = gap + thumb + gap + side + gap + text_width
    sheet = Image.new("RGB", (width, gap + row_height * len(entries)), (251, 248, 243))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    for index, entry in enumerate(entries):
        top = gap + index * row_height
        photo, painting = (
            _fit(entry.photo, thumb - gap // 2),
            _fit(entry.painting, thumb - gap // 2),
        )
        sheet.paste(photo, (gap, top))
        sheet.paste(painting, (gap, top + thumb + gap // 2))
        result = _fit(entry.result, side)
        left = gap + thumb + gap
        sheet.paste(result, (left, top))
        text_left = left + side + gap
        title = f"{entry.content_name} x {entry.style_name}"  # the default font has no ×
        draw.text((text_left, top), title, fill=(43, 33, 24), font=font)
        for number, line in enumerate(entry.lines, start=1):
            draw.text((text_left, top + 20 * number), line, fill=(43, 33, 24), font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
