"""The objective of a large picture, tile by tile, with the memory of one tile.

Above ``TILE_PIXELS`` working pixels (print sizes) no pass of the network sees the whole
picture at once:

- the content term is measured on the picture scaled down to at most ``CONTENT_TILED_SIDE``
  (``nst.config``), in one pass whose gradient flows back through the resize;
- smoothness (total variation) is a few pixel differences, taken on the whole picture;
- part of the style weight (``broad``) goes to the style of the picture scaled down to the
  plan's base size (``nst.plan.PLAN_BASE_SIDE``) against the painting at that scale: the
  painting's large strokes, which the style layers of a tile at print size are too small to
  see, stay in the loss;
- once the smaller scales have painted those strokes (``hold_to``), the picture scaled down to
  the base size is also held to what they painted, a mean squared difference: the output
  size's steps add its detail to the strokes instead of repainting them finer;
- the style term is the Gram matrices of the *whole* picture, summed over tiles: a first pass
  without gradients sums each tile's ``F^T F`` into the picture's Gram matrices; the style
  loss and its derivative ``A = dL/dG`` follow from them; a second pass takes each tile's
  gradient of ``<A, F^T F>``, which is that tile's exact share of the style gradient.

Each tile is its core (the positions it owns) plus a margin at least the receptive radius of
the deepest style layer, and the cores sit on the grid of the network's pooling stride: every
feature a core owns is computed from the same pixels, with the same padding, as in a pass over
the whole picture. The tiled loss and gradient are therefore the untiled ones (to float
rounding), and there is no seam to hide: a grid that moved between evaluations would also
change nothing. This holds for backbones that are plain stacks of convolutions and pooling
(VGG); ``geometry`` says None for the others, which run whole.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from nst.engine.losses import (
    _EPSILON,
    StyleTarget,
    content_loss,
    content_view,
    style_loss,
    total_variation,
)
from nst.engine.model import Extractor
from nst.plan import TILE_PIXELS, TILE_SIDE

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 in pixels, end exclusive


@dataclass(frozen=True)
class Geometry:
    """Where a layer's features sit in the picture: its ``strides`` (pixels per position)
    and the ``margin`` every tile needs (pixels, a multiple of ``align``)."""

    strides: Mapping[str, int]
    margin: int
    align: int


def geometry(extractor: Extractor) -> Geometry | None:
    """The tiling geometry of ``extractor``'s layers, or None where the network is not a plain
    stack of stride-1 'same' convolutions and non-overlapping pooling (it then runs whole)."""
    jump, radius = 1, 0
    strides: dict[str, int] = {}
    wanted = set(extractor.layers)
    for layer in extractor.model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Conv2D):
            kernel, stride = layer.kernel_size, layer.strides
            if (
                stride != (1, 1)
                or layer.padding != "same"
                or kernel[0] != kernel[1]
                or kernel[0] % 2 == 0
                or layer.dilation_rate != (1, 1)
            ):
                return None
            radius += (kernel[0] - 1) // 2 * jump
        elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            if layer.pool_size != layer.strides or layer.padding != "valid":
                return None
            size = layer.pool_size[0]
            radius += (size - 1) * jump
            jump *= size
        else:
            return None
        if layer.name in wanted:
            strides[layer.name] = jump
            if set(strides) == wanted:
                break
    if set(strides) != wanted:
        return None
    align = max(strides.values())
    return Geometry(strides, math.ceil(radius / align) * align, align)


def split(length: int, parts: int, align: int) -> list[int]:
    """Boundaries 0 = b0 < b1 < ... < b_parts = length, the inner ones on multiples of
    ``align`` and as even as that allows."""
    inner = {round(length * k / parts / align) * align for k in range(1, parts)}
    return [0, *sorted(b for b in inner if 0 < b < length), length]


def plan(height: int, width: int, geo: Geometry, tile_pixels: int = TILE_PIXELS) -> list[Box]:
    """The cores of a picture's tiles: as few as keep each tile (core and margins) within
    ``tile_pixels`` and ``TILE_SIDE``."""
    side = max(min(math.isqrt(tile_pixels), TILE_SIDE) - 2 * geo.margin, geo.align)
    rows = split(height, max(1, math.ceil(height / side)), geo.align)
    cols = split(width, max(1, math.ceil(width / side)), geo.align)
    return [
        (y0, y1, x0, x1)
        for y0, y1 in itertools.pairwise(rows)
        for x0, x1 in itertools.pairwise(cols)
    ]


def window(box: Box, height: int, width: int, margin: int) -> Box:
    """The pixels a tile reads: its core and the margin around it, within the picture."""
    y0, y1, x0, x1 = box
    return (
        max(0, y0 - margin),
        min(height, y1 + margin),
        max(0, x0 - margin),
        min(width, x1 + margin),
    )


def layer_box(box: Box, view: Box, stride: int, height: int, width: int) -> Box:
    """A core's positions in a layer of ``stride``, counted from its tile's window."""
    y0, y1, x0, x1 = box
    wy, _, wx, _ = view
    end_y = y1 // stride if y1 < height else height // stride
    end_x = x1 // stride if x1 < width else width // stride
    return (
        y0 // stride - wy // stride,
        end_y - wy // stride,
        x0 // stride - wx // stride,
        end_x - wx // stride,
    )


def tiles(
    height: int, width: int, geo: Geometry, tile_pixels: int = TILE_PIXELS
) -> Iterator[tuple[Box, Box, dict[str, tf.Tensor]]]:
    """Each tile's core, window and, per layer, the core's positions within the window."""
    for box in plan(height, width, geo, tile_pixels):
        view = window(box, height, width, geo.margin)
        yield (
            box,
            view,
            {
                name: tf.constant(layer_box(box, view, stride, height, width), tf.int32)
                for name, stride in geo.strides.items()
            },
        )


def _core(features: tf.Tensor, where: tf.Tensor) -> tf.Tensor:
    return features[:, where[0] : where[1], where[2] : where[3], :]


def _flat(features: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(features)
    return tf.reshape(features, [shape[1] * shape[2], shape[3]])


def _gram_sums(
    extractor: Extractor, tile: tf.Tensor, where: dict[str, tf.Tensor], masks: list[Any]
) -> list[dict[str, tf.Tensor]]:
    """Per target, per layer: the sum over the core's positions of ``(m f) f^T`` (float32)."""
    features = extractor(tile)
    sums = []
    for target_masks in masks:
        sums.append({})
        for name, stride_where in where.items():
            core = _core(features[name], stride_where)
            if extractor.precision == "bfloat16":
                core = tf.cast(core, tf.bfloat16)
            flat = _flat(core)
            weighted = (
                flat if not target_masks else flat * tf.cast(_flat(target_masks[name]), flat.dtype)
            )
            sums[-1][name] = tf.cast(tf.matmul(weighted, flat, transpose_a=True), tf.float32)
    return sums


def _gradient(
    extractor: Extractor,
    tile: tf.Tensor,
    where: dict[str, tf.Tensor],
    masks: list[Any],
    slopes: list[dict[str, tf.Tensor]],
) -> tf.Tensor:
    """The tile's gradient of ``sum <A, (m f) f^T>`` over targets and layers: its share of the
    style gradient, given the picture's ``A = dL/dG`` (with the 1/positions folded in)."""
    with tf.GradientTape() as tape:
        tape.watch(tile)
        sums = _gram_sums(extractor, tile, where, masks)
        surrogate = tf.add_n(
            [
                tf.reduce_sum(target_sums[name] * target_slopes[name])
                for target_sums, target_slopes in zip(sums, slopes)
                for name in target_sums
            ]
        )
    return tape.gradient(surrogate, tile)


def _signature(example: Any) -> Any:
    return tf.nest.map_structure(
        lambda value: tf.TensorSpec([None] * value.shape.rank, value.dtype), example
    )


def _traced(extractor: Extractor, kind: str, example: tuple[Any, ...]) -> Callable[..., Any]:
    """``_gram_sums`` or ``_gradient`` around ``extractor``, traced once for every tile size
    and kept with the extractor."""
    body = _gram_sums if kind == "sums" else _gradient
    key: Hashable = ("tiled " + kind, _structure(example))
    return extractor.traced(
        key,
        lambda: tf.function(
            lambda *args: body(extractor, *args), input_signature=_signature(example)
        ),
    )


def _structure(value: Any) -> Hashable:
    if isinstance(value, dict):
        return tuple((name, _structure(item)) for name, item in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_structure(item) for item in value)
    return (value.dtype.name, value.shape.rank)


def _mask_crops(
    targets: Sequence[StyleTarget], where: dict[str, tf.Tensor], view: Box, geo: Geometry
) -> list[Any]:
    """Each target's region masks over the core (empty: the whole picture)."""
    crops: list[Any] = []
    for target in targets:
        if target.masks is None:
            crops.append({})
            continue
        crops.append(
            {
                name: _core(
                    target.masks[name][
                        :,
                        view[0] // geo.strides[name] :,
                        view[2] // geo.strides[name] :,
                        :,
                    ],
                    place,
                )
                for name, place in where.items()
            }
        )
    return crops


def gram_matrices(
    extractor: Extractor,
    geo: Geometry,
    image: tf.Tensor,
    targets: Sequence[StyleTarget] | None = None,
    tile_pixels: int = TILE_PIXELS,
) -> list[dict[str, tf.Tensor]]:
    """The whole picture's Gram matrices (``losses.gram_matrix``), tile by tile: one dict per
    target (its mask's, or one unmasked when ``targets`` is None)."""
    height, width = int(image.shape[1]), int(image.shape[2])
    targets = targets or [StyleTarget({}, {})]
    totals: list[dict[str, tf.Tensor]] | None = None
    for _, view, where in tiles(height, width, geo, tile_pixels):
        tile = image[:, view[0] : view[1], view[2] : view[3], :]
        masks = _mask_crops(targets, where, view, geo)
        example = (tile, where, masks)
        sums = _traced(extractor, "sums", example)(*example)
        totals = (
            sums
            if totals is None
            else [
                {name: total[name] + part[name] for name in total}
                for total, part in zip(totals, sums)
            ]
        )
    assert totals is not None
    grams = []
    for target, target_totals in zip(targets, totals):
        grams.append({})
        for name, total in target_totals.items():
            if target.masks is None:
                stride = geo.strides[name]
                weight = float((height // stride) * (width // stride))
            else:
                weight = float(tf.reduce_sum(target.masks[name])) + _EPSILON
            grams[-1][name] = (total / weight)[None]
    return grams


@dataclass
class TiledLoss:
    """The loss and gradient of a large picture (see the module's docstring).

    The content extractor sees the picture scaled down to ``content_shape``
    (``losses.content_view``); ``content_targets`` are its features of the photo there."""

    extractor: Extractor  # the style layers only
    geo: Geometry
    content_extractor: Extractor
    content_shape: tuple[int, int]
    content_targets: Mapping[str, tf.Tensor]
    style_targets: Sequence[StyleTarget]
    weights: Any  # LossWeights
    tile_pixels: int = TILE_PIXELS
    # The style measured on the picture scaled down to ``broad_shape`` as well, against the
    # painting at that scale (``broad`` of the style weight): the painting's large strokes,
    # which a tile's layers are too small to see, stay in the loss (None: not measured).
    broad_shape: tuple[int, int] | None = None
    broad_target: StyleTarget | None = None
    broad: float = 0.0
    # The weight of the hold on the picture at ``broad_shape`` (``hold_to``), in units of the
    # style weight, so that it keeps its balance against the style at every intensity; and
    # what the picture is held to (None: not held).
    hold: float = 0.0
    held: tf.Tensor | None = None

    def hold_to(self, image: Any) -> None:
        """Hold the picture at ``broad_shape`` to ``image`` (h, w, 3) scaled down there, with
        the weight ``hold``: the strokes the smaller scales painted."""
        if self.broad_shape is not None and self.hold > 0.0:
            self.held = content_view(tf.constant(image, tf.float32)[None], self.broad_shape)

    def __call__(self, image: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor], tf.Tensor]:
        """(total, named weighted parts, gradient) of the composed (1, h, w, 3) picture."""
        content, smooth, gradient = self._whole_terms(image)
        grams = gram_matrices(self.extractor, self.geo, image, self.style_targets, self.tile_pixels)
        style = tf.constant(0.0)
        slopes: list[dict[str, tf.Tensor]] = []
        height, width = int(image.shape[1]), int(image.shape[2])
        for target, current in zip(self.style_targets, grams):
            slopes.append({})
            for name, goal in target.grams.items():
                power = tf.reduce_mean(tf.square(goal)) + _EPSILON
                share = (
                    self.weights.style
                    * (1.0 - self.broad)
                    * target.weight
                    * target.layer_weights[name]
                )
                difference = current[name] - goal
                style += share * tf.reduce_mean(tf.square(difference)) / power
                # d/dG of share * mean((G - T)^2) / power, and the 1/positions of G.
                slope = share * 2.0 * difference[0] / (tf.cast(tf.size(goal), tf.float32) * power)
                if target.masks is None:
                    stride = self.geo.strides[name]
                    positions = float((height // stride) * (width // stride))
                else:
                    positions = float(tf.reduce_sum(target.masks[name])) + _EPSILON
                slopes[-1][name] = slope / positions
        total_gradient = gradient.numpy()
        for _, view, where in tiles(height, width, self.geo, self.tile_pixels):
            tile = image[:, view[0] : view[1], view[2] : view[3], :]
            masks = _mask_crops(self.style_targets, where, view, self.geo)
            example = (tile, where, masks, slopes)
            part = _traced(self.extractor, "gradient", example)(*example)
            total_gradient[:, view[0] : view[1], view[2] : view[3], :] += part.numpy()
        if self.broad_target is not None and self.broad_shape is not None:
            broad, broad_gradient = self._broad_term(image)
            style += broad
            total_gradient += broad_gradient.numpy()
        parts = {"content": content, "style": style, "tv": smooth}
        return content + style + smooth, parts, tf.constant(total_gradient)

    def _broad_term(self, image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The style term on the picture scaled down to ``broad_shape`` with the hold on it
        (``hold_to``), and their gradient."""
        assert self.broad_target is not None and self.broad_shape is not None
        grams = dict(self.broad_target.grams)
        layer_weights = {
            name: tf.constant(value, tf.float32)
            for name, value in self.broad_target.layer_weights.items()
        }
        function = self.extractor.traced(
            ("tiled broad style", _structure(grams)),
            lambda: tf.function(
                lambda image, shape, grams, layer_weights, weight, held, hold: _broad(
                    self.extractor, image, shape, grams, layer_weights, weight, held, hold
                ),
                input_signature=[
                    tf.TensorSpec([1, None, None, 3], tf.float32),
                    tf.TensorSpec([2], tf.int32),
                    _signature(grams),
                    _signature(layer_weights),
                    tf.TensorSpec([], tf.float32),
                    tf.TensorSpec([1, None, None, 3], tf.float32),
                    tf.TensorSpec([], tf.float32),
                ],
            ),
        )
        held, hold = self.held, self.weights.style * self.hold
        if held is None:  # nothing held: a zero weight on a picture of the right shape
            held, hold = tf.zeros([1, *self.broad_shape, 3], tf.float32), 0.0
        return function(
            image,
            tf.constant(self.broad_shape, tf.int32),
            grams,
            layer_weights,
            tf.constant(self.weights.style * self.broad, tf.float32),
            held,
            tf.constant(hold, tf.float32),
        )

    def _whole_terms(self, image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The content and smoothness terms and their gradient, on the whole picture."""
        function = self.content_extractor.traced(
            ("tiled whole terms", _structure(dict(self.content_targets))),
            lambda: tf.function(
                lambda image, shape, targets, weights: _whole(
                    self.content_extractor, image, shape, targets, weights
                ),
                input_signature=[
                    tf.TensorSpec([1, None, None, 3], tf.float32),
                    tf.TensorSpec([2], tf.int32),
                    _signature(dict(self.content_targets)),
                    tf.TensorSpec([2], tf.float32),
                ],
            ),
        )
        weights = tf.constant([self.weights.content, self.weights.tv], tf.float32)
        shape = tf.constant(self.content_shape, tf.int32)
        return function(image, shape, dict(self.content_targets), weights)


def _whole(
    content_extractor: Extractor,
    image: tf.Tensor,
    shape: tf.Tensor,
    targets: dict[str, tf.Tensor],
    weights: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    with tf.GradientTape() as tape:
        tape.watch(image)
        features = content_extractor(content_view(image, shape))
        content = weights[0] * content_loss(features, targets)
        smooth = weights[1] * total_variation(image)
        total = content + smooth
    return content, smooth, tape.gradient(total, image)


def _broad(
    extractor: Extractor,
    image: tf.Tensor,
    shape: tf.Tensor,
    grams: dict[str, tf.Tensor],
    layer_weights: dict[str, tf.Tensor],
    weight: tf.Tensor,
    held: tf.Tensor,
    hold: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    with tf.GradientTape() as tape:
        tape.watch(image)
        view = content_view(image, shape)
        features = extractor(view)
        value = weight * style_loss(features, [StyleTarget(grams, layer_weights)])
        value += hold * tf.reduce_mean(tf.square(view - held))
    return value, tape.gradient(value, image)
