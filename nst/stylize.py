"""The optimization loop: a generator of progress records that ends with a result.

``stylize`` prepares the targets once (content features, style Gram matrices), then optimizes
the pixels with Adam (a ``tf.function`` around ``tf.GradientTape``, traced once per run since
the shapes are fixed) or with scipy's L-BFGS-B (one fused value-and-gradient function). It
yields a ``Progress`` after every step and finally one ``Result``.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil
import scipy.optimize
import tensorflow as tf

from nst import color
from nst.config import StyleConfig, validate
from nst.images import MIN_SIDE, check_shape, resize_to, working_shape
from nst.losses import LossWeights, StyleTarget, gram_matrix, total_loss
from nst.model import (
    Extractor,
    default_layers,
    get_extractor,
    on_device,
    pinned_device,
    resolve_precision,
)
from nst.records import CancelToken, Progress, Result

# Adam. The TensorFlow tutorial uses beta_1 = 0.99; we use 0.9 (Kingma & Ba's default, also
# crowsonkb/style-transfer-pytorch's): with 0.99 the momentum overshoots for 20-50 steps after
# the first fast descent and a run needs far more steps to reach the same loss (measured with
# nst.bench). The tutorial's epsilon of 0.1 is negligible next to its raw loss's gradients
# (~1e2 per pixel); our normalised loss has gradients ~1e-4 per pixel, where 0.1 would shrink
# every step ~1e3-fold. A tiny epsilon keeps the tutorial's behaviour: steps of about the
# learning rate per pixel.
ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
ADAM_EPSILON = 1e-8

# Coarse-to-fine: each scale is sqrt(2) times the previous one (twice the pixels), as in
# crowsonkb/style-transfer-pytorch; below 128 px the deepest style layer sees only ~8 px.
SCALE_RATIO = math.sqrt(2.0)
MIN_SCALE_SIZE = 128
CARRY_MOMENTS = True

# The sketch: before a run at a larger size starts, up to SKETCH_STEPS L-BFGS iterations at
# SKETCH_SIDE give a first preview. It ends early (after at least SKETCH_MIN_STEPS) when the
# iteration under way would end more than SKETCH_SECONDS after the run's start, so a slow CPU
# gets a rougher sketch rather than a later one. On trained VGG16 at 512 px (native bfloat16)
# 8 iterations take 1.6 s from the start of the run (0.7 s of it the targets and tracing) and
# already show the painting's palette and strokes; 4 show much less.
SKETCH_SIDE = 128
SKETCH_STEPS = 8
SKETCH_MIN_STEPS = 2
SKETCH_SECONDS = 1.6


Event = Progress | Result


ExtraLoss = Callable[[tf.Tensor], dict[str, tf.Tensor]]
LossInputs = dict[str, Any]  # a run's targets, weights and masks as tensors (``_loss_inputs``)


@dataclass
class Problem:
    """Everything fixed during one run: the extractor, the targets and the pixel mapping."""

    extractor: Extractor
    content: np.ndarray  # the content as the network sees it, at the working size
    content_targets: dict[str, tf.Tensor]
    style_targets: list[StyleTarget]
    weights: LossWeights
    pixel_mask: tf.Tensor | None  # (1, h, w, 1): where the optimized pixels show
    postprocess: Callable[[np.ndarray], np.ndarray]
    # Further weighted terms of the objective (e.g. a video's temporal loss): the image the loss
    # sees -> named weighted parts, added to the total and reported like the built-in ones.
    extra_loss: ExtraLoss | None = None
    timings: dict[str, float] = field(default_factory=dict)

    # The tensors above as the traced objective's arguments (``_loss_inputs``).
    inputs: LossInputs = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.inputs = _loss_inputs(self)

    def compose(self, pixels: tf.Tensor) -> tf.Tensor:
        """The image the loss sees: optimized pixels, or pixels inside the mask over content."""
        return _compose(pixels, self.inputs)

    def objective(self, pixels: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        return _objective(self.extractor, pixels, self.inputs, self.extra_loss)

    def finish(self, pixels: np.ndarray) -> np.ndarray:
        """The user-facing image: composed with the content and colour-restored."""
        composed = self.compose(tf.constant(pixels[None], tf.float32))[0].numpy()
        return self.postprocess(np.clip(composed, 0.0, 1.0))


def _loss_inputs(problem: Problem) -> LossInputs:
    """The run's targets, weights and masks as one nested structure of tensors: the same
    traced objective then serves every run whose shapes match (see ``_traced_objective``)."""
    scalar = lambda value: tf.constant(value, tf.float32)  # noqa: E731
    masked = problem.pixel_mask is not None
    return {
        "content": tf.constant(problem.content[None], tf.float32) if masked else None,
        "pixel_mask": problem.pixel_mask,
        "content_targets": dict(problem.content_targets),
        "styles": [
            {
                "grams": dict(target.grams),
                "layer_weights": {name: scalar(w) for name, w in target.layer_weights.items()},
                "masks": dict(target.masks) if target.masks is not None else None,
                "weight": scalar(target.weight),
            }
            for target in problem.style_targets
        ],
        "weights": [scalar(getattr(problem.weights, name)) for name in ("content", "style", "tv")],
    }


def _compose(pixels: tf.Tensor, inputs: LossInputs) -> tf.Tensor:
    if inputs["pixel_mask"] is None:
        return pixels
    mask = inputs["pixel_mask"]
    return mask * pixels + (1.0 - mask) * inputs["content"]


def _objective(
    extractor: Extractor, pixels: tf.Tensor, inputs: LossInputs, extra_loss: ExtraLoss | None
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The weighted loss of ``pixels`` (1, h, w, 3) and its named parts."""
    image = _compose(pixels, inputs)
    features = extractor(image)
    content_targets = inputs["content_targets"]
    if extractor.precision == "bfloat16":
        # Gram matrices of the bfloat16 features rather than of float32 copies: a step at
        # 512 px is about 2% faster (0.483 s against 0.494 s, nst.bench's step timing).
        features = {
            name: value if name in content_targets else tf.cast(value, tf.bfloat16)
            for name, value in features.items()
        }
    style_targets = [StyleTarget(**style) for style in inputs["styles"]]
    total, parts = total_loss(
        image, features, content_targets, style_targets, LossWeights(*inputs["weights"])
    )
    if extra_loss is not None:
        extra = extra_loss(image)
        parts = {**parts, **extra}
        total = total + tf.add_n(list(extra.values()))
    return total, parts


def _value_and_gradient(
    extractor: Extractor,
    flat: tf.Tensor,
    shape: tuple[int, ...],
    inputs: LossInputs,
    extra_loss: ExtraLoss | None = None,
) -> tuple[tf.Tensor, dict[str, tf.Tensor], tf.Tensor]:
    """L-BFGS's objective on flat pixels: the loss of the pixels clipped to [0, 1] (so scipy
    needs no bounds, see ``_lbfgs``), its parts and the flat gradient."""
    image = tf.reshape(flat, shape)
    with tf.GradientTape() as tape:
        tape.watch(image)
        total, parts = _objective(extractor, tf.clip_by_value(image, 0.0, 1.0), inputs, extra_loss)
    return total, parts, tf.reshape(tape.gradient(total, image), [-1])


def _traced_objective(problem: Problem, shape: tuple[int, ...]) -> Callable[[tf.Tensor], Any]:
    """``flat pixels -> (total, parts, flat gradient)`` for ``problem``, traced for this run.

    One trace per run, made in the run's own scipy thread. Sharing traces between runs (the
    targets as arguments) saved 0.5-0.7 s before each run's first iteration, but a job run
    after a cancelled one once failed inside a Conv2D of such a shared trace, so it is not
    done until that is understood.
    """
    extractor, inputs, extra_loss = problem.extractor, problem.inputs, problem.extra_loss
    return tf.function(
        lambda flat: _value_and_gradient(extractor, flat, shape, inputs, extra_loss),
        input_signature=[tf.TensorSpec([int(np.prod(shape))], tf.float32)],
    )


# Peak memory of a run, measured with ``python -m nst.bench --only memory`` (a fresh process
# per size at 512, 1024 and 2048 px, VGG19 to block5_conv2; untrained weights, which take the
# same memory as trained ones). A straight line in the working image's pixels fits each
# optimizer and precision; its intercept, TensorFlow and the model, was 0.98-1.08 GB:
#   Adam     float32 2138 B/pixel, bfloat16 1710 B/pixel (2048x1536: 7.79 and 6.35 GB)
#   L-BFGS   float32 2622 B/pixel, bfloat16 2150 B/pixel (2048x1536: 9.32 and 7.78 GB)
# L-BFGS adds scipy's float64 copies and its 10 correction pairs, allocated before the first
# iteration: 440-484 B/pixel.
MEMORY_BASE_BYTES = 1.2e9
MEMORY_BYTES_PER_PIXEL = {"float32": 2150.0, "bfloat16": 1750.0}
LBFGS_BYTES_PER_PIXEL = 500.0
MEMORY_MARGIN = 1.1  # allocator slack and measurement spread


def estimate_memory(config: StyleConfig, content_shape: Sequence[int]) -> int:
    """Bytes of memory a run of ``config`` on a content image of ``content_shape`` peaks at."""
    height, width = working_shape(*content_shape[:2], config.size)
    per_pixel = MEMORY_BYTES_PER_PIXEL[resolve_precision(config.precision)]
    if config.optimizer == "lbfgs":
        per_pixel += LBFGS_BYTES_PER_PIXEL
    # The style image only goes forward, once, before the first step: about a third of a
    # step's memory per pixel. Its longest side is size x style_scale; assume it is square.
    style_side = min(4096.0, config.size * config.style_scale)
    peak = max(height * width, style_side**2 / 3) * per_pixel
    return int(MEMORY_BASE_BYTES + MEMORY_MARGIN * peak)


def available_memory() -> int:
    """Bytes this process could still use: what the system has available plus our own RSS."""
    process = psutil.Process()
    return int(psutil.virtual_memory().available + process.memory_info().rss)


def check_memory(config: StyleConfig, content_shape: Sequence[int]) -> None:
    """Raise ``ValueError`` with a plain sentence if a run cannot fit in memory."""
    needed = estimate_memory(config, content_shape)
    available = available_memory()
    if needed > available:
        raise ValueError(
            f"A {config.size} px result needs about {needed / 1e9:.0f} GB of memory but only "
            f"{available / 1e9:.0f} GB are available; choose a smaller output size."
        )


def _normalised(weights: Sequence[float], count: int, what: str) -> list[float]:
    if not weights:
        return [1.0 / count] * count
    if len(weights) != count:
        raise ValueError(f"{what}: expected {count} values, got {len(weights)}.")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def run_layers(config: StyleConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(content layers, style layers) of a run: the config's, or the backbone's defaults."""
    default_content, default_style = default_layers(config.backbone)
    return config.content_layers or default_content, config.style_layers or default_style


def extractor_for(config: StyleConfig) -> Extractor:
    """The extractor a run of ``config`` uses (built once per process, then shared)."""
    content_layers, style_layers = run_layers(config)
    return get_extractor(
        config.backbone,
        config.pooling,
        tuple(dict.fromkeys(content_layers + style_layers)),
        resolve_precision(config.precision),
    )


def prepare(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    mask: np.ndarray | None = None,
    extra_loss: ExtraLoss | None = None,
) -> Problem:
    """Resize the inputs, build the extractor and compute all targets once.

    ``extra_loss`` (optional) maps the (1, h, w, 3) image the loss sees at the working size to
    further named, weighted loss terms.
    """
    validate(config, len(styles), mask is not None)
    check_shape(content, what="content image")
    check_memory(config, content.shape)
    for style in styles:
        check_shape(style, what="style image")
    blend = _normalised(config.style_blend, len(styles), "style_blend")
    content_layers, style_layers = run_layers(config)
    layer_weights = dict(
        zip(
            style_layers,
            _normalised(config.style_layer_weights, len(style_layers), "style_layer_weights"),
        )
    )

    started = time.perf_counter()
    extractor = extractor_for(config)
    built = time.perf_counter()

    height, width = working_shape(*content.shape[:2], config.size)
    content_image = resize_to(content, height, width)
    style_images = [_style_at_scale(style, config) for style in styles]
    postprocess: Callable[[np.ndarray], np.ndarray] = lambda image: image  # noqa: E731
    if config.preserve_colors == "luminance":
        # Gatys et al. 2017: optimize the luminance only, then put the photo's colours back.
        style_images = [color.match_luminance(style, content_image) for style in style_images]
        reference = content_image
        content_image = color.gray_rgb(color.luminance(content_image))
        postprocess = lambda image: color.restore_chroma(image, reference)  # noqa: E731
    elif config.preserve_colors == "histogram":
        style_images = [color.match_histogram(style, content_image) for style in style_images]

    content_features = extractor(tf.constant(content_image[None]))
    content_targets = {name: content_features[name] for name in content_layers}
    style_grams = []
    for style in style_images:
        features = extractor(tf.constant(style[None]))
        style_grams.append({name: gram_matrix(features[name]) for name in style_layers})

    pixel_mask = None
    if mask is None:
        blended = {
            name: tf.add_n([weight * grams[name] for weight, grams in zip(blend, style_grams)])
            for name in style_layers
        }
        style_targets = [StyleTarget(blended, layer_weights)]
    else:
        region = resize_to(np.repeat(_gray(mask)[..., None], 3, axis=2), height, width)[..., :1]
        region_tensor = tf.constant(region[None])
        regions = [region_tensor, 1.0 - region_tensor][: len(styles)]
        style_targets = [
            StyleTarget(
                grams,
                layer_weights,
                {
                    name: tf.image.resize(part, content_features[name].shape[1:3], method="area")
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
    )
    problem.timings.update(build=built - started, targets=time.perf_counter() - built)
    return problem


def _gray(mask: np.ndarray) -> np.ndarray:
    values = mask if mask.ndim == 2 else color.luminance(mask[..., :3])
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def _style_at_scale(style: np.ndarray, config: StyleConfig) -> np.ndarray:
    """The style image with its longest side at ``size * style_scale`` (the brush size)."""
    side = int(np.clip(round(config.size * config.style_scale), MIN_SIDE * 2, 4096))
    height, width = working_shape(*style.shape[:2], side)
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


def scale_sizes(config: StyleConfig, *, warm_start: bool = False) -> list[int]:
    """Longest sides of the coarse-to-fine scales, smallest first, ending at ``config.size``.

    Each scale is ``SCALE_RATIO`` times the previous one; scales under ``MIN_SCALE_SIZE`` are
    dropped. A warm start (a previous result) is refined at the output size only.
    """
    sizes = [config.size]
    while not warm_start and len(sizes) < config.scales:
        smaller = round(sizes[0] / SCALE_RATIO)
        if smaller < MIN_SCALE_SIZE:
            break
        sizes.insert(0, smaller)
    return sizes


def split_steps(steps: int, scales: int, final_share: float) -> list[int]:
    """Steps per scale: ``final_share`` of them at the last scale, the rest split evenly."""
    if scales == 1:
        return [steps]
    final = min(steps, max(1, round(steps * final_share)))
    rest, coarse = steps - final, scales - 1
    return [rest // coarse + (1 if index < rest % coarse else 0) for index in range(coarse)] + [
        final
    ]


@dataclass(frozen=True)
class _Stage:
    """One scale of a run: its size and which of the run's steps it does."""

    size: int
    steps: int
    offset: int  # steps done before this scale
    last: bool


@dataclass
class _Run:
    """What every scale of one run shares: settings, clock, history and the output shape."""

    config: StyleConfig
    cancel: CancelToken
    started: float
    output_shape: tuple[int, int]
    history: list[dict[str, float]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    initial_loss: float | None = None  # the objective of the starting image

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def progress(
        self, problem: Problem, step: int, total: float, parts: dict[str, float], pixels: Any
    ) -> Progress:
        """Record one step; ``pixels`` (a callable giving the image) is only read for previews."""
        elapsed = self.elapsed()
        self.history.append(_record(step, total, parts, elapsed))
        preview = None
        # The first step always shows a picture: the user sees the run start within seconds.
        if step == 1 or step % self.config.preview_every == 0 or step == self.config.steps:
            preview = self.preview(problem, pixels())
        return Progress(step, self.config.steps, total, parts, elapsed, preview)

    def preview(self, problem: Problem, pixels: np.ndarray) -> np.ndarray:
        """The user-facing image, always at the output size (coarse scales are upsampled)."""
        image = problem.finish(pixels)
        if image.shape[:2] != self.output_shape:
            image = np.clip(resize_to(image, *self.output_shape), 0.0, 1.0)
        self.timings.setdefault("first_preview", self.elapsed())
        return image


@dataclass
class _Outcome:
    """How one scale ended: the image to keep (and its loss, when the scale computed it), the
    image to refine next, and why it stopped."""

    best: np.ndarray
    carry: np.ndarray
    best_loss: float = float("inf")
    stopped: bool = False
    error: str | None = None
    moments: tuple[tf.Tensor, tf.Tensor, int] | None = None
    note: str | None = None
    line_search_failed: bool = False


def stylize(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    *,
    mask: np.ndarray | None = None,
    init_image: np.ndarray | None = None,
    cancel: CancelToken | None = None,
    extra_loss: ExtraLoss | None = None,
    sketch: bool = False,
) -> Iterator[Event]:
    """Repaint ``content`` in the style of ``styles``.

    With ``config.scales`` > 1 the image is optimized coarse to fine: first at a small size,
    then each result is upsampled to warm-start the next, larger scale, up to the output size.
    Coarse steps are cheap and settle the large shapes; the full-size steps add the detail.

    Args:
        content: float32 RGB in [0, 1], any size (resized to ``config.size``).
        styles: one or more style images, any size; blended by ``config.style_blend``.
        config: every setting of the run.
        mask: optional gray/RGB image in [0, 1]: white where the (first) style applies, black
            where the photo stays (or, with two styles, where the second style applies).
        init_image: optional warm start (e.g. a previous result), any size; it is refined at
            the output size only.
        cancel: set it to end the run early; the result keeps the best image so far.
        extra_loss: further loss terms at the output size (see ``prepare``); only with one
            scale, since the terms are defined at the output size.
        sketch: start with a quick low-resolution sketch as the first preview (a ``Progress``
            with step 0), when the output is over twice ``SKETCH_SIDE`` and the run starts
            afresh (no ``init_image``, no ``extra_loss``); for views that show previews.

    Yields:
        A ``Progress`` after each step (numbered across all scales; previews are always at the
        output size), then exactly one ``Result`` as the last item.
    """
    started = time.perf_counter()
    check_memory(config, content.shape)
    sizes = scale_sizes(config, warm_start=init_image is not None)
    if extra_loss is not None and len(sizes) > 1:
        raise ValueError("scales: extra loss terms need a single scale; set scales to 1.")
    counts = split_steps(config.steps, len(sizes), config.final_share)
    stages, offset = [], 0
    for index, (size, steps) in enumerate(zip(sizes, counts)):
        if steps or index == len(sizes) - 1:
            stages.append(_Stage(size, steps, offset, index == len(sizes) - 1))
            offset += steps
    run = _Run(
        config,
        cancel or CancelToken(),
        started,
        working_shape(*content.shape[:2], config.size),
    )
    timings = {"build": 0.0, "targets": 0.0}
    if (
        sketch
        and init_image is None
        and extra_loss is None
        and max(run.output_shape) > 2 * SKETCH_SIDE
        and not run.cancel.cancelled
    ):
        sketched = _sketch(content, styles, config, mask, run)
        if sketched is not None:
            yield sketched
    optimize = _adam if config.optimizer == "adam" else _lbfgs
    problem: Problem | None = None
    outcome: _Outcome | None = None
    notes: list[str] = []
    for stage in stages:
        problem = prepare(content, styles, config.replace(size=stage.size), mask, extra_loss)
        timings["build"] += problem.timings["build"]
        timings["targets"] += problem.timings["targets"]
        if outcome is None:
            pixels = initial_pixels(problem, config, init_image)
        else:
            pixels = np.clip(resize_to(outcome.carry, *problem.content.shape[:2]), 0.0, 1.0)
        done_before = len(run.history)
        outcome = yield from optimize(problem, pixels, run, stage, outcome)
        done = len(run.history) - done_before
        if (
            outcome.line_search_failed
            and problem.extractor.precision == "bfloat16"
            and config.precision == "auto"
            and done < stage.steps
        ):
            # bfloat16's rounding of the features can leave L-BFGS's line search without a
            # lower loss to find; float32 resolves it, so the scale goes on there.
            problem = prepare(
                content,
                styles,
                config.replace(size=stage.size, precision="float32"),
                mask,
                extra_loss,
            )
            timings["build"] += problem.timings["build"]
            timings["targets"] += problem.timings["targets"]
            rest = _Stage(stage.size, stage.steps - done, stage.offset + done, stage.last)
            outcome = yield from optimize(problem, outcome.carry, run, rest, outcome)
            notes.append(
                f"L-BFGS went on in float32 after {done} iterations in bfloat16, whose rounding "
                "had stopped its line search."
            )
        if outcome.note:
            notes.append(outcome.note)
        if outcome.stopped or outcome.error:
            break
    assert problem is not None and outcome is not None
    best, final_loss = outcome.best, outcome.best_loss
    if best.shape[:2] != run.output_shape:  # stopped before the last scale
        problem = prepare(content, styles, config, mask, extra_loss)
        best = np.clip(resize_to(best, *run.output_shape), 0.0, 1.0)
        final_loss = float("inf")
    if not np.isfinite(final_loss):  # no step was evaluated at the output size
        final_loss = _evaluate(problem, best)
    timings.update(run.timings)
    timings.setdefault("first_step", 0.0)
    timings["total"] = time.perf_counter() - started
    timings["optimize"] = timings["total"] - timings["build"] - timings["targets"]
    history = run.history
    yield Result(
        image=problem.finish(best),
        history=history,
        timings=timings,
        config=config,
        stopped=outcome.stopped,
        error=outcome.error,
        initial_loss=run.initial_loss if run.initial_loss is not None else final_loss,
        final_loss=final_loss,
        steps_done=len(history),
        note=" ".join(notes) or None,
    )


def _sketch(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    mask: np.ndarray | None,
    run: _Run,
) -> Progress | None:
    """The sketch (see ``stylize``): L-BFGS at ``SKETCH_SIDE`` within the ``SKETCH_*`` budget,
    upsampled to the output size; None if the run was cancelled or the sketch failed (the run
    goes on without it)."""
    small = config.replace(
        size=SKETCH_SIDE, steps=SKETCH_STEPS, scales=1, optimizer="lbfgs", init="content"
    )
    problem = prepare(content, styles, small, mask)
    enough = CancelToken()  # set when the budget is spent: the sketch keeps its best image
    scratch = _Run(small, enough, run.started, problem.content.shape[:2])
    stage = _Stage(SKETCH_SIDE, SKETCH_STEPS, 0, True)
    events = _lbfgs(problem, initial_pixels(problem, small), scratch, stage, None)
    previous = run.elapsed()
    while True:  # its own progress records are not the run's steps
        try:
            event = next(events)
        except StopIteration as finished:
            outcome = finished.value
            break
        # scipy's thread has begun the next iteration: it ends about one iteration from now.
        now = run.elapsed()
        next_ends = now + (now - previous)
        previous = now
        over_budget = event.step >= SKETCH_MIN_STEPS and next_ends > SKETCH_SECONDS
        if run.cancel.cancelled or over_budget:
            enough.cancel()
    if run.cancel.cancelled or outcome.error or not scratch.history:
        return None
    image = np.clip(resize_to(problem.finish(outcome.best), *run.output_shape), 0.0, 1.0)
    run.timings["first_preview"] = run.elapsed()
    return Progress(0, config.steps, float("nan"), {}, run.elapsed(), image)


def run_stylize(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    *,
    on_progress: Callable[[Progress], Any] | None = None,
    **options: Any,
) -> Result:
    """Run ``stylize`` to the end and return its result (``on_progress`` sees every step)."""
    for event in stylize(content, styles, config, **options):
        if isinstance(event, Result):
            return event
        if on_progress is not None:
            on_progress(event)
    raise RuntimeError("stylize ended without a result")


def _evaluate(problem: Problem, pixels: np.ndarray) -> float:
    total, _ = problem.objective(tf.constant(pixels[None], tf.float32))
    return float(total)


_NUMERIC_ERROR = (
    "The loss became {value} at step {step}, so the run stopped and kept the last good image; "
    "try a lower learning rate or style intensity."
)


def _record(step: int, total: float, parts: dict[str, float], elapsed: float) -> dict[str, float]:
    return {"step": step, "loss": total, **parts, "elapsed": elapsed}


def learning_rate_at(config: StyleConfig, step: int, steps: int) -> float:
    """The learning rate of 0-based ``step`` of a scale's ``steps``.

    Constant, then over the last ``lr_decay`` share of the steps a cosine down to ``lr_end``
    times the rate. A departure from the tutorial's constant rate: Adam at a constant rate
    keeps jittering the pixels by about the rate; letting it fall at the end settles them,
    which lowers the loss sooner (measured by ``nst.bench``). There is no warm-up: Adam's
    first updates move every pixel by about the full rate, and although that overshoots for a
    few steps, a 10-step linear warm-up ended higher after 350 steps at 512 px (0.2241
    against 0.2182 on the evaluation objective).
    """
    decay_steps = round(steps * config.lr_decay)
    start = steps - decay_steps
    if decay_steps < 2 or step < start:
        return config.learning_rate
    fraction = (step - start) / (decay_steps - 1)
    scale = config.lr_end + (1.0 - config.lr_end) * 0.5 * (1.0 + math.cos(math.pi * fraction))
    return config.learning_rate * scale


def _adam_step(problem: Problem) -> Callable[..., Any]:
    """One Adam update as a ``tf.function`` (traced once per scale: the shapes are fixed).

    Adam is written out rather than taken from Keras so that its moments are plain tensors
    that can be carried (resized) from one scale to the next, and the rate can change each
    step without retracing.
    """

    @tf.function
    def train_step(
        image: tf.Tensor, m: tf.Tensor, v: tf.Tensor, learning_rate: tf.Tensor, count: tf.Tensor
    ) -> tuple[tf.Tensor, ...]:
        with tf.GradientTape() as tape:
            tape.watch(image)
            total, parts = problem.objective(image)
        gradient = tape.gradient(total, image)
        m = ADAM_BETA_1 * m + (1.0 - ADAM_BETA_1) * gradient
        v = ADAM_BETA_2 * v + (1.0 - ADAM_BETA_2) * tf.square(gradient)
        m_hat = m / (1.0 - ADAM_BETA_1**count)
        v_hat = v / (1.0 - ADAM_BETA_2**count)
        update = learning_rate * m_hat / (tf.sqrt(v_hat) + ADAM_EPSILON)
        return tf.clip_by_value(image - update, 0.0, 1.0), m, v, total, parts

    return train_step


def _resized(tensor: tf.Tensor, shape: tuple[int, int]) -> tf.Tensor:
    if tuple(tensor.shape[1:3]) == shape:
        return tensor
    return tf.image.resize(tensor, shape, method="bilinear")


def _adam(
    problem: Problem, pixels: np.ndarray, run: _Run, stage: _Stage, previous: _Outcome | None
) -> Iterator[Event]:
    config = run.config
    shape = pixels.shape[:2]
    image = tf.constant(pixels[None], tf.float32)
    if previous is not None and previous.moments is not None and CARRY_MOMENTS:
        m, v, count = previous.moments
        m, v = _resized(m, shape), tf.maximum(_resized(v, shape), 0.0)
    else:
        m, v, count = tf.zeros_like(image), tf.zeros_like(image), 0
    train_step = _adam_step(problem)
    best, best_loss = pixels, float("inf")
    for local in range(stage.steps):
        if run.cancel.cancelled:
            return _Outcome(best, best, best_loss, stopped=True)
        step = stage.offset + local + 1
        count += 1
        step_started = time.perf_counter()
        new_image, m, v, total_tensor, parts = train_step(
            image,
            m,
            v,
            tf.constant(learning_rate_at(config, local, stage.steps), tf.float32),
            tf.constant(float(count), tf.float32),
        )
        total = float(total_tensor)
        if step == 1:
            run.timings["first_step"] = time.perf_counter() - step_started
            run.initial_loss = total  # Adam's loss is that of the image before its update
        if not np.isfinite(total):
            error = _NUMERIC_ERROR.format(value=total, step=step)
            return _Outcome(best, best, best_loss, error=error)
        if total < best_loss:
            best, best_loss = image[0].numpy(), total
        image = new_image
        yield run.progress(problem, step, total, _floats(parts), lambda s=image: s[0].numpy())
    final = image[0].numpy()
    if not stage.last:
        return _Outcome(best, final, best_loss, moments=(m, v, count))
    # The final update is not in ``best_loss`` yet: keep it if it is at least as good.
    final_loss = _evaluate(problem, final)
    if final_loss <= best_loss:
        best, best_loss = final, final_loss
    return _Outcome(best, best, best_loss, moments=(m, v, count))


def _floats(parts: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in parts.items()}


class _Stop(Exception):
    """Raised inside scipy's loop to end it (cancelled, abandoned or non-finite)."""


def _lbfgs(
    problem: Problem, pixels: np.ndarray, run: _Run, stage: _Stage, previous: _Outcome | None
) -> Iterator[Event]:
    shape = (1, *pixels.shape)
    cancel = run.cancel

    value_and_gradient = _traced_objective(problem, shape)

    events: queue.Queue = queue.Queue()
    abandoned = threading.Event()
    state: dict[str, Any] = {
        "best": pixels,
        "best_loss": float("inf"),
        "last": None,
        "error": None,
        "evaluations": 0,
        "iterations": 0,
    }

    def value(flat: np.ndarray) -> tuple[float, np.ndarray]:
        if cancel.cancelled or abandoned.is_set():
            raise _Stop
        evaluation_started = time.perf_counter()
        total_tensor, parts, gradient = value_and_gradient(tf.constant(flat, tf.float32))
        total = float(total_tensor)
        state["evaluations"] += 1
        if state["evaluations"] == 1 and stage.offset == 0:
            run.timings["first_step"] = time.perf_counter() - evaluation_started
            run.initial_loss = total  # scipy evaluates the start first
        if not np.isfinite(total):
            step = stage.offset + state["iterations"] + 1
            state["error"] = _NUMERIC_ERROR.format(value=total, step=step)
            raise _Stop
        if total < state["best_loss"]:
            state["best"], state["best_loss"] = flat.reshape(pixels.shape).copy(), total
        state["last"] = (total, _floats(parts))
        return total, gradient.numpy().astype(np.float64)

    def on_iteration(current: np.ndarray) -> None:
        total, parts = state["last"]
        state["iterations"] += 1
        step = stage.offset + state["iterations"]
        state["current"] = current
        image = lambda: current.reshape(pixels.shape).astype(np.float32)  # noqa: E731
        events.put(run.progress(problem, step, total, parts, image))

    def minimize() -> Any:
        return scipy.optimize.minimize(
            value,
            pixels.astype(np.float64).ravel(),
            jac=True,
            method="L-BFGS-B",
            # No bounds: scipy turns box bounds into Python lists, element by element, on every
            # call (2.7 s at 512x384, 12 s at 1024x768, before the first iteration). The loss
            # of the clipped pixels serves instead: on trained VGG16 at 512 px, 100 iterations
            # reached 1.0024 against 1.0156 with bounds, 8% faster, the first preview 2.5 s
            # sooner (the same 100-iteration run of both versions, back to back, native
            # bfloat16). Over the quality panel's 12 pairs at 384 px the same iterations end 2%
            # higher on average than with bounds (-2% to +8%): about even with the time saved.
            callback=on_iteration,
            # Run the requested iterations: the tolerances only stop a converged run.
            options={
                "maxiter": stage.steps,
                "maxfun": stage.steps * 2,
                "ftol": 1e-12,
                "gtol": 1e-12,
            },
        )

    device = pinned_device()  # scipy's thread computes where this run is pinned

    def worker() -> None:
        try:
            with on_device(device):
                state["scipy"] = minimize()
        except _Stop:
            pass
        except Exception as error:  # surfaced in the generator's thread
            state["exception"] = error
        finally:
            events.put(None)

    thread = threading.Thread(target=worker, name="nst-lbfgs", daemon=True)
    thread.start()
    try:
        while (event := events.get()) is not None:
            yield event
    finally:
        abandoned.set()
        thread.join()
    if "exception" in state:
        raise state["exception"]
    stopped = cancel.cancelled and state["iterations"] < stage.steps
    note, line_search_failed = None, False
    if "scipy" in state and state["iterations"] < stage.steps and not state["error"]:
        note = _lbfgs_note(state["scipy"], state["iterations"], stage)
        line_search_failed = "ABNORMAL" in str(state["scipy"].message)
    # scipy's pixels may stray outside [0, 1]; the loss only ever saw them clipped.
    best = np.clip(state["best"], 0.0, 1.0).astype(np.float32)
    carry = best
    if "current" in state:
        carry = np.clip(state["current"].reshape(pixels.shape), 0.0, 1.0).astype(np.float32)
    return _Outcome(
        best,
        carry if not stage.last else best,
        state["best_loss"],
        stopped=stopped,
        error=state["error"],
        note=note,
        line_search_failed=line_search_failed,
    )


# scipy's reasons for ending L-BFGS-B early, in the words a user needs.
_LBFGS_REASONS = {
    "ABNORMAL": "its line search found no lower loss along the search direction, which happens "
    "when the loss is as low as the precision resolves",
    "EVALUATIONS": "it used up its budget of loss evaluations (two per iteration)",
    "PROJECTED GRADIENT": "the gradient vanished: the image has converged",
    "RELATIVE REDUCTION": "the loss stopped decreasing: the image has converged",
}


def _lbfgs_note(outcome: Any, iterations: int, stage: _Stage) -> str:
    """One sentence saying where and why scipy's L-BFGS-B ended before its planned iterations."""
    message = str(outcome.message)
    reason = next(
        (text for key, text in _LBFGS_REASONS.items() if key in message),
        f"scipy reported '{message.strip()}'",
    )
    where = "" if stage.last else f" at the {stage.size} px scale"
    return (
        f"L-BFGS ended after {iterations} of {stage.steps} iterations{where}: {reason}. "
        "The best image so far is kept."
    )
