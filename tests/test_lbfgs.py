"""The device L-BFGS (``nst.engine.lbfgs``): its parts on tiny problems with known answers, and
the engine's runs with it at small sizes (random features, NST_WEIGHTS=random)."""

import itertools

import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

from nst.config import StyleConfig
from nst.engine import Result, prepare
from nst.engine import lbfgs as engine
from nst.engine.objective import evaluate, input_key
from tests.engine_runs import run_stylize, stylize

SMALL = StyleConfig(size=64, steps=30, precision="float32", init="content", optimizer="lbfgs")


def quadratic(curvatures: np.ndarray, centre: np.ndarray, floor: float):
    """``floor + ½ Σ a (x - c)²`` as a traced value-and-gradient: minimum ``floor`` at ``c``."""
    a, c = tf.constant(curvatures, tf.float32), tf.constant(centre, tf.float32)

    @tf.function
    def value_and_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = floor + 0.5 * tf.reduce_sum(a * tf.square(x - c))
        return loss, {"quadratic": loss}, tape.gradient(loss, x)

    return value_and_gradient


def test_a_convex_problem_falls_every_iteration_to_its_known_minimum():
    rng = np.random.default_rng(0)
    curvatures = rng.uniform(0.1, 10.0, 40)  # condition number 100
    centre = rng.normal(size=40)
    ending = engine.Ending()
    iterations = list(
        engine.minimize(quadratic(curvatures, centre, 2.0), tf.zeros(40), 60, ending=ending)
    )
    losses = [iteration.loss for iteration in iterations]
    assert all(later < earlier for earlier, later in itertools.pairwise(losses))
    assert losses[-1] == pytest.approx(2.0, abs=1e-5)
    np.testing.assert_allclose(iterations[-1].point.numpy(), centre, atol=1e-2)
    assert set(iterations[-1].parts) == {"quadratic"}
    # It ends where float32 resolves no lower loss, and says so, well before 60 iterations.
    assert len(iterations) < 60 and ending.reason in {"line search", "reduction", "gradient"}


def test_a_short_scale_keeps_only_as_many_pairs_as_it_has_iterations(monkeypatch):
    """The pairs are device copies of the picture: a scale of 4 iterations holds 4 of each,
    not ``HISTORY``, and goes exactly where a full history would take it."""
    rng = np.random.default_rng(1)
    curvatures, centre = rng.uniform(0.1, 10.0, 40), rng.normal(size=40)
    objective = quadratic(curvatures, centre, 0.0)
    made = []
    pairs = engine.CorrectionPairs

    def recording(history: int = engine.HISTORY) -> engine.CorrectionPairs:
        made.append(history)
        return pairs(history)

    def run(iterations: int) -> list[np.ndarray]:
        points = engine.minimize(objective, tf.zeros(40), iterations, ending=engine.Ending())
        return [iteration.point.numpy() for iteration in points]

    monkeypatch.setattr(engine, "CorrectionPairs", recording)
    short, long = run(4), run(25)
    assert made == [4, engine.HISTORY]
    assert len(short) == 4
    np.testing.assert_array_equal(np.stack(short), np.stack(long[:4]))


def test_a_carried_scale_of_the_inverse_hessian_makes_the_first_step_at_once():
    """A coarser scale's ``s.y / y.y``, carried to the next, spares the first iteration's line
    search the stretching of a unit-length steepest-descent step; a wrong guess still ends
    at the minimum, and the newest pair's scale is reported for the next scale."""
    rng = np.random.default_rng(2)
    centre = rng.normal(size=40)
    objective = quadratic(np.full(40, 4.0), centre, 1.0)  # inverse curvature 0.25

    def first_iteration(gamma: float | None) -> tuple[int, engine.Ending, list]:
        calls, ending = [], engine.Ending()
        points = engine.minimize(
            objective,
            tf.zeros(40),
            5,
            ending=ending,
            on_evaluation=lambda *args: calls.append(args[1]),
            gamma=gamma,
        )
        done = list(points)
        return len(calls), ending, done

    guided, ending, done = first_iteration(0.25)
    plain, _, _ = first_iteration(None)
    assert guided == 2 and plain > guided  # the start, then one trial at the minimum
    assert done[0].loss == pytest.approx(1.0, abs=1e-5)
    assert ending.gamma == pytest.approx(0.25, rel=1e-3)
    _, _, far = first_iteration(40.0)
    assert far[-1].loss == pytest.approx(1.0, abs=1e-4)


def test_rosenbrock_is_solved_as_scipy_solves_it():
    @tf.function
    def rosenbrock(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(100.0 * tf.square(x[1:] - x[:-1] ** 2) + tf.square(1.0 - x[:-1]))
        return loss, {}, tape.gradient(loss, x)

    iterations = list(engine.minimize(rosenbrock, tf.zeros(6), 200, ending=engine.Ending()))
    np.testing.assert_allclose(iterations[-1].point.numpy(), np.ones(6), atol=1e-3)
    reference = scipy.optimize.minimize(
        scipy.optimize.rosen, np.zeros(6), jac=scipy.optimize.rosen_der, method="L-BFGS-B"
    )
    # Within a few iterations of scipy's count on the same problem.
    assert abs(len(iterations) - reference.nit) <= max(5, reference.nit // 4)


def test_cubic_interpolation_finds_a_quadratics_minimum():
    # f(t) = (t - 2)², seen at t = 0 (f 4, slope -4) and t = 3 (f 1, slope 2).
    a = engine.Trial(0.0, 4.0, -4.0)
    b = engine.Trial(3.0, 1.0, 2.0)
    assert engine._cubic_minimum(a, b, 0.0, 3.0) == pytest.approx(2.0)
    assert engine._cubic_minimum(a, b, 0.0, 1.5) == 1.5  # kept inside the safeguard
    # No real minimiser (equal points): the middle of the interval.
    assert engine._cubic_minimum(a, a, 0.0, 3.0) == 1.5


def test_the_line_search_meets_the_strong_wolfe_conditions():
    # φ(t) = (t - 5)² + 1: starting slope -10; a first step of 0.1 falls short (slope -9.8, the
    # curvature condition wants at most 9 in size), so it extrapolates.
    seen = []

    def evaluate_at(step):
        seen.append(step)
        return engine.Trial(step, (step - 5.0) ** 2 + 1.0, 2.0 * (step - 5.0))

    start = engine.Trial(0.0, 26.0, -10.0)
    found, used = engine.strong_wolfe(evaluate_at, start, 0.1, 20)
    assert found is not None and used == len(seen) >= 2
    assert found.loss <= start.loss + engine.WOLFE_DECREASE * found.step * start.slope
    assert abs(found.slope) <= engine.WOLFE_CURVATURE * abs(start.slope)
    # A function that only rises along the direction: nothing lower is found.
    rising, used = engine.strong_wolfe(
        lambda t: engine.Trial(t, 26.0 + t, 1.0), engine.Trial(0.0, 26.0, -1.0), 1.0, 6
    )
    assert rising is None and used == 6


def test_two_loop_recursion_matches_the_bfgs_inverse_hessian_of_one_pair():
    s = np.array([1.0, -2.0, 0.5], np.float32)
    y = np.array([2.0, -1.0, 1.0], np.float32)
    g = np.array([0.3, 0.7, -1.1], np.float32)
    pairs = engine.CorrectionPairs(history=4)
    assert pairs.push(tf.constant(s), tf.constant(y))
    rho, gamma = 1.0 / (s @ y), (s @ y) / (y @ y)
    identity = np.eye(3)
    inverse = (identity - rho * np.outer(s, y)) @ (gamma * identity) @ (
        identity - rho * np.outer(y, s)
    ) + rho * np.outer(s, s)
    np.testing.assert_allclose(pairs.direction(tf.constant(g)).numpy(), -inverse @ g, rtol=1e-5)
    # A pair of negative curvature is refused; the ring keeps the newest ``history`` pairs.
    assert not pairs.push(tf.constant(s), tf.constant(-y))
    for _ in range(6):
        pairs.push(tf.constant(s), tf.constant(y))
    assert pairs.count == 4
    pairs.reset()
    np.testing.assert_array_equal(pairs.direction(tf.constant(g)).numpy(), -g)


def test_two_loop_recursion_matches_the_bfgs_inverse_hessian_of_several_pairs():
    """Five pairs, oldest first, through ``history`` 3: the direction is ``-H g`` of the
    BFGS updates of the three newest pairs from ``gamma I`` (in float64), whatever the pairs
    that fell out of the ring."""
    rng = np.random.default_rng(7)
    size = 12
    curvature = np.diag(rng.uniform(0.5, 4.0, size))
    steps = rng.normal(size=(5, size))
    pairs = engine.CorrectionPairs(history=3)
    for step in steps:
        assert pairs.push(tf.constant(step, tf.float32), tf.constant(curvature @ step, tf.float32))
    g = rng.normal(size=size)
    kept = [(step, curvature @ step) for step in steps[-3:]]
    newest_s, newest_y = kept[-1]
    inverse = (newest_s @ newest_y) / (newest_y @ newest_y) * np.eye(size)
    for s, y in kept:  # oldest first
        rho = 1.0 / (s @ y)
        left = np.eye(size) - rho * np.outer(s, y)
        inverse = left @ inverse @ left.T + rho * np.outer(s, s)
    direction = pairs.direction(tf.constant(g, tf.float32)).numpy()
    np.testing.assert_allclose(direction, -inverse @ g, rtol=1e-4, atol=1e-5)
    assert pairs.count == 3


def test_the_loss_sees_clipped_pixels():
    content = np.random.default_rng(1).random((48, 64, 3)).astype(np.float32)
    problem = prepare(content, [content[::-1]], SMALL)
    objective = engine.traced_objective(problem, (1, 48, 64, 3))
    outside = content.ravel().copy()
    outside[:10], outside[10:20] = -0.5, 1.7
    loss_outside, _, gradient = objective(tf.constant(outside))
    loss_clipped, _, _ = objective(tf.constant(np.clip(outside, 0.0, 1.0)))
    assert float(loss_outside) == pytest.approx(float(loss_clipped), rel=1e-6)
    assert not gradient.numpy()[:20].any() and gradient.numpy()[20:].any()


def test_one_trace_serves_every_size_and_weight_with_each_problems_own_loss():
    rng = np.random.default_rng(2)
    content = rng.random((72, 96, 3)).astype(np.float32)
    problems = [
        prepare(content, [content[::-1]], SMALL.replace(size=size, style_weight=weight))
        for size, weight in ((64, 1.0), (72, 3.0), (96, 0.5))
    ]
    before = len(problems[0].extractor.cached_traces())
    for problem in problems:
        shape = (1, *problem.content.shape)
        flat = tf.constant(problem.content.ravel() * 0.9 + 0.05)
        shared, parts, gradient = engine.traced_objective(problem, shape)(flat)
        alone, alone_parts, alone_gradient = engine._traced_for(problem, shape)(flat)
        assert float(shared) == pytest.approx(float(alone), rel=1e-5)
        assert float(parts["style"]) == pytest.approx(float(alone_parts["style"]), rel=1e-5)
        scale = float(np.abs(alone_gradient.numpy()).max())
        np.testing.assert_allclose(gradient.numpy(), alone_gradient.numpy(), atol=1e-3 * scale)
    traces = problems[0].extractor.cached_traces()
    assert len(traces) <= before + 1 and any(key[0] == "lbfgs objective" for key in traces)
    # A mask changes the structure: its own trace, still one for every size.
    mask = np.zeros((72, 96), np.float32)
    mask[:, 48:] = 1.0
    masked = prepare(content, [content[::-1]], SMALL, mask=mask)
    loss, _, _ = engine.traced_objective(masked, (1, *masked.content.shape))(
        tf.constant(masked.content.ravel())
    )
    assert float(loss) == pytest.approx(evaluate(masked, masked.content), rel=1e-5)
    masked_key = ("lbfgs objective", input_key(masked.inputs()), masked.trace_key())
    plain_key = ("lbfgs objective", input_key(problems[0].inputs()), problems[0].trace_key())
    assert masked_key != plain_key
    assert {masked_key, plain_key} <= set(masked.extractor.cached_traces())


def test_the_engine_reaches_scipys_loss_at_64_px(content_image, style_image):
    from nst.benchmarks import scipy_lbfgs
    from nst.engine import optimize

    problem = prepare(content_image, [style_image], SMALL)
    # scipy's L-BFGS-B, the benchmarks' reference, from the same start (the photo).
    *_, reference = optimize(content_image, [style_image], SMALL, optimizer=scipy_lbfgs.lbfgs)
    result = run_stylize(content_image, [style_image], SMALL)
    assert result.steps_done == SMALL.steps and result.note is None
    assert reference.steps_done == SMALL.steps
    assert result.final_loss <= 1.01 * reference.final_loss
    assert evaluate(problem, result.image) == pytest.approx(result.final_loss, rel=1e-4)


def test_an_exhausted_evaluation_budget_ends_early_with_the_best_image(
    content_image, style_image, monkeypatch
):
    monkeypatch.setattr(engine, "EVALUATIONS_PER_ITERATION", 0.4)  # 4 losses for 10 iterations
    config = SMALL.replace(steps=10)
    result = run_stylize(content_image, [style_image], config)
    assert 1 <= result.steps_done < 10 and not result.stopped and result.error is None
    assert result.note == (
        f"L-BFGS ended after {result.steps_done} of 10 iterations: it used up its budget of loss "
        "evaluations (two per iteration). The best image so far is kept."
    )
    assert result.final_loss < result.initial_loss


def test_cancelled_within_an_iteration_it_stops_before_the_next_loss(content_image, style_image):
    from nst.records import CancelToken

    token, calls = CancelToken(), []
    real = engine.traced_objective

    def counting(problem, shape):
        objective = real(problem, shape)

        def counted(flat):
            calls.append(1)
            if len(calls) == 3:
                token.cancel()  # mid-iteration: between two losses of a line search or step
            return objective(flat)

        return counted

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "traced_objective", counting)
        events = list(stylize(content_image, [style_image], SMALL.replace(steps=20), cancel=token))
    result = events[-1]
    assert isinstance(result, Result) and result.stopped
    assert len(calls) == 3 and result.steps_done <= 2
    assert np.isfinite(result.image).all()
