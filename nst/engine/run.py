"""A run of the optimizer: scale by scale with Adam or L-BFGS, then the result.

``optimize`` is a generator of ``Progress`` records that ends with one ``Result``. It trusts its
caller, like ``prepare``: the front door (``nst.front``) has checked the run and made the
instant picture it may start from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence

import numpy as np

from nst.config import StyleConfig
from nst.engine.adam import adam
from nst.engine.lbfgs import lbfgs
from nst.engine.objective import ExtraLoss, Problem, evaluate, initial_pixels, prepare
from nst.engine.scales import RunState, Scale, ScaleOutcome, plan_scales
from nst.images import resize_to, working_shape
from nst.plan import TILE_PIXELS, is_tiled
from nst.records import CancelToken, Progress, Result

Event = Progress | Result

# One scale's optimizer: (problem, pixels, run, scale, previous outcome) -> progress records,
# returning the scale's ``ScaleOutcome``.
ScaleOptimizer = Callable[
    [Problem, np.ndarray, RunState, Scale, ScaleOutcome | None],
    Generator[Progress, None, ScaleOutcome],
]
OPTIMIZERS: dict[str, ScaleOptimizer] = {"adam": adam, "lbfgs": lbfgs}


def optimize(
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    *,
    mask: np.ndarray | None = None,
    init_image: np.ndarray | None = None,
    instant: np.ndarray | None = None,
    cancel: CancelToken | None = None,
    extra_loss: ExtraLoss | None = None,
    started: float | None = None,
    optimizer: ScaleOptimizer | None = None,
    tile_pixels: int | None = None,
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
        instant: the instant network's picture of this run, made by the front door: the start
            image when ``config.init`` is "instant", and kept in the ``Result``.
        cancel: set it to end the run early; the result keeps the best image so far.
        extra_loss: further loss terms at the output size (see ``prepare``); only with one
            scale, since the terms are defined at the output size.
        started: when the run started (``time.perf_counter``), if before this call.
        optimizer: in place of ``config.optimizer``'s (the benchmarks' scipy reference).
        tile_pixels: scales of more working pixels are computed tile by tile
            (``nst.plan.TILE_PIXELS`` unless given).

    Yields:
        A ``Progress`` after each step (numbered across all scales; previews are always at the
        output size), then exactly one ``Result`` as the last item.
    """
    started = time.perf_counter() if started is None else started
    scales = plan_scales(config, warm_start=init_image is not None)
    if extra_loss is not None and len(scales) > 1:
        raise ValueError("scales: extra loss terms need a single scale; set scales to 1.")
    run = RunState(
        config,
        cancel or CancelToken(),
        started,
        working_shape(*content.shape[:2], config.size),
        plan=scales,
    )
    timings = {"build": 0.0, "targets": 0.0}
    tiling = TILE_PIXELS if tile_pixels is None else tile_pixels

    def prepared(scale_config: StyleConfig) -> Problem:
        problem = prepare(content, styles, scale_config, mask, extra_loss, tiling)
        timings["build"] += problem.timings["build"]
        timings["targets"] += problem.timings["targets"]
        return problem

    start_image = init_image
    if start_image is None and config.init == "instant":
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
            _hold_strokes(problem, pixels)
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
            if scale.offset:
                _hold_strokes(problem, pixels)
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
    image = None
    if best.shape[:2] != run.output_shape:  # stopped before the last scale
        if is_tiled(config, *run.output_shape, tiling):
            # At print sizes the output size's targets and one evaluation take minutes: the
            # picture is finished at its scale and enlarged, and its loss is that scale's (the
            # losses are size-free, ``nst.engine.losses``).
            image = np.clip(resize_to(problem.finish(best), *run.output_shape), 0.0, 1.0)
        else:
            problem = prepare(content, styles, config, mask, extra_loss, tiling)
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
        image=problem.finish(best) if image is None else image,
        history=history,
        timings=timings,
        config=config,
        stopped=outcome.stopped,
        error=outcome.error,
        initial_loss=run.initial_loss if run.initial_loss is not None else final_loss,
        final_loss=final_loss,
        steps_done=len(history),
        note=" ".join(notes) or None,
        instant=instant,
    )


def _hold_strokes(problem: Problem, start: np.ndarray) -> None:
    """At print sizes, hold the picture's large strokes to those the smaller scales painted
    (``start``, enlarged to this scale): its steps add the detail."""
    if problem.tiled is not None:
        problem.tiled.hold_to(start)
