"""Adam on the pixels: a ``tf.function`` around ``tf.GradientTape``, as in the TensorFlow
tutorial, with moments carried from one scale to the next and a cosine at the end.

Departures from the tutorial, each for a reason the benchmark shows (``python -m nst.bench``,
figures in docs/benchmarks.md):

- beta_1 0.9 (Kingma & Ba's default, also crowsonkb/style-transfer-pytorch's) rather than the
  tutorial's 0.99, whose momentum overshoots for tens of steps after the first fast descent.
- A tiny epsilon rather than the tutorial's 0.1: that suited its raw loss's large gradients;
  next to our normalised loss's small gradients 0.1 would shrink every step a thousandfold. A
  tiny epsilon keeps the tutorial's behaviour: steps of about the learning rate per pixel.
- The rate falls along a cosine over the last steps (``learning_rate_at``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from nst.config import StyleConfig
from nst.engine.objective import Problem, evaluate
from nst.engine.scales import NUMERIC_ERROR, RunState, Scale, ScaleOutcome, floats
from nst.records import Progress

ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
ADAM_EPSILON = 1e-8


def learning_rate_at(config: StyleConfig, step: int, steps: int) -> float:
    """The learning rate of 0-based ``step`` of a scale's ``steps``.

    Constant, then over the last ``lr_decay`` share of the steps a cosine down to ``lr_end``
    times the rate. A departure from the tutorial's constant rate: Adam at a constant rate
    keeps jittering the pixels by about the rate; letting it fall at the end settles them,
    which lowers the loss sooner. There is no warm-up: Adam's first updates move every pixel by
    about the full rate, and although that overshoots for a few steps, a short linear warm-up
    ended higher (docs/benchmarks.md).
    """
    decay_steps = round(steps * config.lr_decay)
    start = steps - decay_steps
    if decay_steps < 2 or step < start:
        return config.learning_rate
    fraction = (step - start) / (decay_steps - 1)
    scale = config.lr_end + (1.0 - config.lr_end) * 0.5 * (1.0 + math.cos(math.pi * fraction))
    return config.learning_rate * scale


def adam_step(problem: Problem) -> Callable[..., Any]:
    """One Adam update as a ``tf.function`` (traced once per scale: the shapes are fixed).

    Adam is written out rather than taken from Keras so that its moments are plain tensors
    that can be carried (resized) from one scale to the next, and the rate can change each
    step without retracing.
    """

    if problem.tiled is not None:  # print sizes: the gradient tile by tile, then the update

        def tiled_step(
            image: tf.Tensor, m: tf.Tensor, v: tf.Tensor, learning_rate: tf.Tensor, count: tf.Tensor
        ) -> tuple[tf.Tensor, ...]:
            total, parts, gradient = problem.value_and_gradient(image)
            return (*_update(image, gradient, m, v, learning_rate, count), total, parts)

        return tiled_step

    @tf.function
    def train_step(
        image: tf.Tensor, m: tf.Tensor, v: tf.Tensor, learning_rate: tf.Tensor, count: tf.Tensor
    ) -> tuple[tf.Tensor, ...]:
        with tf.GradientTape() as tape:
            tape.watch(image)
            total, parts = problem.objective(image)
        gradient = tape.gradient(total, image)
        return (*_adam_update(image, gradient, m, v, learning_rate, count), total, parts)

    return train_step


def _adam_update(
    image: tf.Tensor,
    gradient: tf.Tensor,
    m: tf.Tensor,
    v: tf.Tensor,
    learning_rate: tf.Tensor,
    count: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Adam's moments and the updated image, clipped to [0, 1]."""
    m = ADAM_BETA_1 * m + (1.0 - ADAM_BETA_1) * gradient
    v = ADAM_BETA_2 * v + (1.0 - ADAM_BETA_2) * tf.square(gradient)
    m_hat = m / (1.0 - ADAM_BETA_1**count)
    v_hat = v / (1.0 - ADAM_BETA_2**count)
    update = learning_rate * m_hat / (tf.sqrt(v_hat) + ADAM_EPSILON)
    return tf.clip_by_value(image - update, 0.0, 1.0), m, v


# The update alone, traced once for every size (the tiled step's gradient comes from outside).
_update = tf.function(_adam_update)


def _resized(tensor: tf.Tensor, shape: tuple[int, int]) -> tf.Tensor:
    if tuple(tensor.shape[1:3]) == shape:
        return tensor
    return tf.image.resize(tensor, shape, method="bilinear")


def adam(
    problem: Problem,
    pixels: np.ndarray,
    run: RunState,
    scale: Scale,
    previous: ScaleOutcome | None,
) -> Iterator[Progress]:
    """Optimize ``pixels`` for one scale; yields a ``Progress`` per step, returns the
    ``ScaleOutcome``."""
    config = run.config
    shape = pixels.shape[:2]
    image = tf.constant(pixels[None], tf.float32)
    if previous is not None and previous.moments is not None:  # the last scale's, resized
        m, v, count = previous.moments
        m, v = _resized(m, shape), tf.maximum(_resized(v, shape), 0.0)
    else:
        m, v, count = tf.zeros_like(image), tf.zeros_like(image), 0
    train_step = adam_step(problem)
    best, best_loss = pixels, float("inf")
    for local in range(scale.steps):
        if run.cancel.cancelled:
            return ScaleOutcome(best, best, best_loss, stopped=True)
        step = scale.offset + local + 1
        count += 1
        step_started = time.perf_counter()
        new_image, m, v, total_tensor, parts = train_step(
            image,
            m,
            v,
            tf.constant(learning_rate_at(config, local, scale.steps), tf.float32),
            tf.constant(float(count), tf.float32),
        )
        total = float(total_tensor)
        if step == 1:
            run.timings["first_step"] = time.perf_counter() - step_started
            run.initial_loss = total  # Adam's loss is that of the image before its update
        if not np.isfinite(total):
            error = NUMERIC_ERROR.format(value=total, step=step)
            return ScaleOutcome(best, best, best_loss, error=error)
        if total < best_loss:
            best, best_loss = image[0].numpy(), total
        image = new_image
        yield run.progress(problem, step, total, floats(parts), lambda s=image: s[0].numpy())
    final = image[0].numpy()
    if not scale.last:
        return ScaleOutcome(best, final, best_loss, moments=(m, v, count))
    # The final update is not in ``best_loss`` yet: keep it if it is at least as good.
    final_loss = evaluate(problem, final)
    if final_loss <= best_loss:
        best, best_loss = final, final_loss
    return ScaleOutcome(best, best, best_loss, moments=(m, v, count))
