"""A run: check it once, show the instant picture, optimize scale by scale, hand back the result.

``stylize`` is the engine's entry point: a generator of ``Progress`` records that ends with one
``Result``. It checks the run once (``check_run``: settings against inputs, image shapes,
memory), then ``optimize`` (which trusts its caller, like ``prepare``) goes through the scales
with Adam or L-BFGS. A caller that checked the run itself (a video checks once for all its
frames) calls ``optimize`` directly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import numpy as np

from nst.config import StyleConfig, validate
from nst.engine.adam import adam
from nst.engine.lbfgs import lbfgs
from nst.engine.memory import check_memory
from nst.engine.objective import ExtraLoss, Problem, evaluate, initial_pixels, prepare
from nst.engine.scales import RunState, Scale, ScaleOutcome, plan_scales
from nst.images import check_shape, resize_to, working_shape
from nst.records import CancelToken, Progress, Result

Event = Progress | Result
logger = logging.getLogger(__name__)

# One scale's optimizer: (problem, pixels, run, scale, previous outcome) -> progress records,
# returning the scale's ``ScaleOutcome``.
ScaleOptimizer = Callable[
    [Problem, np.ndarray, RunState, Scale, ScaleOutcome | None],
    Generator[Progress, None, ScaleOutcome],
]
OPTIMIZERS: dict[str, ScaleOptimizer] = {"adam": adam, "lbfgs": lbfgs}


def check_run(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    mask: np.ndarray | None = None,
) -> None:
    """Raise ``ValueError`` (one plain sentence) if the run cannot start: the settings against
    the inputs, the images' shapes, the memory it needs."""
    validate(config, len(styles), mask is not None)
    check_shape(content, what="content image")
    check_memory(config, content.shape)
    for style in styles:
        check_shape(style, what="style image")


def stylize(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    *,
    mask: np.ndarray | None = None,
    init_image: np.ndarray | None = None,
    cancel: CancelToken | None = None,
    extra_loss: ExtraLoss | None = None,
    instant_preview: bool = False,
) -> Iterator[Event]:
    """Repaint ``content`` in the style of ``styles``.

    With ``config.scales`` > 1 the image is optimized coarse to fine (``nst.engine.scales``):
    first at a small size, then each result is upsampled to warm-start the next, larger scale,
    up to the output size.

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
        instant_preview: show the instant network's picture (``nst.instant``) as the first
            preview, a ``Progress`` with step 0, before the optimizer's network is even built,
            when the run starts afresh (no ``init_image``, no ``extra_loss``); for views that
            show previews. With ``config.init == "instant"`` the optimizer starts from it.

    Yields:
        A ``Progress`` after each step (numbered across all scales; previews are always at the
        output size), then exactly one ``Result`` as the last item.
    """
    started = time.perf_counter()
    check_run(content, styles, config, mask)
    return (
        yield from optimize(
            content,
            styles,
            config,
            mask=mask,
            init_image=init_image,
            cancel=cancel,
            extra_loss=extra_loss,
            instant_preview=instant_preview,
            started=started,
        )
    )


def optimize(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    *,
    mask: np.ndarray | None = None,
    init_image: np.ndarray | None = None,
    cancel: CancelToken | None = None,
    extra_loss: ExtraLoss | None = None,
    instant_preview: bool = False,
    started: float | None = None,
    optimizer: ScaleOptimizer | None = None,
) -> Iterator[Event]:
    """``stylize`` for a run its caller has checked (``check_run``); the same arguments, and
    ``optimizer`` in place of ``config.optimizer``'s (the benchmarks' scipy reference)."""
    started = time.perf_counter() if started is None else started
    scales = plan_scales(config, warm_start=init_image is not None)
    if extra_loss is not None and len(scales) > 1:
        raise ValueError("scales: extra loss terms need a single scale; set scales to 1.")
    run = RunState(
        config,
        cancel or CancelToken(),
        started,
        working_shape(*content.shape[:2], config.size),
    )
    timings = {"build": 0.0, "targets": 0.0}

    def prepared(scale_config: StyleConfig) -> Problem:
        problem = prepare(content, styles, scale_config, mask, extra_loss)
        timings["build"] += problem.timings["build"]
        timings["targets"] += problem.timings["targets"]
        return problem

    start_image, shown = init_image, None
    fresh = init_image is None and extra_loss is None
    if init_image is None and (config.init == "instant" or (instant_preview and fresh)):
        instant = _instant_picture(content, styles, config, mask, run)
        if instant is not None and instant_preview and fresh and not run.cancel.cancelled:
            shown = instant
            yield Progress(0, config.steps, float("nan"), {}, run.elapsed(), instant)
        if config.init == "instant":
            start_image = instant
    optimizer = optimizer or OPTIMIZERS[config.optimizer]
    problem: Problem | None = None
    outcome: ScaleOutcome | None = None
    notes: list[str] = []
    for scale in scales:
        problem = prepared(config.replace(size=scale.size))
        if outcome is None:
            pixels = initial_pixels(problem, config, start_image)
        else:
            pixels = np.clip(resize_to(outcome.carry, *problem.content.shape[:2]), 0.0, 1.0)
        done_before = len(run.history)
        outcome = yield from optimizer(problem, pixels, run, scale, outcome)
        done = len(run.history) - done_before
        if (
            outcome.line_search_failed
            and problem.extractor.precision == "bfloat16"
            and config.precision == "auto"
            and done < scale.steps
        ):
            # bfloat16's rounding of the features can leave L-BFGS's line search without a
            # lower loss to find; float32 resolves it, so the scale goes on there.
            problem = prepared(config.replace(size=scale.size, precision="float32"))
            rest = Scale(scale.size, scale.steps - done, scale.offset + done, scale.last)
            outcome = yield from optimizer(problem, outcome.carry, run, rest, outcome)
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
        final_loss = evaluate(problem, best)
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
        instant=shown,
    )


def _instant_picture(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    mask: np.ndarray | None,
    run: RunState,
) -> np.ndarray | None:
    """The instant network's picture at the output size (``nst.instant``: no TensorFlow).

    Raises ``InstantUnavailable`` when the optimizer is to start from it; when it is only the
    first preview, the run goes on without one (and the log says why).
    """
    from nst.instant import InstantUnavailable, stylize_instant

    try:
        image = stylize_instant(content, styles, config, mask=mask)
    except InstantUnavailable:
        if config.init == "instant":
            raise
        logger.exception("No instant preview for this run.")
        return None
    run.timings["first_preview"] = run.elapsed()
    return image


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
