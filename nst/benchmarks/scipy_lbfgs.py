"""scipy's L-BFGS-B, the optimizer the engine's device L-BFGS (``nst.engine.lbfgs``) replaced,
kept as the benchmarks' reference: ``--only lbfgs`` compares their losses from the same start,
and the ``steps`` and ``memory`` sections time and weigh both (rows named ``lbfgs-scipy``).

scipy runs in a thread of its own and calls a fused value-and-gradient ``tf.function`` (traced
once per scale); each iteration's callback hands a ``Progress`` to the generator's thread
through a queue, so the run streams like the engine's optimizers and is cancelled the same way
(the next evaluation raises ``_Stop``). Every evaluation copies the image to the host as
float64 and back: the cost the device L-BFGS does away with.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.optimize
import tensorflow as tf

from nst.engine.lbfgs import traced_objective
from nst.engine.model import on_device, pinned_device
from nst.engine.objective import Problem
from nst.engine.scales import NUMERIC_ERROR, RunState, Scale, ScaleOutcome, floats
from nst.records import Progress

# The name the benchmarks give this optimizer in their rows and options.
REFERENCE = "lbfgs-scipy"


def engine_optimizer(name: str) -> tuple[str, Any]:
    """A benchmark's optimizer name as the engine's setting and the function to run in its
    place (None: the setting's own): ``lbfgs-scipy`` runs this module as ``lbfgs``."""
    return ("lbfgs", lbfgs) if name == REFERENCE else (name, None)


class _Stop(Exception):
    """Raised inside scipy's loop to end it (cancelled, abandoned or non-finite)."""


def lbfgs(
    problem: Problem,
    pixels: np.ndarray,
    run: RunState,
    scale: Scale,
    previous: ScaleOutcome | None,
) -> Iterator[Progress]:
    """Optimize ``pixels`` for one scale; yields a ``Progress`` per iteration, returns the
    ``ScaleOutcome`` (``previous`` is unused: L-BFGS carries no state between scales)."""
    shape = (1, *pixels.shape)
    cancel = run.cancel

    value_and_gradient = traced_objective(problem, shape)

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
        if state["evaluations"] == 1 and scale.offset == 0:
            run.timings["first_step"] = time.perf_counter() - evaluation_started
            run.initial_loss = total  # scipy evaluates the start first
        if not np.isfinite(total):
            step = scale.offset + state["iterations"] + 1
            state["error"] = NUMERIC_ERROR.format(value=total, step=step)
            raise _Stop
        if total < state["best_loss"]:
            state["best"], state["best_loss"] = flat.reshape(pixels.shape).copy(), total
        state["last"] = (total, floats(parts))
        return total, gradient.numpy().astype(np.float64)

    def on_iteration(current: np.ndarray) -> None:
        total, parts = state["last"]
        state["iterations"] += 1
        step = scale.offset + state["iterations"]
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
            # call, which costs seconds before the first iteration at real sizes. The loss of
            # the clipped pixels serves instead, at about the same loss for the same iterations
            # and sooner (docs/benchmarks.md).
            callback=on_iteration,
            # Run the requested iterations: the tolerances only stop a converged run.
            options={
                "maxiter": scale.steps,
                "maxfun": scale.steps * 2,
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
    stopped = cancel.cancelled and state["iterations"] < scale.steps
    note, line_search_failed = None, False
    if "scipy" in state and state["iterations"] < scale.steps and not state["error"]:
        note = _ended_early(state["scipy"], state["iterations"], scale)
        line_search_failed = "ABNORMAL" in str(state["scipy"].message)
    # scipy's pixels may stray outside [0, 1]; the loss only ever saw them clipped.
    best = np.clip(state["best"], 0.0, 1.0).astype(np.float32)
    carry = best
    if "current" in state:
        carry = np.clip(state["current"].reshape(pixels.shape), 0.0, 1.0).astype(np.float32)
    return ScaleOutcome(
        best,
        carry if not scale.last else best,
        state["best_loss"],
        stopped=stopped,
        error=state["error"],
        note=note,
        line_search_failed=line_search_failed,
    )


# scipy's reasons for ending L-BFGS-B early, in the words a user needs.
_REASONS = {
    "ABNORMAL": "its line search found no lower loss along the search direction, which happens "
    "when the loss is as low as the precision resolves",
    "EVALUATIONS": "it used up its budget of loss evaluations (two per iteration)",
    "PROJECTED GRADIENT": "the gradient vanished: the image has converged",
    "RELATIVE REDUCTION": "the loss stopped decreasing: the image has converged",
}


def _ended_early(outcome: Any, iterations: int, scale: Scale) -> str:
    """One sentence saying where and why scipy's L-BFGS-B ended before its planned iterations."""
    message = str(outcome.message)
    reason = next(
        (text for key, text in _REASONS.items() if key in message),
        f"scipy reported '{message.strip()}'",
    )
    where = "" if scale.last else f" at the {scale.size} px scale"
    return (
        f"L-BFGS ended after {iterations} of {scale.steps} iterations{where}: {reason}. "
        "The best image so far is kept."
    )
