"""Stylizing with the instant network, with the optimizer's controls where they mean something.

- Style intensity: the paper's identity interpolation, a blend of the photo's own style vector
  and the painting's (Ghiasi et al. 2017, section 5).
- Several paintings: their style vectors blended with the style-blend weights; with a mask, the
  first painting inside it and the second (or the photo itself) outside.
- Colour preservation as for the optimizer: the painting recoloured to the photo's palette first
  (histogram), or the photo's colours put back on the result (luminance).
- Style scale (brush size): the transformer paints strokes of a fixed size in its own pixels,
  so it runs at ``size / style_scale`` and the result is resized to the output size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from nst import color
from nst.config import StyleConfig, field_spec, normalised
from nst.images import MIN_SIDE, resize_to, to_uint8, working_shape
from nst.instant.networks import STRIDE, STYLE_SIDE, Networks, load_networks

MAX_RUN_SIDE = 4096  # the longest side the transformer runs at, whatever the style scale
MAX_STYLE_WINDOWS = 4  # square views of a wide painting averaged into its style vector
# Peak memory of one transformer pass, per pixel of the size it runs at, and the fixed part
# (onnxruntime and both networks); ``python -m nst.bench --only instant`` measures them.
MEMORY_BASE_BYTES = 0.25e9
MEMORY_BYTES_PER_PIXEL = 350.0


def intensity_for(style_weight: float) -> float:
    """The interpolation weight (0: the photo's own style, 1: the painting's) for a slider value.

    The *Style intensity* slider is logarithmic; its lowest value means the photo's own style
    and the default or more the painting's, in equal steps of the logarithm in between. The
    network cannot go past the painting's own style vector without breaking up the image.
    """
    spec = field_spec("style_weight")
    low, full = float(spec.minimum), float(spec.default)
    if style_weight <= low:
        return 0.0
    return float(min(1.0, math.log(style_weight / low) / math.log(full / low)))


def style_windows(painting: np.ndarray) -> list[np.ndarray]:
    """The square 256 x 256 views the predictor sees of a painting of any size and shape.

    The shorter side is resized to 256 and square windows are spaced evenly along the longer
    side, enough of them to cover it (at most ``MAX_STYLE_WINDOWS``): a wide painting is seen
    whole rather than cropped to its centre, and a small one is enlarged.
    """
    height, width = painting.shape[:2]
    scale = STYLE_SIDE / min(height, width)
    size = (max(STYLE_SIDE, round(width * scale)), max(STYLE_SIDE, round(height * scale)))
    # Resampled in 8 bits, as the published predictor's own preprocessing does: the int8
    # network is sensitive enough that float resampling alone visibly moves its result
    # (docs/instant.md).
    view = Image.fromarray(to_uint8(painting)).resize(size, Image.Resampling.LANCZOS)
    resized = np.asarray(view, dtype=np.float32) / 255.0
    long_side = max(resized.shape[:2])
    count = min(MAX_STYLE_WINDOWS, math.ceil(long_side / STYLE_SIDE - 1e-6))
    offsets = np.linspace(0, long_side - STYLE_SIDE, count).round().astype(int)
    if resized.shape[0] >= resized.shape[1]:
        return [resized[top : top + STYLE_SIDE, :STYLE_SIDE] for top in offsets]
    return [resized[:STYLE_SIDE, left : left + STYLE_SIDE] for left in offsets]


def instant_style_side(shape: Sequence[int]) -> int:
    """The longest side a painting of ``shape`` needs for ``style_windows`` to see it at full
    resolution (its shorter side at ``STYLE_SIDE``, or its own size if smaller)."""
    short, long = sorted(shape[:2])
    return min(long, math.ceil(STYLE_SIDE * long / short))


def style_vector(painting: np.ndarray, networks: Networks | None = None) -> np.ndarray:
    """The (100,) style vector of an image: the mean over its square views."""
    networks = networks or load_networks()
    vectors = [networks.style_vector(window) for window in style_windows(painting)]
    return np.mean(vectors, axis=0).astype(np.float32)


def run_shape(content_shape: Sequence[int], config: StyleConfig) -> tuple[int, int]:
    """(height, width) the transformer runs at: the output size divided by the style scale."""
    side = int(np.clip(round(config.size / config.style_scale), MIN_SIDE * 2, MAX_RUN_SIDE))
    return working_shape(content_shape[0], content_shape[1], side)


def estimate_instant_memory(config: StyleConfig, content_shape: Sequence[int]) -> int:
    """Bytes an instant run of ``config`` on a photo of ``content_shape`` needs at its peak."""
    height, width = run_shape(content_shape, config)
    padded = (height + STRIDE) * (width + STRIDE)
    return int(MEMORY_BASE_BYTES + MEMORY_BYTES_PER_PIXEL * padded)


def paint(networks: Networks, photo: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """One transformer pass at the photo's own size (mirror-padded to whole strides)."""
    height, width = photo.shape[:2]
    pad_bottom, pad_right = -height % STRIDE, -width % STRIDE
    if pad_bottom or pad_right:
        photo = np.pad(photo, ((0, pad_bottom), (0, pad_right), (0, 0)), mode="reflect")
    painted = networks.transform(photo, vector)[:height, :width]
    return np.clip(painted, 0.0, 1.0).astype(np.float32)


def painting_vectors(
    styles: Sequence[np.ndarray], config: StyleConfig, photo: np.ndarray, networks: Networks
) -> list[np.ndarray]:
    """Each painting's (100,) style vector as ``config`` asks for it against ``photo``.

    With ``preserve_colors="histogram"`` the paintings are first recoloured to the photo's
    palette; below full style intensity each vector moves towards the photo's own (the
    paper's identity interpolation).
    """
    paintings = list(styles)
    if config.preserve_colors == "histogram":
        paintings = [color.match_histogram(painting, photo) for painting in paintings]
    vectors = [style_vector(painting, networks) for painting in paintings]
    intensity = intensity_for(config.style_weight)
    if intensity < 1.0:
        own = style_vector(photo, networks)
        vectors = [intensity * vector + (1.0 - intensity) * own for vector in vectors]
    return vectors


def blended_vector(vectors: Sequence[np.ndarray], config: StyleConfig) -> np.ndarray:
    """The style vectors blended with ``config.style_blend`` (equal weights when empty)."""
    weights = np.asarray(normalised(config.style_blend, len(vectors), "style_blend"))
    return np.tensordot(weights, np.stack(vectors), axes=1).astype(np.float32)


def stylize_instant(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    mask: np.ndarray | None = None,
    networks: Networks | None = None,
) -> np.ndarray:
    """Stylize ``content`` with the paintings ``styles`` in one pass of the network.

    The caller has checked the run (``nst.front.check``).

    Args:
        content: the photo, float32 RGB in [0, 1].
        styles: one or more paintings, any size and aspect ratio.
        config: output size, style intensity, blend, colour preservation and style scale are
            read; the optimizer's settings are not.
        mask: optional, the size of anything: white takes the first painting, black the second,
            or with one painting, black keeps the photo.

    Returns:
        float32 RGB in [0, 1] with the longest side ``config.size``.
    """
    networks = networks or load_networks()
    height, width = working_shape(*content.shape[:2], config.size)
    photo = resize_to(content, *run_shape(content.shape, config))
    vectors = painting_vectors(styles, config, photo, networks)
    if mask is None:
        painted = paint(networks, photo, blended_vector(vectors, config))
    else:
        # Each region gets its painting in full, as with the optimizer's masked targets.
        region = color.mask_region(mask, *photo.shape[:2])
        inside = paint(networks, photo, vectors[0])
        outside = paint(networks, photo, vectors[1]) if len(vectors) > 1 else photo
        painted = region * inside + (1.0 - region) * outside
    if config.preserve_colors == "luminance":
        painted = color.restore_chroma(painted, photo)
    return resize_to(painted, height, width)
