"""Content, Gram-style and total-variation losses, normalised to be size- and backbone-free.

Departures from Gatys et al., and why:

- Each content and style layer's squared error is divided by the mean square of its target
  (a *relative* error). Raw feature magnitudes differ by orders of magnitude between layers,
  backbones and trained/untrained weights; relative errors make the slider values mean the
  same thing everywhere, and make per-layer weights mean what they say.
- Gram matrices are divided by the number of positions (as in the TensorFlow tutorial), so
  they do not grow with the image size.
- Total variation is the *mean* (not the sum) of the per-pixel gradient magnitude
  (Charbonnier-smoothed isotropic L1). Stylized images are textures at the scale of the
  network's receptive fields, i.e. at a fixed number of pixels, so their mean gradient is
  about the same at 128 px and at 1024 px; so is the speckle that smoothness should remove.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import tensorflow as tf

_EPSILON = 1e-8
_CHARBONNIER = 1e-10  # squared; keeps the TV gradient finite on flat areas


def gram_matrix(features: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
    """Gram matrix of (batch, height, width, channels) features, averaged over positions.

    With ``mask`` (batch, height, width, 1) in [0, 1], positions are weighted by the mask and
    the result is divided by the mask's total weight (a spatially controlled Gram matrix).
    The product runs in the features' dtype (bfloat16 features: float32 accumulation, a
    bfloat16 result); the result is always returned as float32.
    """
    # A batched matmul over flattened positions rather than tf.einsum: the same numbers, but
    # on a CPU its gradient runs faster than einsum's (docs/benchmarks.md).
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])
    if mask is None:
        positions = tf.cast(shape[1] * shape[2], tf.float32)
        return tf.cast(tf.matmul(flat, flat, transpose_a=True), tf.float32) / positions
    weighted = tf.reshape(features * tf.cast(mask, features.dtype), tf.shape(flat))
    total = tf.reduce_sum(tf.cast(mask, tf.float32), axis=[1, 2, 3]) + _EPSILON
    gram = tf.cast(tf.matmul(weighted, flat, transpose_a=True), tf.float32)
    return gram / total[:, None, None]


def relative_error(value: tf.Tensor, target: tf.Tensor, target_power: tf.Tensor) -> tf.Tensor:
    """mean((value - target)^2) / mean(target^2), the normalisation used by every layer."""
    return tf.reduce_mean(tf.square(value - target)) / (target_power + _EPSILON)


def content_loss(features: Mapping[str, tf.Tensor], targets: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Mean over content layers of the relative squared feature error."""
    losses = [
        relative_error(features[name], target, tf.reduce_mean(tf.square(target)))
        for name, target in targets.items()
    ]
    return tf.add_n(losses) / len(losses)


@dataclass(frozen=True)
class StyleTarget:
    """Gram targets of one style (or a blend of styles) for one region of the image.

    Attributes:
        grams: layer name -> target Gram matrix (1, channels, channels).
        layer_weights: layer name -> weight; the weights sum to 1.
        masks: layer name -> region mask at that layer's resolution (1, h, w, 1), or None for
            the whole image.
        weight: this target's share of the style loss.
    """

    grams: Mapping[str, tf.Tensor]
    layer_weights: Mapping[str, float]
    masks: Mapping[str, tf.Tensor] | None = None
    weight: float = 1.0


def style_loss(features: Mapping[str, tf.Tensor], targets: Sequence[StyleTarget]) -> tf.Tensor:
    """Weighted sum over targets and layers of the relative Gram error."""
    total = tf.constant(0.0)
    for target in targets:
        for name, gram in target.grams.items():
            mask = target.masks[name] if target.masks is not None else None
            current = gram_matrix(features[name], mask)
            error = relative_error(current, gram, tf.reduce_mean(tf.square(gram)))
            total += target.weight * target.layer_weights[name] * error
    return total


def total_variation(image: tf.Tensor) -> tf.Tensor:
    """Mean per-pixel gradient magnitude of (batch, height, width, 3) images in [0, 1]."""
    dy = image[:, 1:, :-1, :] - image[:, :-1, :-1, :]
    dx = image[:, :-1, 1:, :] - image[:, :-1, :-1, :]
    magnitude = tf.sqrt(tf.square(dx) + tf.square(dy) + _CHARBONNIER) - _CHARBONNIER**0.5
    return tf.reduce_mean(magnitude)


def content_view(image: tf.Tensor, shape: tuple[int, int] | tf.Tensor) -> tf.Tensor:
    """``image`` scaled down to ``shape`` for the content term: antialiased (a box-like filter
    over the pixels each output pixel covers), differentiable, the same for the photo's target
    and for the picture being painted."""
    return tf.image.resize(image, shape, method="bilinear", antialias=True)


@dataclass(frozen=True)
class LossWeights:
    content: float
    style: float
    tv: float


def total_loss(
    image: tf.Tensor,
    features: Mapping[str, tf.Tensor],
    content_targets: Mapping[str, tf.Tensor],
    style_targets: Sequence[StyleTarget],
    weights: LossWeights,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The weighted objective and its named, *weighted* parts (they add up to the total)."""
    parts = {
        "content": weights.content * content_loss(features, content_targets),
        "style": weights.style * style_loss(features, style_targets),
        "tv": weights.tv * total_variation(image),
    }
    return parts["content"] + parts["style"] + parts["tv"], parts
