"""Benchmark of the engine on this machine: ``python -m nst.bench`` (``--json`` for one object).

Sections (``--only`` picks some; all but ``panel`` and ``video`` by default). Every section uses
``--backbone`` (default: the engine's) with the weights ``NST_WEIGHTS`` selects, so the same
command measures trained features (what users get) or random ones (mechanics only):

- ``steps``: seconds per optimization step at each ``--step-sizes`` size, float32 and bfloat16,
  Adam and L-BFGS; the model's build time and the first step's extra (tracing) time; the conv
  FLOP rate each step reaches against this machine's ceiling, a large float32 and bfloat16
  matmul timed in the same run.
- ``quality``: time to quality on ``--content`` x ``--style`` at ``--size`` (below).
- ``preview``: seconds from pressing go (model already built) to the first preview image at
  default settings.
- ``default``: seconds for a complete default-settings run at ``--size``.
- ``memory``: peak RSS of default runs at ``--memory-sizes``, each in a fresh process, and the
  largest size that fits in this machine's memory by a linear fit in the pixel count.
- ``panel``: the defaults on every photo x painting pair of two folders; a contact sheet and
  the figures a person judges (``nst.quality``: edges kept, palette moved).
- ``queue``: jobs per minute through the in-process queue and through Redis with 1 and 2
  workers, and the latency from a worker's preview to the page (``nst.bench_queue``).
- ``video``: the synthetic clip stylized frame by frame and with the temporal method at 256 px
  (``nst.bench_video``): seconds per frame, temporal error, content and style losses.

Time to quality. The *evaluation objective* is the default loss in float32 at the full size.
The *reference* is the recipe of the TensorFlow style-transfer tutorial: Adam with learning rate
0.02, beta_1 0.99, 1000 steps at one scale in float32, starting from the content and clipping
to [0, 1] after each step. It gives the reference loss L_ref (the evaluation objective of its
final image) and time T_ref. The product's default run is then timed, in float32 and in the
precision ``auto`` picks here if that is another, until the evaluation objective of its
current image first falls to L_ref or below (time T); the ratio is T_ref / T. The default run
must get there within its own steps: nothing is added for the benchmark.

A departure from the tutorial, and why: its Adam epsilon of 0.1 was chosen against its raw,
unnormalised loss, whose pixel gradients are about 1e2 (its total-variation term alone, 30 x a
sum of absolute differences, gives each pixel a gradient of 30 to 120), so epsilon was about
1e-3 of the gradients and Adam took steps of about the learning rate per pixel. Our normalised
loss has gradients of about 2.5e-4 per pixel at 512 px, where an epsilon of 0.1 would shrink
every step several hundred-fold and the reference would barely move. Adam is invariant to the
scale of the loss except through epsilon, so the faithful translation keeps epsilon's *ratio*
to the gradient: the reference uses epsilon = 1e-3 x the root mean square of its first
gradient. (The engine's own epsilon, 1e-8, is as negligible.)

Timing rules: the model is built before any timed section; the product's run keeps the image
of every step with the engine's own elapsed time, and the images are evaluated after the run,
so that the evaluations neither pause nor slow it (L-BFGS runs in a thread of its own). The
machine may be shared: check the load average printed with the table, repeat runs and read the
medians.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from nst.config import BACKBONES, PRECISIONS, StyleConfig

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
DEFAULT_CONTENT = DEFAULT_IMAGES / "content" / "tubingen.jpg"
DEFAULT_STYLE = DEFAULT_IMAGES / "style" / "starry_night.jpg"
SECTIONS = ("steps", "quality", "preview", "default", "memory", "panel", "video", "queue")
# What a plain ``python -m nst.bench`` runs; the panel (minutes per pair) only when asked.
DEFAULT_SECTIONS = ("steps", "quality", "preview", "default", "memory")

# The TensorFlow tutorial's recipe (https://www.tensorflow.org/tutorials/generative/style_transfer).
REFERENCE_STEPS = 1000
REFERENCE_LEARNING_RATE = 0.02
REFERENCE_BETA_1 = 0.99
REFERENCE_EPSILON_RATIO = 1e-3  # the tutorial's epsilon relative to its gradients (see above)
# The fast path's images are evaluated every this many steps (then densely where the target is
# first reached): each evaluation costs about half a step.
EVALUATION_STRIDE = 5
# With --pictures, the reference's image is kept every this many steps.
PICTURE_EVERY = 100

DEFAULTS = StyleConfig()

# Targets, for the table's last column: time to quality on trained VGG16 at 512 px in float32
# (what every CPU without native bfloat16 runs) and in bfloat16 where it is native; the first
# preview after pressing Stylize; a default run at 512 px; the step's share of the ceiling.
TARGETS = {
    "ratio_float32": 10.0,
    "ratio_native": 20.0,
    "first_preview_seconds": 2.0,
    "default_run_seconds": 60.0,
    "throughput_fraction": 0.9,
}


# ----- inputs and machine ---------------------------------------------------------------------


def load_inputs(content: str | Path, style: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The content and style images as float32 RGB in [0, 1] (read, never copied)."""
    from nst.images import load_image

    return load_image(content), load_image(style)


def machine_info() -> dict[str, Any]:
    """CPU model, core count, memory, bfloat16 support and library versions."""
    import psutil
    import tensorflow as tf

    from nst.model import cpu_has_bf16, has_gpu, resolve_precision, weights_mode

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count() or 1,
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "cpu_bf16": cpu_has_bf16(),
        "gpu": has_gpu(),
        "default_precision": resolve_precision("auto"),
        "weights": weights_mode(),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# ----- ceiling and FLOPs ----------------------------------------------------------------------


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
    return 2.0 * size**3 / _median(seconds) / 1e9


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


# ----- step speed -----------------------------------------------------------------------------


def build_seconds(precision: str, backbone: str = DEFAULTS.backbone) -> float:
    """Seconds to build the default extractor (backbone and clone), fresh in this process."""
    from nst.model import preload

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
    from nst.stylize import Progress, Result, stylize

    config = base.replace(
        size=size,
        steps=steps,
        precision=precision,
        optimizer=optimizer,
        scales=1,
        preview_every=1000,
    )
    stamps: list[float] = []
    result = None
    for event in stylize(content, [style], config):
        if isinstance(event, Progress):
            stamps.append(time.perf_counter())
        elif isinstance(event, Result):
            result = event
    assert result is not None
    intervals = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    seconds = _median(intervals)
    height, width = result.image.shape[:2]
    extra = {}
    if optimizer == "lbfgs":
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

    from nst.images import resize_longest
    from nst.model import preload

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
        return _median(runs)

    return timed(backward) / timed(forward)


def steps_section(
    content: np.ndarray,
    style: np.ndarray,
    sizes: Sequence[int],
    precisions: Sequence[str] = ("float32", "bfloat16"),
    optimizers: Sequence[str] = ("adam", "lbfgs"),
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
    from nst.model import preload, resolve_precision

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


# ----- time to quality ------------------------------------------------------------------------


def evaluation_config(size: int, base: StyleConfig = DEFAULTS) -> StyleConfig:
    """The fixed evaluation objective: ``base``'s loss (the defaults') in float32 at ``size``."""
    return base.replace(size=size, precision="float32")


def reference_run(
    content: np.ndarray,
    style: np.ndarray,
    size: int,
    steps: int = REFERENCE_STEPS,
    base: StyleConfig = DEFAULTS,
    pictures: str | Path | None = None,
) -> dict[str, Any]:
    """The TensorFlow tutorial's recipe on the evaluation objective; see the module docstring.

    With ``pictures``, the image every ``PICTURE_EVERY`` steps is written there as
    ``reference_STEP.png`` after the clock stops (copies are kept in memory meanwhile), to see
    how much of the loss's tail shows.

    The clock starts before the targets are computed (model already built), as for the
    product's run, and excludes only the one-off calibration of epsilon.
    """
    import keras
    import tensorflow as tf

    from nst.stylize import prepare

    config = evaluation_config(size, base)
    probe = prepare(content, [style], config)
    start = tf.constant(probe.content[None])
    with tf.GradientTape() as tape:
        tape.watch(start)
        total, _ = probe.objective(start)
    gradient = tape.gradient(total, start)
    epsilon = REFERENCE_EPSILON_RATIO * float(tf.sqrt(tf.reduce_mean(tf.square(gradient))))

    started = time.perf_counter()
    problem = prepare(content, [style], config)
    image = tf.Variable(problem.content[None])
    optimizer = keras.optimizers.Adam(
        learning_rate=REFERENCE_LEARNING_RATE, beta_1=REFERENCE_BETA_1, epsilon=epsilon
    )

    @tf.function
    def train_step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            total, _ = problem.objective(image)
        optimizer.apply_gradients([(tape.gradient(total, image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return total

    curve, snapshots = [], {}
    for step in range(1, steps + 1):
        loss = float(train_step())
        if step == 1 or step % 10 == 0:
            curve.append([step, time.perf_counter() - started, loss])
        if pictures is not None and (step % PICTURE_EVERY == 0 or step == steps):
            snapshots[step] = image[0].numpy()
    seconds = time.perf_counter() - started
    final_loss = float(problem.objective(tf.constant(image.numpy()))[0])
    if pictures is not None:
        from nst.images import save_image

        for step, picture in snapshots.items():
            save_image(picture, Path(pictures) / f"reference_{step}.png")
    return {
        "loss": final_loss,
        "seconds": seconds,
        "steps": steps,
        "epsilon": epsilon,
        "curve": curve,
    }


def fast_run(
    content: np.ndarray,
    style: np.ndarray,
    size: int,
    target_loss: float,
    config: StyleConfig | None = None,
    stride: int = EVALUATION_STRIDE,
    base: StyleConfig = DEFAULTS,
) -> dict[str, Any]:
    """Time until a run's image first reaches ``target_loss`` on the evaluation objective.

    ``config`` defaults to ``base`` (the product's defaults) at ``size``: the default run is
    the one timed. Every step's image is kept with the engine's own elapsed time and evaluated
    after the run, so the evaluations cost the run nothing. Every ``stride``-th image is
    evaluated, then each image just before the first that reaches the target; the curve ends
    there. The final image is always evaluated: if only it reaches the target, the run's total
    time counts.
    """
    import tensorflow as tf

    from nst.model import resolve_precision
    from nst.stylize import Progress, Result, prepare, stylize

    config = (config or base).replace(size=size, preview_every=1)
    frames: list[tuple[int, float, np.ndarray]] = []
    result = None
    for event in stylize(content, [style], config):
        if isinstance(event, Result):
            result = event
        elif isinstance(event, Progress) and event.preview is not None:
            frames.append((event.step, event.elapsed, event.preview))
    assert result is not None

    evaluator = prepare(content, [style], evaluation_config(size, base))

    def evaluate(image: np.ndarray) -> float:
        return float(evaluator.objective(tf.constant(image[None]))[0])

    # The loss falls almost monotonically; a dip below the target between two evaluated images
    # that is missed only counts against the fast path.
    losses: dict[int, float] = {}
    for index in range(0, len(frames), stride):
        losses[index] = evaluate(frames[index][2])
        if losses[index] <= target_loss:
            for earlier in range(max(0, index - stride + 1), index):
                losses[earlier] = evaluate(frames[earlier][2])
            break
    curve = [[frames[i][0], frames[i][1], loss] for i, loss in sorted(losses.items())]
    final_loss = evaluate(result.image)
    below = [elapsed for _, elapsed, loss in curve if loss <= target_loss]
    reached = below[0] if below else None
    if reached is None and final_loss <= target_loss:
        reached = result.timings["total"]
    defaults = base.to_dict()
    return {
        "config": {key: value for key, value in config.to_dict().items() if value != defaults[key]},
        "precision": resolve_precision(config.precision),
        "seconds_to_quality": reached,
        "seconds": result.timings["total"],
        "final_loss": final_loss,
        "steps": result.steps_done,
        "note": result.note,
        "curve": curve[:: max(1, len(curve) // 100)],
    }


def reference_seconds_at(reference: dict[str, Any], loss: float) -> float | None:
    """Seconds the reference took to first reach ``loss`` (linear between its curve's points),
    or None if it never did."""
    previous = None
    for _step, seconds, value in reference["curve"]:
        if value <= loss:
            if previous is None or previous[1] == value:
                return seconds
            fraction = (previous[1] - loss) / (previous[1] - value)
            return previous[0] + fraction * (seconds - previous[0])
        previous = (seconds, value)
    return reference["seconds"] if reference["loss"] <= loss else None


def quality_precisions(config: StyleConfig) -> list[str]:
    """float32 (what every CPU without native bfloat16 runs), then the precision ``config``
    resolves to here, if that is another one."""
    from nst.model import resolve_precision

    if config.precision != "auto":
        return [config.precision]
    chosen = resolve_precision("auto")
    return ["float32"] if chosen == "float32" else ["float32", chosen]


def quality_section(
    content: np.ndarray,
    style: np.ndarray,
    size: int,
    reference_steps: int = REFERENCE_STEPS,
    reference: dict[str, Any] | None = None,
    fast_config: StyleConfig | None = None,
    base: StyleConfig = DEFAULTS,
    pictures: str | Path | None = None,
) -> dict[str, Any]:
    """The reference recipe, then the fast path in each of ``quality_precisions``; the ratios.

    The last fast row is the one in the default precision (the headline ratio)."""
    reference = reference or reference_run(content, style, size, reference_steps, base, pictures)
    config = fast_config or base
    rows = []
    for precision in quality_precisions(config):
        row = fast_run(
            content, style, size, reference["loss"], config.replace(precision=precision), base=base
        )
        reached = row["seconds_to_quality"]
        row["time_to_quality_ratio"] = reference["seconds"] / reached if reached else None
        matched = reference_seconds_at(reference, row["final_loss"])
        row["reference_seconds_to_match"] = matched
        row["equal_quality_ratio"] = matched / row["seconds"] if matched else None
        rows.append(row)
    return {
        "size": size,
        "backbone": base.backbone,
        "reference": reference,
        "fast": rows,
        "time_to_quality_ratio": rows[-1]["time_to_quality_ratio"],
    }


# ----- previews, default run, memory ----------------------------------------------------------


def first_preview_seconds(
    content: np.ndarray, style: np.ndarray, size: int, base: StyleConfig = DEFAULTS
) -> float:
    """Seconds from pressing go (model built) to the first preview, at default settings, with
    the sketch the studio's image jobs start with (``nst.jobs.backend.run_image``)."""
    from nst.stylize import Progress, stylize

    started = time.perf_counter()
    events = stylize(content, [style], base.replace(size=size), sketch=True)
    try:
        for event in events:
            if isinstance(event, Progress) and event.preview is not None:
                return time.perf_counter() - started
    finally:
        events.close()
    return float("nan")


def default_run(
    content: np.ndarray, style: np.ndarray, size: int, base: StyleConfig = DEFAULTS
) -> dict[str, Any]:
    """A complete run at default settings (model built): total seconds and their split."""
    from nst.stylize import run_stylize

    started = time.perf_counter()
    result = run_stylize(content, [style], base.replace(size=size))
    return {
        "size": size,
        "seconds": time.perf_counter() - started,
        "steps": result.steps_done,
        "timings": result.timings,
        "final_loss": result.final_loss,
    }


def peak_rss_probe(
    content_path: str,
    style_path: str,
    size: int,
    precision: str,
    optimizer: str,
    base: StyleConfig = DEFAULTS,
) -> dict[str, Any]:
    """Run a few full-size steps in this process and report its peak RSS (for ``--memory``)."""
    import nst.stylize as engine
    from nst.images import load_image

    content, style = load_image(content_path), load_image(style_path)
    engine.check_memory = lambda *args: None  # measure, do not refuse
    config = base.replace(size=size, steps=3, scales=1, precision=precision, optimizer=optimizer)
    engine.run_stylize(content, [style], config)
    # ru_maxrss is in kilobytes on Linux.
    return {
        "size": size,
        "precision": precision,
        "optimizer": optimizer,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def memory_section(
    content_path: str | Path,
    style_path: str | Path,
    sizes: Sequence[int],
    precision: str = DEFAULTS.precision,
    optimizer: str = DEFAULTS.optimizer,
    backbone: str = DEFAULTS.backbone,
) -> dict[str, Any]:
    """Peak RSS per size (each in a fresh process) and the largest size that fits here."""
    import psutil

    from nst.images import load_image, working_shape
    from nst.model import resolve_precision

    precision = resolve_precision(precision)
    rows = []
    for size in sizes:
        command = [
            sys.executable,
            "-m",
            "nst.bench",
            "--memory-probe",
            str(size),
            "--precision",
            precision,
            "--optimizer",
            optimizer,
            "--content",
            str(content_path),
            "--style",
            str(style_path),
            "--backbone",
            backbone,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            rows.append({"size": size, "error": done.stderr.strip().splitlines()[-1:]})
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["shape"] = list(working_shape(*load_image(content_path).shape[:2], size))
        rows.append(row)
    measured = [row for row in rows if "peak_rss_bytes" in row]
    total = psutil.virtual_memory().total
    largest = None
    if len(measured) >= 2 and len({row["size"] for row in measured}) >= 2:
        pixels = np.array([row["shape"][0] * row["shape"][1] for row in measured], float)
        peaks = np.array([row["peak_rss_bytes"] for row in measured], float)
        per_pixel, base = (float(value) for value in np.polyfit(pixels, peaks, 1))
        per_pixel = max(per_pixel, 1.0)  # tiny sizes in tests: noise can tilt the line
        aspect = measured[0]["shape"][0] / measured[0]["shape"][1]
        fits = (total - base) / per_pixel  # pixels that fit in all of this machine's memory
        largest = {
            "bytes_per_pixel": per_pixel,
            "base_bytes": base,
            "memory_bytes": total,
            "longest_side": int(math.sqrt(fits / min(aspect, 1 / aspect))),
            "square_side": int(math.sqrt(fits)),
        }
    return {"precision": precision, "optimizer": optimizer, "runs": rows, "largest": largest}


# ----- quality panel --------------------------------------------------------------------------

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def _images_in(folder: str | Path) -> list[Path]:
    paths = sorted(path for path in Path(folder).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder}: no images (.jpg, .png, .webp) in this folder.")
    return paths


def panel_section(
    content_folder: str | Path,
    style_folder: str | Path,
    size: int,
    output: str | Path,
    base: StyleConfig = DEFAULTS,
    config: StyleConfig | None = None,
) -> dict[str, Any]:
    """The defaults on every content x style pair of two folders: one contact sheet and figures.

    Writes ``output``.png (photo, painting, result and figures per pair) and ``output``.json.
    Per pair: the loss parts of the result on the float32 objective, seconds and steps, the
    edge agreement with the photo (and, for scale, the painting's own agreement with the
    photo) and the palette shift toward the painting (``nst.quality``).
    """
    import tensorflow as tf

    from nst import quality
    from nst.images import load_image
    from nst.stylize import prepare, run_stylize

    config = (config or base).replace(size=size)
    rows, entries = [], []
    for content_path in _images_in(content_folder):
        photo = load_image(content_path)
        for style_path in _images_in(style_folder):
            painting = load_image(style_path)
            result = run_stylize(photo, [painting], config)
            evaluator = prepare(photo, [painting], evaluation_config(size, base))
            total, parts = evaluator.objective(tf.constant(result.image[None]))
            row = {
                "content": content_path.name,
                "style": style_path.name,
                "loss": float(total),
                "parts": {name: float(value) for name, value in parts.items()},
                "seconds": result.timings["total"],
                "steps": result.steps_done,
                "edge_agreement": quality.edge_agreement(photo, result.image),
                "edge_agreement_painting": quality.edge_agreement(photo, painting),
                "palette_shift": quality.palette_shift(photo, painting, result.image),
                "note": result.note,
            }
            rows.append(row)
            part_text = " + ".join(f"{name} {value:.3f}" for name, value in row["parts"].items())
            entries.append(
                quality.PanelEntry(
                    content_path.stem,
                    style_path.stem,
                    photo,
                    painting,
                    result.image,
                    [
                        f"loss {row['loss']:.3f} = {part_text}",
                        f"{row['seconds']:.1f} s, {row['steps']} steps",
                        f"edges kept {row['edge_agreement']:.2f} "
                        f"(painting itself {row['edge_agreement_painting']:.2f})",
                        f"palette moved {row['palette_shift']:.2f} of the way",
                    ],
                )
            )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".png").write_bytes(quality.contact_sheet(entries))
    summary = {
        "size": size,
        "config": config.to_dict(),
        "pairs": rows,
        "median_edge_agreement": _median([row["edge_agreement"] for row in rows]),
        "median_palette_shift": _median([row["palette_shift"] for row in rows]),
        "sheet": str(output.with_suffix(".png")),
    }
    output.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    return summary


# ----- report ---------------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Every requested section, in order, as one JSON-serialisable dict."""
    from nst.model import preload, resolve_precision

    base = StyleConfig(backbone=args.backbone, precision=args.precision)
    content, style = load_inputs(args.content, args.style)
    sections = args.only.split(",") if args.only else list(DEFAULT_SECTIONS)
    report: dict[str, Any] = {"machine": machine_info(), "size": args.size}
    report["machine"]["backbone"] = args.backbone
    if "steps" in sections:
        report.update(steps_section(content, style, args.step_sizes, steps=args.steps, base=base))
    preload(args.backbone, precision=resolve_precision("auto"))
    preload(args.backbone, precision="float32")
    if "quality" in sections:
        reference = None
        if args.reference and Path(args.reference).is_file():
            reference = json.loads(Path(args.reference).read_text())
        fast_config = _parse_config(args.fast, base) if args.fast else None
        quality = quality_section(
            content,
            style,
            args.size,
            args.reference_steps,
            reference,
            fast_config,
            base,
            args.pictures,
        )
        if args.reference and reference is None:
            Path(args.reference).write_text(json.dumps(quality["reference"]))
        report["time_to_quality"] = quality
        report["time_to_quality_ratio"] = quality["time_to_quality_ratio"]
    if "preview" in sections:
        runs = [first_preview_seconds(content, style, args.size, base) for _ in range(args.repeats)]
        report["first_preview_seconds"] = _median(runs)
        report["first_preview_runs"] = runs
    if "default" in sections:
        runs = [default_run(content, style, args.size, base) for _ in range(args.repeats)]
        report["default_run"] = runs[len(runs) // 2]
        report["default_run_seconds"] = _median([run["seconds"] for run in runs])
        report["default_run_runs"] = [run["seconds"] for run in runs]
    if "memory" in sections:
        report["memory"] = memory_section(
            args.content,
            args.style,
            args.memory_sizes,
            precision=args.precision,
            backbone=args.backbone,
        )
    if "panel" in sections:
        fast_config = _parse_config(args.fast, base) if args.fast else None
        report["panel"] = panel_section(
            args.panel_content, args.panel_style, args.size, args.panel_out, base, fast_config
        )
    if "video" in sections:
        from nst.bench_video import video_section

        report["video"] = video_section(style, config=base)
    if "queue" in sections:
        from nst.bench_queue import queue_section

        report["queue"] = queue_section(content, style, config=base)
    report["machine"]["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
    return report


def _parse_config(text: str, base: StyleConfig = DEFAULTS) -> StyleConfig:
    """``key=value,key=value`` (as on the command line) over ``base`` into a config."""
    values = dict(item.split("=", 1) for item in text.split(",") if item.strip())
    return StyleConfig(**{**base.to_dict(), **values})


def _seconds(value: float | None) -> str:
    return "not reached" if value is None or not math.isfinite(value) else f"{value:.2f} s"


def format_table(report: dict[str, Any]) -> str:
    """The report as Markdown: the machine, then one table of figures and targets."""
    machine = report["machine"]
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB, "
        f"{'a GPU' if machine['gpu'] else 'no GPU'}, bfloat16 "
        f"{'native' if machine['cpu_bf16'] else 'emulated'}; TensorFlow {machine['tensorflow']}; "
        f"load average {machine['load_average'][0]} at start, "
        f"{machine.get('load_average_end', ['?'])[0]} at end.",
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
    ]

    def row(name: str, value: str, target: str = "") -> None:
        lines.append(f"| {name} | {value} | {target} |")

    for precision, seconds in report.get("build_seconds", {}).items():
        row(f"model build ({precision})", f"{seconds:.2f} s")
    for precision, gflops in report.get("ceiling_gflops", {}).items():
        row(f"ceiling: 4096² matmul, {precision}", f"{gflops:.0f} GFLOP/s")
    for step in report.get("steps", []):
        height, width = step["shape"]
        name = f"{step['optimizer']} step {width}×{height} {step['precision']}"
        value = (
            f"{step['seconds_per_step']:.3f} s (+{step['first_step_extra']:.2f} s first); "
            f"{step['gflops']:.0f} GFLOP/s = {100 * step['ceiling_fraction']:.0f}% of ceiling"
        )
        if "scipy_seconds_per_step" in step:
            value += f"; scipy's own part {step['scipy_seconds_per_step']:.3f} s"
        row(name, value)
    if report.get("throughput_fraction") is not None:
        row(
            "step throughput, default step and precision",
            f"{100 * report['throughput_fraction']:.0f}% of ceiling "
            f"(forward+backward = {report['forward_backward_ratio']:.2f}× forward)",
            "≥ 90%",
        )
    quality = report.get("time_to_quality")
    if quality:
        reference = quality["reference"]
        features = f"{quality.get('backbone', 'vgg19')}, {machine.get('weights', '?')} weights"
        row(
            f"reference (tutorial recipe, {reference['steps']} steps, float32) at "
            f"{quality['size']} px, {features}",
            f"{reference['seconds']:.1f} s, loss L_ref {reference['loss']:.4f}",
        )
        for fast in quality["fast"]:
            settings = ", ".join(
                f"{key} {value}"
                for key, value in fast["config"].items()
                if key not in ("size", "preview_every", "precision")
            )
            row(
                f"{settings or 'default run'} in {fast['precision']}: time to L_ref",
                f"{_seconds(fast['seconds_to_quality'])} ({fast['steps']} steps in "
                f"{fast['seconds']:.1f} s, final loss {fast['final_loss']:.4f})",
            )
            ratio = fast["time_to_quality_ratio"]
            target = TARGETS["ratio_float32" if fast["precision"] == "float32" else "ratio_native"]
            row(
                f"time-to-quality ratio, {fast['precision']}",
                f"{ratio:.1f}×" if ratio else "not reached",
                f"≥ {target:g}×",
            )
            matched, equal = fast.get("reference_seconds_to_match"), fast.get("equal_quality_ratio")
            if matched and equal:
                row(
                    f"equal-quality ratio, {fast['precision']}: the reference's time to the "
                    "default run's final loss, over the default run's time",
                    f"{matched:.1f} s / {fast['seconds']:.1f} s = {equal:.1f}×",
                )
    if "first_preview_seconds" in report:
        row(
            "first preview, defaults",
            _seconds(report["first_preview_seconds"]),
            f"≤ {TARGETS['first_preview_seconds']:g} s",
        )
    if "default_run_seconds" in report:
        run = report["default_run"]
        row(
            f"default run at {run['size']} px ({run['steps']} steps)",
            _seconds(report["default_run_seconds"]),
            f"≤ {TARGETS['default_run_seconds']:g} s",
        )
    memory = report.get("memory")
    if memory:
        for run in memory["runs"]:
            if "peak_rss_bytes" in run:
                height, width = run["shape"]
                row(
                    f"peak RSS {width}×{height} ({memory['precision']}, {memory['optimizer']})",
                    f"{run['peak_rss_bytes'] / 1e9:.2f} GB",
                )
            else:
                row(f"peak RSS at {run['size']} px", f"failed: {run['error']}")
        largest = memory["largest"]
        if largest:
            row(
                f"largest size in {largest['memory_bytes'] / 1e9:.0f} GB",
                f"{largest['longest_side']} px (this aspect), {largest['square_side']} px square",
            )
    if report.get("video"):
        from nst.bench_video import format_rows

        for name, value, target in format_rows(report["video"]):
            row(name, value, target)
    if "queue" in report:
        from nst.bench_queue import format_rows as queue_rows

        for name, value, target in queue_rows(report["queue"]):
            row(name, value, target)
    return "\n".join(lines)


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nst.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--content", default=str(DEFAULT_CONTENT), help="content image")
    parser.add_argument("--style", default=str(DEFAULT_STYLE), help="style image")
    parser.add_argument("--size", type=int, default=512, help="size of the quality/default runs")
    parser.add_argument("--step-sizes", type=_sizes, default=[256, 512], help="e.g. 256,512")
    parser.add_argument("--steps", type=int, default=6, help="steps timed per step measurement")
    parser.add_argument("--memory-sizes", type=_sizes, default=[512, 1024, 2048])
    parser.add_argument("--reference-steps", type=int, default=REFERENCE_STEPS)
    parser.add_argument(
        "--reference", help="JSON file: reuse the reference run stored there, or store it there"
    )
    parser.add_argument(
        "--pictures",
        help=f"folder: write the reference's image every {PICTURE_EVERY} steps there",
    )
    parser.add_argument(
        "--fast",
        help="time (quality) or show (panel) other settings than the defaults, e.g. "
        "optimizer=adam,steps=300 (precision too, or each of float32 and the default)",
    )
    parser.add_argument(
        "--backbone",
        default=DEFAULTS.backbone,
        choices=BACKBONES,
        help="backbone of every section; its weights follow NST_WEIGHTS",
    )
    parser.add_argument(
        "--panel-content", default=str(DEFAULT_IMAGES / "content"), help="panel: photo folder"
    )
    parser.add_argument(
        "--panel-style", default=str(DEFAULT_IMAGES / "style"), help="panel: painting folder"
    )
    parser.add_argument(
        "--panel-out",
        default="out/panel",
        help="panel: writes this path's .png (contact sheet) and .json (figures)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of preview/default (median)")
    parser.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=DEFAULTS.precision,
        help="precision of the preview, default and memory runs (the step and quality sections "
        "time float32 and bfloat16 themselves)",
    )
    parser.add_argument("--optimizer", default=DEFAULTS.optimizer, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.memory_probe:
        probe = peak_rss_probe(
            args.content,
            args.style,
            args.memory_probe,
            args.precision,
            args.optimizer,
            StyleConfig(backbone=args.backbone),
        )
        print(json.dumps(probe))
        return 0
    if args.only and not set(args.only.split(",")) <= set(SECTIONS):
        print(f"--only: choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    report = run_benchmark(args)
    print(json.dumps(report) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
