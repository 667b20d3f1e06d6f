"""The loss of an image: the run's targets, computed once, and the objective they define.

``prepare`` resizes the inputs to a scale's working size, builds the extractor and computes the
targets (content features, style Gram matrices, masks) into a ``Problem``; ``Problem.objective``
is the loss of an image, read like the TensorFlow tutorial's train step: features, then the
weighted content, style and total-variation terms, then any extra terms (a video's temporal
loss). ``prepare`` trusts its caller: the run was validated and its memory checked where it
came through the front door (``nst.front.check``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from nst import color
from nst.config import (
    CONTENT_MIN_SIDE,
    CONTENT_TILED_SIDE,
    StyleConfig,
    normalised,
)
from nst.engine import tiles
from nst.engine.losses import LossWeights, StyleTarget, content_view, gram_matrix, total_loss
from nst.engine.model import (
    Extractor,
    get_extractor,
    layer_depth,
    resolve_precision,
    run_layers,
    weighted_layers,
)
from nst.engine.tiles import TiledLoss
from nst.images import resize_to, style_side, working_shape
from nst.plan import PLAN_BASE_SIDE, TILE_PIXELS

# At print sizes, the share of the style weight measured on the picture scaled down to the
# plan's base size (``tiles.TiledLoss.broad``).
BROAD_STYLE_SHARE = 0.5
# At print sizes, once the smaller scales have painted the large strokes, the weight (in units
# of the style weight) that holds the picture scaled down to the base size to them
# (``tiles.TiledLoss.hold_to``): without it the output size's steps repaint the strokes as a
# finer mosaic sprinkled with pale dots (docs/benchmarks.md, "Print sizes").
BASE_HOLD = 50.0

# Further weighted terms of the objective (e.g. a video's temporal loss): the image the loss
# sees -> named weighted parts, added to the total and reported like the built-in ones.
ExtraLoss = Callable[[tf.Tensor], dict[str, tf.Tensor]]


@dataclass
class Problem:
    """Everything fixed during one scale of a run: the extractor, the targets and the pixel
    mapping."""

    extractor: Extractor
    content: np.ndarray  # the content as the network sees it, at the working size
    content_targets: dict[str, tf.Tensor]
    style_targets: list[StyleTarget]
    weights: LossWeights
    pixel_mask: tf.Tensor | None  # (1, h, w, 1): where the optimized pixels show
    postprocess: Callable[[np.ndarray], np.ndarray]
    extra_loss: ExtraLoss | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # The content layers measured on the picture scaled down to ``content_shape`` by their own
    # extractor (``content_scale``), or None: measured by ``extractor`` at the working size.
    content_extractor: Extractor | None = None
    content_shape: tuple[int, int] | tf.Tensor | None = None
    # At print sizes: the loss and gradient computed tile by tile (``nst.engine.tiles``);
    # ``objective`` would take the whole picture through the network at once.
    tiled: TiledLoss | None = None

    def compose(self, pixels: tf.Tensor) -> tf.Tensor:
        """The image the loss sees: optimized pixels, or pixels inside the mask over content."""
        if self.pixel_mask is None:
            return pixels
        return self.pixel_mask * pixels + (1.0 - self.pixel_mask) * self.content[None]

    def objective(self, pixels: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The weighted loss of ``pixels`` (1, h, w, 3) and its named, weighted parts."""
        image = self.compose(pixels)
        features = self.features(image)
        if self.extractor.precision == "bfloat16":
            # Gram matrices of the bfloat16 features rather than of float32 copies: a little
            # faster, with the same result to bfloat16's precision.
            features = {
                name: value if name in self.content_targets else tf.cast(value, tf.bfloat16)
                for name, value in features.items()
            }
        total, parts = total_loss(
            image, features, self.content_targets, self.style_targets, self.weights
        )
        if self.extra_loss is not None:
            extra = self.extra_loss(image)
            parts = {**parts, **extra}
            total = total + tf.add_n(list(extra.values()))
        return total, parts

    def value_and_gradient(
        self, pixels: tf.Tensor, *, clip: bool = False
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor], tf.Tensor]:
        """(loss, named weighted parts, gradient) of ``pixels`` (1, h, w, 3) through the tiled
        loss; with ``clip``, the loss of the pixels clipped to [0, 1] (L-BFGS's)."""
        assert self.tiled is not None
        image = tf.clip_by_value(pixels, 0.0, 1.0) if clip else pixels
        total, parts, gradient = self.tiled(self.compose(image))
        if self.pixel_mask is not None:
            gradient = gradient * self.pixel_mask
        if clip:  # clip_by_value's gradient: through where the pixel is within the bounds
            inside = tf.logical_and(pixels >= 0.0, pixels <= 1.0)
            gradient = tf.where(inside, gradient, tf.zeros_like(gradient))
        return total, parts, gradient

    def features(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """The features the loss compares: the style layers (and the content layers, when they
        are measured at the working size) in one pass; otherwise the content layers in a second
        pass over the picture scaled down to ``content_shape``, which stops at the content layer
        while the first stops at the deepest style layer."""
        if self.content_extractor is None:
            return self.extractor(image)
        return {
            **self.extractor(image),
            **self.content_extractor(content_view(image, self.content_shape)),
        }

    def inputs(self) -> dict[str, Any]:
        """The objective's numbers as a nest of float32 tensors: targets, masks and weights,
        what differs from one scale or slider setting to the next. A loss traced on
        ``from_inputs`` of them serves every problem of the same structure (``input_key``).
        The extra terms are not among them."""
        inputs: dict[str, Any] = {
            "content_targets": dict(self.content_targets),
            "style_targets": [
                {
                    "grams": dict(target.grams),
                    "layer_weights": {
                        name: _scalar(value) for name, value in target.layer_weights.items()
                    },
                    "weight": _scalar(target.weight),
                    **({"masks": dict(target.masks)} if target.masks is not None else {}),
                }
                for target in self.style_targets
            ],
            "weights": {name: _scalar(getattr(self.weights, name)) for name in _WEIGHT_NAMES},
        }
        if self.pixel_mask is not None:
            inputs["pixel_mask"] = self.pixel_mask
            inputs["content"] = tf.constant(self.content, tf.float32)
        if self.content_extractor is not None:
            inputs["content_shape"] = tf.constant(self.content_shape, tf.int32)
        return inputs

    def trace_key(self) -> Hashable:
        """What a loss traced around ``extractor`` depends on beyond ``input_key``: the
        content pass's extractor, if any."""
        content = self.content_extractor
        return None if content is None else (content.layers, content.precision)

    @classmethod
    def from_inputs(
        cls,
        extractor: Extractor,
        inputs: dict[str, Any],
        content_extractor: Extractor | None = None,
    ) -> Problem:
        """The problem whose ``objective`` computes on ``inputs`` (``Problem.inputs``)."""
        return cls(
            extractor=extractor,
            content_extractor=content_extractor,
            content_shape=inputs.get("content_shape"),
            content=inputs.get("content"),  # type: ignore[arg-type]  # a tensor works alike
            content_targets=inputs["content_targets"],
            style_targets=[
                StyleTarget(
                    target["grams"], target["layer_weights"], target.get("masks"), target["weight"]
                )
                for target in inputs["style_targets"]
            ],
            weights=LossWeights(**inputs["weights"]),
            pixel_mask=inputs.get("pixel_mask"),
            postprocess=lambda image: image,
        )

    def finish(self, pixels: np.ndarray) -> np.ndarray:
        """The user-facing image: composed with the content and colour-restored."""
        composed = self.compose(tf.constant(pixels[None], tf.float32))[0].numpy()
        return self.postprocess(np.clip(composed, 0.0, 1.0))


_WEIGHT_NAMES = ("content", "style", "tv")


def _scalar(value: float) -> tf.Tensor:
    return tf.constant(value, tf.float32)


def input_key(inputs: Any) -> Hashable:
    """The structure of ``Problem.inputs``: names, nesting, dtypes and ranks, without sizes."""
    if isinstance(inputs, dict):
        return tuple((name, input_key(value)) for name, value in sorted(inputs.items()))
    if isinstance(inputs, list):
        return tuple(input_key(value) for value in inputs)
    return (inputs.dtype.name, inputs.shape.rank)


def input_signature(inputs: Any) -> Any:
    """``inputs``' structure as tensor specs of any size, for a traced function's signature."""
    return tf.nest.map_structure(
        lambda value: tf.TensorSpec([None] * value.shape.rank, value.dtype), inputs
    )


def content_measure_shape(
    height: int, width: int, content_scale: float, largest: int | None = None
) -> tuple[int, int] | None:
    """The (height, width) the content term is measured at for a working size of
    (height, width), at most ``largest`` on its longest side, or None where that is the
    working size itself."""
    side = max(height, width)
    measured = max(round(side * content_scale), min(side, CONTENT_MIN_SIDE))
    if largest is not None:
        measured = min(measured, largest)
    if measured >= side:
        return None
    return working_shape(height, width, measured)


def evaluate(problem: Problem, pixels: np.ndarray) -> float:
    """The objective of one (h, w, 3) image."""
    image = tf.constant(pixels[None], tf.float32)
    if problem.tiled is not None:
        return float(problem.value_and_gradient(image)[0])
    total, _ = problem.objective(image)
    return float(total)


def prepare(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    mask: np.ndarray | None = None,
    extra_loss: ExtraLoss | None = None,
    tile_pixels: int = TILE_PIXELS,
) -> Problem:
    """Resize the inputs, build the extractor and compute all targets once.

    ``extra_loss`` (optional) maps the (1, h, w, 3) image the loss sees at the working size to
    further named, weighted loss terms. The caller has checked the run (``nst.front.check``).
    A working size of more than ``tile_pixels`` pixels is computed tile by tile
    (``nst.engine.tiles``), its content term on the picture scaled down to at most
    ``CONTENT_TILED_SIDE``.
    """
    blend = normalised(config.style_blend, len(styles), "style_blend")
    content_layers, layer_weights = weighted_layers(config)
    style_layers = tuple(layer_weights)

    height, width = working_shape(*content.shape[:2], config.size)
    started = time.perf_counter()
    precision = resolve_precision(config.precision)

    def extractor_of(layers: tuple[str, ...]) -> Extractor:
        return get_extractor(config.backbone, config.pooling, layers, precision)

    style_extractor = extractor_of(style_layers)
    geo = tiles.geometry(style_extractor)
    tiled = geo is not None and extra_loss is None and height * width > tile_pixels
    if tiled:
        content_shape = content_measure_shape(
            height, width, config.content_scale, CONTENT_TILED_SIDE
        ) or (height, width)
    else:
        content_shape = content_measure_shape(height, width, config.content_scale)
        if content_shape is not None and max(map(_depth_of(config), content_layers)) <= max(
            map(_depth_of(config), style_layers)
        ):
            content_shape = None  # a content layer no deeper than the style's: one pass is cheaper
    if content_shape is None:
        extractor, content_extractor = extractor_of(run_layers(config)), None
    else:
        extractor, content_extractor = style_extractor, extractor_of(content_layers)
    built = time.perf_counter()

    content_image = resize_to(content, height, width)
    style_images = [style_at_scale(style, config) for style in styles]
    postprocess: Callable[[np.ndarray], np.ndarray] = lambda image: image  # noqa: E731
    if config.preserve_colors == "luminance":
        # Gatys et al. 2017: optimize the luminance only, then put the photo's colours back.
        style_images = [color.match_luminance(style, content_image) for style in style_images]
        reference = content_image
        content_image = color.gray_rgb(color.luminance(content_image))
        postprocess = lambda image: color.restore_chroma(image, reference)  # noqa: E731
    elif config.preserve_colors == "histogram":
        style_images = [color.match_histogram(style, content_image) for style in style_images]

    if content_extractor is None:
        content_features = extractor.features(content_image[None])
    else:
        content_features = content_extractor.features(
            content_view(tf.constant(content_image[None]), content_shape)
        )
    content_targets = {name: content_features[name] for name in content_layers}
    # The paintings through the style layers only: the pass stops at the deepest of them.
    style_grams = []
    for style in style_images:
        if geo is not None and style.shape[0] * style.shape[1] > tile_pixels:
            style_grams += tiles.gram_matrices(
                style_extractor, geo, tf.constant(style[None]), tile_pixels=tile_pixels
            )
            continue
        features = style_extractor.features(style[None])
        style_grams.append({name: gram_matrix(features[name]) for name in style_layers})

    pixel_mask = None
    if mask is None:
        blended = {
            name: tf.add_n([weight * grams[name] for weight, grams in zip(blend, style_grams)])
            for name in style_layers
        }
        style_targets = [StyleTarget(blended, layer_weights)]
    else:
        region = color.mask_region(mask, height, width)[..., :1]
        if geo is not None:
            layer_shapes = {
                name: (height // stride, width // stride) for name, stride in geo.strides.items()
            }
        else:
            layer_shapes = {
                name: value.shape[1:3]
                for name, value in style_extractor.features(content_image[None]).items()
            }
        region_tensor = tf.constant(region[None])
        regions = [region_tensor, 1.0 - region_tensor][: len(styles)]
        style_targets = [
            StyleTarget(
                grams,
                layer_weights,
                {
                    name: tf.image.resize(part, layer_shapes[name], method="area")
                    for name in style_layers
                },
                # Blend weights (summing to 1) scale each region's style, so the style part's
                # scale, and the slider's meaning, is the same with and without a mask.
                weight=weight,
            )
            for grams, part, weight in zip(style_grams, regions, blend)
        ]
        if len(styles) == 1:
            pixel_mask = region_tensor  # black areas keep the photo exactly
    problem = Problem(
        extractor=extractor,
        content=content_image,
        content_targets=content_targets,
        style_targets=style_targets,
        weights=LossWeights(config.content_weight, config.style_weight, config.tv_weight),
        pixel_mask=pixel_mask,
        postprocess=postprocess,
        extra_loss=extra_loss,
        content_extractor=content_extractor,
        content_shape=content_shape,
    )
    if tiled:
        assert geo is not None and content_extractor is not None and content_shape is not None
        broad_shape, broad_target = None, None
        if mask is None and max(height, width) > PLAN_BASE_SIDE:
            # The painting's large strokes as a picture of the plan's base size has them.
            broad_shape = working_shape(height, width, PLAN_BASE_SIDE)
            broad_config = config.replace(size=PLAN_BASE_SIDE)
            broad_grams = [
                {
                    name: gram_matrix(value)
                    for name, value in style_extractor.features(
                        style_at_scale(style, broad_config)[None]
                    ).items()
                }
                for style in style_images
            ]
            broad_target = StyleTarget(
                {
                    name: tf.add_n([w * grams[name] for w, grams in zip(blend, broad_grams)])
                    for name in style_layers
                },
                layer_weights,
            )
        problem.tiled = tiles.TiledLoss(
            extractor=style_extractor,
            geo=geo,
            content_extractor=content_extractor,
            content_shape=content_shape,
            content_targets=content_targets,
            style_targets=style_targets,
            weights=problem.weights,
            tile_pixels=tile_pixels,
            broad_shape=broad_shape,
            broad_target=broad_target,
            broad=BROAD_STYLE_SHARE if broad_target is not None else 0.0,
            hold=BASE_HOLD if broad_target is not None else 0.0,
        )
    problem.timings.update(build=built - started, targets=time.perf_counter() - built)
    return problem


def _depth_of(config: StyleConfig) -> Callable[[str], int]:
    return lambda name: layer_depth(config.backbone, name)


def style_at_scale(style: np.ndarray, config: StyleConfig) -> np.ndarray:
    """The style image with its longest side at ``style_side`` (the brush size)."""
    height, width = working_shape(*style.shape[:2], style_side(config.size, config.style_scale))
    return resize_to(style, height, width)


def initial_pixels(
    problem: Problem, config: StyleConfig, init_image: np.ndarray | None = None
) -> np.ndarray:
    """The starting image: a warm start, the content, noise, or a blend of content and noise."""
    height, width = problem.content.shape[:2]
    if init_image is not None:
        start = resize_to(init_image, height, width)
        if config.preserve_colors == "luminance":
            start = color.gray_rgb(color.luminance(start))
        return start
    if config.init == "content":
        return problem.content.copy()
    noise = np.random.default_rng(config.seed).uniform(0.0, 1.0, problem.content.shape)
    ratio = 1.0 if config.init == "noise" else config.noise_ratio
    return ((1.0 - ratio) * problem.content + ratio * noise).astype(np.float32)
