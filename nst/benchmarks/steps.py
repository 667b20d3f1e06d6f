"""The ``steps`` section: seconds per optimization step at each size, float32 and bfloat16, Adam,
L-BFGS and scipy's L-BFGS-B (the reference it replaced); the model's build time and the first
step's extra (tracing) time; the conv FLOP rate each step reaches against this machine's
ceiling, a large float32 and bfloat16 matmul timed in the same run."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nst.benchmarks.common import (
    DEFAULTS,
    median,
)
from nst.config import StyleConfig


def matmul_gflops(precision: str, size: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of a ``size`` x ``size`` matmul in ``precision``: the machine's compute ceiling.

    The median of ``repeats`` timed runs after one warm-up.
    """
    import tensorflow as tf

    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    generator = tf.random.Generator.from_seed(0)
    left = tf.cast(generator.normal([size, size]), dtype)
    right = tf.cast(generator.normal([size, size]), dtype)
    multiply = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)[:1, :1]))
    multiply(left, right).numpy()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        multiply(left, right).numpy()
        seconds.append(time.perf_counter() - started)
    return 2.0 * size**3 / median(seconds) / 1e9


def conv_flops(model: Any, height: int, width: int) -> float:
    """Forward FLOPs (2 per multiply-add) of the convolutions of a sequential VGG extractor.

    Walks the layers: a 'same' convolution keeps the spatial size, a pooling layer halves it.
    """
    import keras

    total = 0.0
    channels = 3
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel_height, kernel_width = layer.kernel_size
            total += 2.0 * height * width * kernel_height * kernel_width * channels * layer.filters
            channels = layer.filters
        elif isinstance(layer, keras.layers.MaxPooling2D | keras.layers.AveragePooling2D):
            height, width = height // 2, width // 2
    return total


def build_seconds(precision: str, backbone: str = DEFAULTS.backbone) -> float:
    """Seconds to build the default extractor (backbone and clone), fresh in this process."""
    from nst.engine.model import preload

    started = time.perf_counter()
    preload(backbone, precision=precision)
    return time.perf_counter() - started


def lbfgs_bookkeeping_seconds(variables: int, iterations: int = 20) -> float:
    """Seconds per iteration that scipy's L-BFGS-B spends on its own work for ``variables``
    unknowns: the part of an L-BFGS step that is not the network, measured on a diagonal
    quadratic whose value and gradient cost next to nothing (two passes over the vector)."""
    import scipy.optimize

    rng = np.random.default_rng(0)
    curvature = rng.uniform(0.5, 2.0, variables)

    def value(x: np.ndarray) -> tuple[float, np.ndarray]:
        gradient = curvature * x
        return 0.5 * float(x @ gradient), gradient

    started = time.perf_counter()
    outcome = scipy.optimize.minimize(
        value,
        rng.uniform(0.0, 1.0, variables),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": iterations, "maxfun": 2 * iterations, "ftol": 1e-12, "gtol": 1e-12},
    )
    return (time.perf_counter() - started) / max(1, int(outcome.nit))


def step_speed(
    content: np.ndarray,
    style: np.ndarray,
    size: int,
    precision: str,
    optimizer: str = "adam",
    steps: int = 6,
    base: StyleConfig = DEFAULTS,
) -> dict[str, Any]:
    """Seconds per step of the engine's own loop at one scale (median after the first step).

    ``first_step_extra`` is the first step's time beyond the median: the ``tf.function``
    tracing (and, for L-BFGS, scipy's set-up).
    """
    from nst.benchmarks.scipy_lbfgs import REFERENCE, engine_optimizer
    from nst.engine import Progress, Result
    from nst.front import stylize

    setting, function = engine_optimizer(optimizer)
    config = base.replace(
        size=size,
        steps=steps,
        precision=precision,
        optimizer=setting,
        scales=1,
        preview_every=1000,
    )
    stamps: list[float] = []
    result = None
    events = stylize(content, [style], config, optimizer=function, instant_first=False)
    for event in events:
        if isinstance(event, Progress):
            stamps.append(time.perf_counter())
        elif isinstance(event, Result):
            result = event
    assert result is not None
    intervals = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    seconds = median(intervals)
    height, width = result.image.shape[:2]
    extra = {}
    if optimizer == REFERENCE:
        extra["scipy_seconds_per_step"] = lbfgs_bookkeeping_seconds(height * width * 3)
    return {
        **extra,
        "size": size,
        "shape": [height, width],
        "precision": precision,
        "optimizer": optimizer,
        "seconds_per_step": seconds,
        "first_step_extra": max(0.0, result.timings["first_step"] - seconds),
        "targets_seconds": result.timings["targets"],
    }


def forward_backward_ratio(
    content: np.ndarray, size: int, precision: str, backbone: str = DEFAULTS.backbone
) -> float:
    """Time of forward + image gradient over forward alone: supports the x2 FLOP count."""
    import tensorflow as tf

    from nst.engine.model import preload
    from nst.images import resize_longest

    extractor = preload(backbone, precision=precision)
    image = tf.constant(resize_longest(content, size)[None])

    @tf.function
    def forward(pixels: tf.Tensor) -> tf.Tensor:
        return tf.add_n([tf.reduce_sum(value) for value in extractor(pixels).values()])

    @tf.function
    def backward(pixels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(pixels)
            total = forward(pixels)
        return tf.reduce_sum(tape.gradient(total, pixels))

    def timed(function: Callable[[tf.Tensor], tf.Tensor]) -> float:
        function(image).numpy()
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            function(image).numpy()
            runs.append(time.perf_counter() - started)
        return median(runs)

    return timed(backward) / timed(forward)


def steps_section(
    content: np.ndarray,
    style: np.ndarray,
    sizes: Sequence[int],
    precisions: Sequence[str] = ("float32", "bfloat16"),
    optimizers: Sequence[str] = ("adam", "lbfgs", "lbfgs-scipy"),
    steps: int = 6,
    matmul_size: int = 4096,
    base: StyleConfig = DEFAULTS,
) -> dict[str, Any]:
    """Step speed, build time, the matmul ceiling and the FLOP rate reached by each step.

    A step runs the truncated backbone forward and back to the image: the gradient of a
    convolution with respect to its input costs the same multiply-adds as its forward pass
    and no weight gradients are computed (the weights are constants), so a step is counted
    as 2 x the forward conv FLOPs (``forward_backward_ratio`` measures how close the time is).
    Pooling, ReLU, Gram matrices and the optimizer are not counted: they are overhead. The FLOP
    count walks a sequential VGG; for ResNet50 only the seconds are reported.
    """
    from nst.engine.model import preload, resolve_precision

    default = resolve_precision("auto")
    backbone = base.backbone
    builds = {precision: build_seconds(precision, backbone) for precision in precisions}
    ceiling_before = {precision: matmul_gflops(precision, matmul_size) for precision in precisions}
    rows = []
    for size in sizes:
        for precision in precisions:
            for optimizer in optimizers:
                row = step_speed(content, style, size, precision, optimizer, steps, base)
                if backbone.startswith("vgg"):
                    model = preload(backbone, precision=precision).model
                    flops = 2.0 * conv_flops(model, *row["shape"])
                    row["gflop_per_step"] = flops / 1e9
                    row["gflops"] = flops / row["seconds_per_step"] / 1e9
                rows.append(row)
    ceiling_after = {precision: matmul_gflops(precision, matmul_size) for precision in precisions}
    ceiling = {p: max(ceiling_before[p], ceiling_after[p]) for p in precisions}
    for row in rows:
        if "gflops" in row:
            row["ceiling_fraction"] = row["gflops"] / ceiling[row["precision"]]
    # The throughput target reads the step users run: the default optimizer and precision.
    default_steps = [
        row
        for row in rows
        if row["optimizer"] == base.optimizer and row["precision"] == default and "gflops" in row
    ]
    largest = max(default_steps, key=lambda row: row["size"]) if default_steps else None
    return {
        "build_seconds": builds,
        "ceiling_gflops": ceiling,
        "ceiling_runs_gflops": {"before": ceiling_before, "after": ceiling_after},
        "steps": rows,
        "forward_backward_ratio": forward_backward_ratio(content, max(sizes), default, backbone),
        "throughput_fraction": largest["ceiling_fraction"] if largest else None,
    }
