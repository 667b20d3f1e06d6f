"""The optimization loop: a generator of progress records that ends with a result.

``stylize`` prepares the targets once (content features, style Gram matrices), then optimizes
the pixels with Adam (a ``tf.function`` around ``tf.GradientTape``, traced once per run since
the shapes are fixed) or with scipy's L-BFGS-B (one fused value-and-gradient function). It
yields a ``Progress`` after every step and finally one ``Result``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import scipy.optimize
import tensorflow as tf

from nst import color
from nst.config import StyleConfig
from nst.images import MIN_SIDE, check_shape, resize_to, working_shape
from nst.losses import LossWeights, StyleTarget, gram_matrix, total_loss
from nst.model import Extractor, default_layers, get_extractor, resolve_precision

# Adam's beta_1 from the TensorFlow style-transfer tutorial: a high momentum smooths the noisy
# pixel gradients. The tutorial's epsilon of 0.1 is negligible next to its raw loss's gradients
# (~1e2 per pixel); our normalised loss has gradients ~1e-5 per pixel, where 0.1 would shrink
# every step ~1e4-fold. A tiny epsilon keeps the tutorial's behaviour: steps of about the
# learning rate per pixel.
ADAM_BETA_1 = 0.99
ADAM_EPSILON = 1e-8


class CancelToken:
    """Set from any thread to end a run at its next step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class Progress:
    """One optimization step.

    Attributes:
        step: steps done so far (1-based). total: steps planned.
        loss: weighted objective of the image before this step; parts: its named terms.
        elapsed: seconds since the run started. preview: the current image, every
            ``preview_every`` steps and at the last step, else None.
    """

    step: int
    total: int
    loss: float
    parts: dict[str, float]
    elapsed: float
    preview: np.ndarray | None = None

    @property
    def seconds_left(self) -> float:
        return self.elapsed / max(self.step, 1) * (self.total - self.step)


@dataclass(frozen=True)
class Result:
    """The outcome of a run (finished, stopped or failed: there is always an image).

    Attributes:
        image: float32 RGB in [0, 1] at the working size, the best image seen.
        history: one dict per step: step, loss, content, style, tv, elapsed.
        timings: seconds: build (model), targets, first_step, optimize, total.
        stopped: the run was cancelled before its last step.
        error: a plain sentence if the run ended on a numerical failure, else None.
        initial_loss / final_loss: the objective of the first and of the returned image.
    """

    image: np.ndarray
    history: list[dict[str, float]]
    timings: dict[str, float]
    config: StyleConfig
    stopped: bool = False
    error: str | None = None
    initial_loss: float = float("nan")
    final_loss: float = float("nan")
    steps_done: int = 0


Event = Progress | Result


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
    timings: dict[str, float] = field(default_factory=dict)

    def compose(self, pixels: tf.Tensor) -> tf.Tensor:
        """The image the loss sees: optimized pixels, or pixels inside the mask over content."""
        if self.pixel_mask is None:
            return pixels
        return self.pixel_mask * pixels + (1.0 - self.pixel_mask) * self.content[None]

    def objective(self, pixels: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        image = self.compose(pixels)
        features = self.extractor(image)
        return total_loss(image, features, self.content_targets, self.style_targets, self.weights)

    def finish(self, pixels: np.ndarray) -> np.ndarray:
        """The user-facing image: composed with the content and colour-restored."""
        composed = self.compose(tf.constant(pixels[None], tf.float32))[0].numpy()
        return self.postprocess(np.clip(composed, 0.0, 1.0))


def _normalised(weights: Sequence[float], count: int, what: str) -> list[float]:
    if not weights:
        return [1.0 / count] * count
    if len(weights) != count:
        raise ValueError(f"{what}: expected {count} values, got {len(weights)}.")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def prepare(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    mask: np.ndarray | None = None,
) -> Problem:
    """Resize the inputs, build the extractor and compute all targets once."""
    if not styles:
        raise ValueError("styles: give at least one style image.")
    if mask is not None and len(styles) > 2:
        raise ValueError("mask: a mask works with one or two styles (white: first, black: second).")
    check_shape(content, what="content image")
    for style in styles:
        check_shape(style, what="style image")
    blend = _normalised(config.style_blend, len(styles), "style_blend")
    default_content, default_style = default_layers(config.backbone)
    content_layers = config.content_layers or default_content
    style_layers = config.style_layers or default_style
    layer_weights = dict(
        zip(
            style_layers,
            _normalised(config.style_layer_weights, len(style_layers), "style_layer_weights"),
        )
    )

    started = time.perf_counter()
    extractor = get_extractor(
        config.backbone,
        config.pooling,
        tuple(dict.fromkeys(content_layers + style_layers)),
        resolve_precision(config.precision),
    )
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
                # Both regions count fully; blend weights still scale each style.
                weight=weight * len(styles),
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


def stylize(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    *,
    mask: np.ndarray | None = None,
    init_image: np.ndarray | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[Event]:
    """Repaint ``content`` in the style of ``styles``.

    Args:
        content: float32 RGB in [0, 1], any size (resized to ``config.size``).
        styles: one or more style images, any size; blended by ``config.style_blend``.
        config: every setting of the run.
        mask: optional gray/RGB image in [0, 1]: white where the (first) style applies, black
            where the photo stays (or, with two styles, where the second style applies).
        init_image: optional warm start (e.g. a previous result), any size.
        cancel: set it to end the run early; the result keeps the best image so far.

    Yields:
        A ``Progress`` after each step, then exactly one ``Result`` as the last item.
    """
    started = time.perf_counter()
    cancel = cancel or CancelToken()
    problem = prepare(content, styles, config, mask)
    pixels = initial_pixels(problem, config, init_image)
    run = _adam if config.optimizer == "adam" else _lbfgs
    outcome = yield from run(problem, pixels, config, cancel, started)
    best_pixels, history, stopped, error, first_step = outcome
    final_loss = _evaluate(problem, best_pixels)
    timings = dict(problem.timings)
    timings.update(first_step=first_step, total=time.perf_counter() - started)
    timings["optimize"] = timings["total"] - timings["build"] - timings["targets"]
    yield Result(
        image=problem.finish(best_pixels),
        history=history,
        timings=timings,
        config=config,
        stopped=stopped,
        error=error,
        initial_loss=history[0]["loss"] if history else final_loss,
        final_loss=final_loss,
        steps_done=len(history),
    )


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

_Outcome = tuple[np.ndarray, list[dict[str, float]], bool, str | None, float]


def _record(step: int, total: float, parts: dict[str, Any], elapsed: float) -> dict[str, float]:
    return {
        "step": step,
        "loss": total,
        **{k: float(v) for k, v in parts.items()},
        "elapsed": elapsed,
    }


def _adam(
    problem: Problem, pixels: np.ndarray, config: StyleConfig, cancel: CancelToken, started: float
) -> Iterator[Event]:
    variable = tf.Variable(pixels[None], dtype=tf.float32)
    optimizer = keras.optimizers.Adam(
        learning_rate=config.learning_rate, beta_1=ADAM_BETA_1, epsilon=ADAM_EPSILON
    )

    @tf.function
    def train_step() -> tuple[tf.Tensor, tf.Tensor, dict[str, tf.Tensor]]:
        before = tf.identity(variable)
        with tf.GradientTape() as tape:
            total, parts = problem.objective(variable)
        gradient = tape.gradient(total, variable)
        optimizer.apply_gradients([(gradient, variable)])
        variable.assign(tf.clip_by_value(variable, 0.0, 1.0))
        return before, total, parts

    history: list[dict[str, float]] = []
    best_pixels, best_loss = pixels, float("inf")
    first_step = 0.0
    for step in range(1, config.steps + 1):
        if cancel.cancelled:
            return best_pixels, history, True, None, first_step
        step_started = time.perf_counter()
        before, total_tensor, parts = train_step()
        total = float(total_tensor)
        if step == 1:
            first_step = time.perf_counter() - step_started
        if not np.isfinite(total):
            error = _NUMERIC_ERROR.format(value=total, step=step)
            return best_pixels, history, False, error, first_step
        if total < best_loss:
            best_pixels, best_loss = before[0].numpy(), total
        elapsed = time.perf_counter() - started
        history.append(_record(step, total, parts, elapsed))
        last = step == config.steps
        preview = None
        if step % config.preview_every == 0 or last:
            preview = problem.finish(variable[0].numpy())
        yield Progress(step, config.steps, total, _floats(parts), elapsed, preview)
    # The final update is not in ``best_loss`` yet: keep it if it is at least as good.
    final = variable[0].numpy()
    if _evaluate(problem, final) <= best_loss:
        best_pixels = final
    return best_pixels, history, False, None, first_step


def _floats(parts: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in parts.items()}


class _Stop(Exception):
    """Raised inside scipy's loop to end it (cancelled, abandoned or non-finite)."""


def _lbfgs(
    problem: Problem, pixels: np.ndarray, config: StyleConfig, cancel: CancelToken, started: float
) -> Iterator[Event]:
    shape = (1, *pixels.shape)

    @tf.function(input_signature=[tf.TensorSpec([int(np.prod(shape))], tf.float32)])
    def value_and_gradient(flat: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor], tf.Tensor]:
        image = tf.reshape(flat, shape)
        with tf.GradientTape() as tape:
            tape.watch(image)
            total, parts = problem.objective(image)
        return total, parts, tf.reshape(tape.gradient(total, image), [-1])

    events: queue.Queue = queue.Queue()
    abandoned = threading.Event()
    state: dict[str, Any] = {
        "best": pixels,
        "best_loss": float("inf"),
        "last": None,
        "error": None,
        "first": 0.0,
        "evaluations": 0,
    }
    history: list[dict[str, float]] = []

    def value(flat: np.ndarray) -> tuple[float, np.ndarray]:
        if cancel.cancelled or abandoned.is_set():
            raise _Stop
        evaluation_started = time.perf_counter()
        total_tensor, parts, gradient = value_and_gradient(tf.constant(flat, tf.float32))
        total = float(total_tensor)
        state["evaluations"] += 1
        if state["evaluations"] == 1:
            state["first"] = time.perf_counter() - evaluation_started
        if not np.isfinite(total):
            state["error"] = _NUMERIC_ERROR.format(value=total, step=len(history) + 1)
            raise _Stop
        if total < state["best_loss"]:
            state["best"], state["best_loss"] = flat.reshape(pixels.shape).copy(), total
        state["last"] = (total, _floats(parts))
        return total, gradient.numpy().astype(np.float64)

    def on_iteration(current: np.ndarray) -> None:
        total, parts = state["last"]
        step = len(history) + 1
        elapsed = time.perf_counter() - started
        history.append(_record(step, total, parts, elapsed))
        preview = None
        if step % config.preview_every == 0 or step == config.steps:
            preview = problem.finish(current.reshape(pixels.shape).astype(np.float32))
        events.put(Progress(step, config.steps, total, parts, elapsed, preview))

    def worker() -> None:
        try:
            scipy.optimize.minimize(
                value,
                pixels.astype(np.float64).ravel(),
                jac=True,
                method="L-BFGS-B",
                bounds=scipy.optimize.Bounds(0.0, 1.0),
                callback=on_iteration,
                # Run the requested iterations: the tolerances only stop a converged run.
                options={
                    "maxiter": config.steps,
                    "maxfun": config.steps * 2,
                    "ftol": 1e-12,
                    "gtol": 1e-12,
                },
            )
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
    stopped = cancel.cancelled and len(history) < config.steps
    return state["best"].astype(np.float32), history, stopped, state["error"], state["first"]
