"""L-BFGS that stays on the run's device: the image, the correction pairs and every line-search
trial are TensorFlow tensors; only the scalars a decision needs (a loss, a slope) reach Python.

The method is Nocedal & Wright's (Numerical Optimization, 2nd ed., algorithms 7.4, 3.5 and 3.6)
with the choices of scipy's L-BFGS-B, the optimizer it replaces, so that both take the same
path on the same problem:

- ``HISTORY`` correction pairs (scipy's ``maxcor``), the initial inverse Hessian scaled by
  ``s·y / y·y`` of the newest pair, and a pair kept only when its curvature ``s·y`` is
  positive;
- a line search for the strong Wolfe conditions with scipy's constants (sufficient decrease
  ``WOLFE_DECREASE``, curvature ``WOLFE_CURVATURE``), bracketing then zooming with safeguarded
  cubic interpolation, at most ``LINE_SEARCH_EVALUATIONS`` losses. The curvature condition is
  what keeps the pairs positive, and so the quasi-Newton direction a descent direction; plain
  backtracking would accept steps whose pairs must then be thrown away. The first iteration
  tries a step of length one pixel unit (``1/|g|``), later ones the unit step;
- when a search finds no lower loss, the pairs are dropped and steepest descent is tried once
  more; a second failure ends the scale with ``line_search_failed`` (where bfloat16's rounding
  is the cause, ``run.optimize`` goes on in float32);
- a budget of ``EVALUATIONS_PER_ITERATION`` losses per planned iteration (scipy's ``maxfun``).

Each iteration costs one traced loss-and-gradient per trial (usually one) and the two-loop
recursion, a few vector operations per pair; there is no host copy of the image, so on a GPU
an iteration costs about what a step does. The loss is that of the pixels clipped to [0, 1],
as with scipy (no bounds).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from nst.config import LBFGS_HISTORY
from nst.engine.model import AUTOGRAPH
from nst.engine.objective import Problem, input_key, input_signature
from nst.engine.scales import NUMERIC_ERROR, RunState, Scale, ScaleOutcome, floats
from nst.records import Progress

HISTORY = LBFGS_HISTORY
WOLFE_DECREASE = 1e-3
WOLFE_CURVATURE = 0.9
LINE_SEARCH_EVALUATIONS = 20
EVALUATIONS_PER_ITERATION = 2
# scipy's stopping tests at the tolerances the engine gives it: they only end a converged run.
GRADIENT_TOLERANCE = 1e-12
REDUCTION_TOLERANCE = 1e-12
# A bracket narrower than this share of its step cannot be resolved in float32 pixels.
SMALLEST_BRACKET = 1e-7
EXTRAPOLATION_LIMIT = 10.0


@dataclass(frozen=True)
class Trial:
    """One point of a line search: the step, its loss and slope along the search direction,
    and (for points that were evaluated) the point, its gradient and the loss's named parts."""

    step: float
    loss: float
    slope: float
    point: tf.Tensor | None = None
    gradient: tf.Tensor | None = None
    parts: dict[str, Any] | None = None


class Stop(Exception):
    """Raised by an evaluation to end the search now (the run was cancelled)."""


class CorrectionPairs:
    """The newest ``history`` pairs ``s = x' - x``, ``y = g' - g`` (device tensors, newest
    last) and the two-loop recursion over them.

    The recursion runs pair by pair (one traced step each): beside the pairs, only its running
    vector and a temporary or two are alive at any moment. A recursion traced whole, over the
    pairs as one stacked variable, may start every row's copy at once, which at print sizes held
    many picture-sized vectors more than the pairs themselves (and TensorFlow's oneDNN
    allocator keeps its peak for the rest of the process)."""

    def __init__(self, history: int = HISTORY) -> None:
        self.pairs: deque[tuple[tf.Tensor, tf.Tensor, tf.Tensor]] = deque(maxlen=history)
        self.gamma = 1.0

    @property
    def count(self) -> int:
        return len(self.pairs)

    def reset(self) -> None:
        self.pairs.clear()
        self.gamma = 1.0

    def push(self, s: tf.Tensor, y: tf.Tensor) -> bool:
        """Keep the pair if its curvature is positive; say whether it was kept."""
        sy, yy = (float(v) for v in _curvature(s, y))
        if not (sy > 1e-10 * yy and math.isfinite(sy) and yy > 0.0):
            return False
        self.pairs.append((s, y, tf.constant(1.0 / sy, tf.float32)))
        self.gamma = sy / yy
        return True

    def direction(self, gradient: tf.Tensor) -> tf.Tensor:
        """The quasi-Newton direction ``-H g`` (steepest descent while there are no pairs)."""
        if not self.pairs:
            return -gradient
        q, alphas = gradient, []
        for s, y, rho in reversed(self.pairs):  # newest first
            q, alpha = _newest_first(q, s, y, rho)
            alphas.append(alpha)
        r = tf.constant(self.gamma, tf.float32) * q
        del q
        for (s, y, rho), alpha in zip(self.pairs, reversed(alphas)):  # oldest first
            r = _oldest_first(r, s, y, rho, alpha)
        return -r


# The recursion's steps and the curvature are traced once per process for every image size.
_VECTOR = tf.TensorSpec([None], tf.float32)
_SCALAR = tf.TensorSpec([], tf.float32)


@tf.function(input_signature=[_VECTOR, _VECTOR, _VECTOR, _SCALAR], autograph=AUTOGRAPH)
def _newest_first(
    q: tf.Tensor, s: tf.Tensor, y: tf.Tensor, rho: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """One pair of the recursion's first loop: ``alpha = rho s·q``, ``q - alpha y``."""
    alpha = rho * tf.reduce_sum(s * q)
    return q - alpha * y, alpha


@tf.function(input_signature=[_VECTOR, _VECTOR, _VECTOR, _SCALAR, _SCALAR], autograph=AUTOGRAPH)
def _oldest_first(
    r: tf.Tensor, s: tf.Tensor, y: tf.Tensor, rho: tf.Tensor, alpha: tf.Tensor
) -> tf.Tensor:
    """One pair of the second loop: ``r + (alpha - rho y·r) s``."""
    return r + (alpha - rho * tf.reduce_sum(y * r)) * s


@tf.function(input_signature=[_VECTOR, _VECTOR], autograph=AUTOGRAPH)
def _curvature(s: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    return tf.stack([tf.reduce_sum(s * y), tf.reduce_sum(y * y)])


# A product and a sum: about twice as fast on a CPU as ``tf.tensordot``'s matrix product of
# two vectors.
@tf.function(input_signature=[_VECTOR, _VECTOR], autograph=AUTOGRAPH)
def _dot(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(a * b)


def _cubic_minimum(a: Trial, b: Trial, low: float, high: float) -> float:
    """The minimiser in [low, high] of the cubic through two trials' losses and slopes (the
    midpoint where the cubic has none)."""
    if a.step == b.step:
        return (low + high) / 2
    d1 = a.slope + b.slope - 3.0 * (a.loss - b.loss) / (a.step - b.step)
    square = d1 * d1 - a.slope * b.slope
    if square < 0.0 or not math.isfinite(square):
        return (low + high) / 2
    d2 = math.copysign(math.sqrt(square), b.step - a.step)
    denominator = b.slope - a.slope + 2.0 * d2
    if denominator == 0.0:
        return (low + high) / 2
    step = b.step - (b.step - a.step) * (b.slope + d2 - d1) / denominator
    if not math.isfinite(step):
        return (low + high) / 2
    return min(max(step, low), high)


def strong_wolfe(
    evaluate: Callable[[float], Trial], start: Trial, step: float, budget: int
) -> tuple[Trial | None, int]:
    """A step along the search direction meeting the strong Wolfe conditions.

    ``start`` is the trial at step 0 (its loss and slope, which must be negative). Returns the
    accepted trial, or None where no lower loss was found, and the number of evaluations. When
    the budget runs out first, the lowest trial with a sufficient decrease is accepted.
    """
    used = 0
    decrease = WOLFE_DECREASE * start.slope
    curvature = -WOLFE_CURVATURE * start.slope

    def sufficient(trial: Trial) -> bool:
        return trial.loss <= start.loss + trial.step * decrease

    def zoom(low: Trial, high: Trial) -> tuple[Trial | None, int]:
        """``low`` has the lower loss and a sufficient decrease (or is the start); the minimiser
        lies between the two."""
        nonlocal used
        while used < budget:
            width = abs(high.step - low.step)
            if width <= SMALLEST_BRACKET * max(low.step, high.step):
                break
            left, right = sorted((low.step, high.step))
            step = _cubic_minimum(low, high, left + 0.1 * width, right - 0.1 * width)
            trial = evaluate(step)
            used += 1
            if not sufficient(trial) or trial.loss >= low.loss:
                high = trial
                continue
            if abs(trial.slope) <= curvature:
                return trial, used
            if trial.slope * (high.step - low.step) >= 0.0:
                high = low
            low = trial
        return (low if low.step > 0.0 else None), used

    previous = start
    while used < budget:
        trial = evaluate(step)
        used += 1
        if not sufficient(trial) or (previous.step > 0.0 and trial.loss >= previous.loss):
            return zoom(previous, trial)
        if abs(trial.slope) <= curvature:
            return trial, used
        if trial.slope >= 0.0:
            return zoom(trial, previous)
        low = trial.step + 0.01 * (trial.step - previous.step)
        next_step = _cubic_minimum(previous, trial, low, EXTRAPOLATION_LIMIT * trial.step)
        previous, step = trial, next_step
    return (previous if previous.step > 0.0 else None), used


@dataclass
class Iteration:
    """What one L-BFGS iteration reached: the new point, its loss and named parts."""

    point: tf.Tensor
    loss: float
    parts: dict[str, Any]


@dataclass
class Ending:
    """Why a minimisation ended before its iterations (None fields: it did all of them)."""

    reason: str | None = None  # a key of ``REASONS``
    line_search_failed: bool = False
    gamma: float | None = None  # the newest pair's ``s.y / y.y``: the inverse Hessian's scale


REASONS = {
    "line search": "its line search found no lower loss along the search direction, which "
    "happens when the loss is as low as the precision resolves",
    "evaluations": "it used up its budget of loss evaluations (two per iteration)",
    "gradient": "the gradient vanished: the image has converged",
    "reduction": "the loss stopped decreasing: the image has converged",
}


def minimize(
    value_and_gradient: Callable[[tf.Tensor], tuple[tf.Tensor, dict[str, Any], tf.Tensor]],
    start: tf.Tensor,
    iterations: int,
    *,
    ending: Ending,
    on_evaluation: Callable[[tf.Tensor, float, dict[str, Any]], None] = lambda *_: None,
    gamma: float | None = None,
) -> Iterator[Iteration]:
    """L-BFGS from the flat float32 tensor ``start``; yields each iteration's point.

    ``value_and_gradient(point) -> (loss, parts, gradient)`` is called once per trial;
    ``on_evaluation(point, loss, parts)`` sees every one (the caller keeps the best, checks
    for cancellation and raises ``Stop`` to end at once). When it ends before ``iterations``,
    ``ending`` says why; ``ending.gamma`` is the newest pair's scale of the inverse Hessian.
    ``gamma`` (optional) is a first guess of it: the first step is then ``-gamma g`` tried at
    full length, rather than steepest descent tried at unit length, which a line search must
    first stretch (a coarser scale's, carried over, usually needs no stretching).
    """
    evaluations = 0
    budget = iterations * EVALUATIONS_PER_ITERATION

    def evaluate_at(point: tf.Tensor) -> tuple[float, dict[str, Any], tf.Tensor]:
        nonlocal evaluations
        total, parts, gradient = value_and_gradient(point)
        evaluations += 1
        loss = float(total)
        on_evaluation(point, loss, parts)
        return loss, parts, gradient

    def along(origin: tf.Tensor, direction: tf.Tensor) -> Callable[[float], Trial]:
        """The line search's view of the loss from ``origin`` along ``direction``."""

        def trial_at(step: float) -> Trial:
            moved = origin + step * direction
            value, named, gradient_there = evaluate_at(moved)
            slope = float(_dot(gradient_there, direction))
            return Trial(step, value, slope, moved, gradient_there, named)

        return trial_at

    point = start
    loss, parts, gradient = evaluate_at(point)
    # One pair is kept per iteration: a scale of few iterations (the large scales of a print)
    # holds only as many, not ``HISTORY`` copies of the picture.
    pairs = CorrectionPairs(max(1, min(HISTORY, iterations)))
    for iteration in range(iterations):
        if float(tf.reduce_max(tf.abs(gradient))) <= GRADIENT_TOLERANCE:
            ending.reason = "gradient"
            return
        found = None
        for retry in (False, True):
            if retry:
                if pairs.count == 0 and gamma is None:
                    break  # that was steepest descent already
                pairs.reset()
                gamma = None
            if pairs.count == 0 and gamma is not None:
                direction = -gamma * gradient
            else:
                direction = pairs.direction(gradient)
            slope = float(_dot(gradient, direction))
            if not slope < 0.0:  # rounding can spoil the direction: start the pairs afresh
                pairs.reset()
                gamma = None
                direction = -gradient
                slope = float(_dot(gradient, direction))
            guided = pairs.count or gamma is not None
            first = 1.0 if guided else 1.0 / max(float(tf.norm(direction)), 1e-30)
            left = budget - evaluations
            if left <= 0:
                ending.reason = "evaluations"
                return
            found, _ = strong_wolfe(
                along(point, direction),
                Trial(0.0, loss, slope),
                first,
                min(LINE_SEARCH_EVALUATIONS, left),
            )
            if found is not None:
                break
        if found is None:
            ending.reason = "evaluations" if evaluations >= budget else "line search"
            ending.line_search_failed = ending.reason == "line search"
            return
        assert found.point is not None and found.gradient is not None and found.parts is not None
        if pairs.push(found.point - point, found.gradient - gradient):
            ending.gamma = pairs.gamma
        reduction = (loss - found.loss) / max(abs(loss), abs(found.loss), 1.0)
        point, loss, parts, gradient = found.point, found.loss, found.parts, found.gradient
        yield Iteration(point, loss, parts)
        if reduction <= REDUCTION_TOLERANCE and iteration + 1 < iterations:
            ending.reason = "reduction"
            return


def traced_objective(problem: Problem, shape: tuple[int, ...]) -> Callable[[tf.Tensor], Any]:
    """``flat pixels -> (total, parts, flat gradient)`` for ``problem`` at ``shape``.

    The loss is that of the pixels clipped to [0, 1], so the search needs no bounds. One trace
    serves every size, target and weight of a problem's structure (kept with the extractor):
    a trace per scale, with TensorFlow's graph optimisation, cost about half a second at the
    start of each scale of a run (docs/benchmarks.md). Problems with extra terms (a video's
    temporal loss) are traced for themselves.
    """
    if problem.tiled is not None:
        return lambda flat: _tiled_value_and_gradient(problem, flat, shape)
    if problem.extra_loss is not None:
        return _traced_for(problem, shape)
    inputs = problem.inputs()
    extractor, content_extractor = problem.extractor, problem.content_extractor
    traced = extractor.traced(
        ("lbfgs objective", input_key(inputs), problem.trace_key()),
        lambda: _traced_for_any(extractor, content_extractor, inputs),
    )
    dims = tf.constant(shape, tf.int32)
    return lambda flat: traced(flat, dims, inputs)


def _value_and_gradient(
    problem: Problem, flat: tf.Tensor, shape: Any
) -> tuple[tf.Tensor, dict[str, tf.Tensor], tf.Tensor]:
    image = tf.reshape(flat, shape)
    with tf.GradientTape() as tape:
        tape.watch(image)
        total, parts = problem.objective(tf.clip_by_value(image, 0.0, 1.0))
    return total, parts, tf.reshape(tape.gradient(total, image), [-1])


def _tiled_value_and_gradient(
    problem: Problem, flat: tf.Tensor, shape: tuple[int, ...]
) -> tuple[tf.Tensor, dict[str, tf.Tensor], tf.Tensor]:
    total, parts, gradient = problem.value_and_gradient(tf.reshape(flat, shape), clip=True)
    return total, parts, tf.reshape(gradient, [-1])


def _traced_for_any(
    extractor: Any, content_extractor: Any, example: dict[str, Any]
) -> Callable[..., Any]:
    """The loss traced on ``(flat pixels, shape, Problem.inputs)`` of any size."""
    return tf.function(
        lambda flat, dims, inputs: _value_and_gradient(
            Problem.from_inputs(extractor, inputs, content_extractor), flat, dims
        ),
        input_signature=[_VECTOR, tf.TensorSpec([4], tf.int32), input_signature(example)],
        autograph=AUTOGRAPH,
    )


def _traced_for(problem: Problem, shape: tuple[int, ...]) -> Callable[[tf.Tensor], Any]:
    """The loss of this very problem and shape, traced for them alone."""
    return tf.function(
        lambda flat: _value_and_gradient(problem, flat, shape),
        input_signature=[tf.TensorSpec([int(np.prod(shape))], tf.float32)],
        autograph=AUTOGRAPH,
    )


def lbfgs(
    problem: Problem,
    pixels: np.ndarray,
    run: RunState,
    scale: Scale,
    previous: ScaleOutcome | None,
) -> Iterator[Progress]:
    """Optimize ``pixels`` for one scale; yields a ``Progress`` per iteration, returns the
    ``ScaleOutcome``. Of ``previous`` (the coarser scale's) only the scale of its inverse
    Hessian is carried, per pixel, as this scale's first step."""
    shape = (1, *pixels.shape)
    value_and_gradient = traced_objective(problem, shape)
    state: dict[str, Any] = {"best": None, "best_loss": float("inf"), "error": None, "count": 0}

    def on_evaluation(point: tf.Tensor, loss: float, parts: dict[str, Any]) -> None:
        state["count"] += 1
        if state["count"] == 1 and scale.offset == 0:
            run.timings["first_step"] = time.perf_counter() - state["started"]
            run.initial_loss = loss
        if not math.isfinite(loss):
            state["error"] = NUMERIC_ERROR.format(value=loss, step=scale.offset + done + 1)
            raise Stop
        if loss < state["best_loss"]:
            state["best"], state["best_loss"] = point, loss
        if run.cancel.cancelled:
            raise Stop

    def image_of(point: tf.Tensor) -> np.ndarray:
        return np.clip(point.numpy().reshape(pixels.shape), 0.0, 1.0).astype(np.float32)

    ending, done, point = Ending(), 0, None
    if run.cancel.cancelled:
        return ScaleOutcome(pixels, pixels, stopped=True)
    state["started"] = time.perf_counter()
    gamma = None
    if previous is not None and previous.curvature is not None:
        gamma = previous.curvature * pixels.size  # the loss is size-free: see ``ScaleOutcome``
    iterations = minimize(
        value_and_gradient,
        tf.constant(pixels.ravel(), tf.float32),
        scale.steps,
        ending=ending,
        on_evaluation=on_evaluation,
        gamma=gamma,
    )
    try:
        for iteration in iterations:
            done += 1
            point = iteration.point
            yield run.progress(
                problem,
                scale.offset + done,
                iteration.loss,
                floats(iteration.parts),
                lambda p=point: image_of(p),
            )
            if run.cancel.cancelled:
                break
    except Stop:
        pass
    finally:
        iterations.close()
    best = pixels if state["best"] is None else image_of(state["best"])
    carry = best if point is None or scale.last else image_of(point)
    stopped = run.cancel.cancelled and done < scale.steps
    note = None
    if ending.reason is not None and not state["error"] and not stopped:
        where = "" if scale.last else f" at the {scale.size} px scale"
        note = (
            f"L-BFGS ended after {done} of {scale.steps} iterations{where}: "
            f"{REASONS[ending.reason]}. The best image so far is kept."
        )
    return ScaleOutcome(
        best,
        carry,
        state["best_loss"],
        stopped=stopped,
        error=state["error"],
        note=note,
        line_search_failed=ending.line_search_failed,
        curvature=None if ending.gamma is None else ending.gamma / pixels.size,
    )
