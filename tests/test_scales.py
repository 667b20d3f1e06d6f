"""The coarse-to-fine plan (sizes, steps, shares) and what a pyramid run reports."""

import numpy as np
import pytest

from nst.config import StyleConfig
from nst.engine.scales import RunState, Scale, plan_scales, split_steps
from nst.records import CancelToken

# The default Painted run (docs/benchmarks.md): every scale from about 128 px, a tenth of the
# steps at the output size, the first scale started from the instant picture.
PYRAMID = StyleConfig()


def _plan(**values) -> list[tuple[int, int]]:
    return [(scale.size, scale.steps) for scale in plan_scales(PYRAMID.replace(**values))]


def test_the_default_painted_run_is_the_pyramid_from_the_instant_picture():
    defaults = StyleConfig()
    assert defaults.method == "optimize" and defaults.init == "instant"
    assert [(scale.size, scale.steps) for scale in plan_scales(defaults)] == [
        (128, 34),
        (181, 17),
        (256, 8),
        (362, 4),
        (512, 7),
    ]


@pytest.mark.parametrize("init", ["instant", "content"])
def test_the_first_scale_starts_from_the_start_setting_at_its_own_size(
    init, content_image, style_image
):
    from nst.engine.objective import evaluate, prepare
    from nst.engine.run import optimize
    from nst.images import resize_to

    config = PYRAMID.replace(
        size=192, steps=2, final_share=0.5, precision="float32", optimizer="adam", init=init
    )
    # A stand-in for the instant picture that no photo resembles: a horizontal ramp.
    ramp = np.repeat(np.linspace(0.0, 1.0, 192, dtype=np.float32)[None, :, None], 144, axis=0)
    instant = np.repeat(ramp, 3, axis=2)
    result = list(optimize(content_image, [style_image], config, instant=instant))[-1]
    coarse = prepare(content_image, [style_image], config.replace(size=136))
    expected = instant if init == "instant" else content_image
    start = np.clip(resize_to(expected, *coarse.content.shape[:2]), 0.0, 1.0)
    assert result.initial_loss == pytest.approx(evaluate(coarse, start), rel=1e-4)
    other = content_image if init == "instant" else instant
    assert result.initial_loss != pytest.approx(
        evaluate(coarse, np.clip(resize_to(other, *coarse.content.shape[:2]), 0.0, 1.0)), rel=1e-2
    )


def test_the_pyramid_starts_near_128_px_and_grows_by_sqrt2_to_the_output_size():
    plan = plan_scales(PYRAMID.replace(size=512))
    assert [scale.size for scale in plan] == [128, 181, 256, 362, 512]
    assert sum(scale.steps for scale in plan) == StyleConfig().steps
    # Most steps where they are cheap: each smaller scale gets more than the next larger one
    # (the output size only its final share).
    steps = [scale.steps for scale in plan]
    assert steps[:-1] == sorted(steps[:-1], reverse=True)
    assert steps[-1] == round(PYRAMID.steps * PYRAMID.final_share)
    assert [scale.offset for scale in plan] == [0, *np.cumsum(steps[:-1]).tolist()]
    assert [scale.last for scale in plan] == [False] * 4 + [True]


@pytest.mark.parametrize(
    ("size", "first", "count"),
    [(384, 136, 4), (700, 175, 5), (1024, 128, 7), (2048, 128, 9), (4096, 128, 11)],
)
def test_every_output_size_starts_between_128_and_181_px(size, first, count):
    from nst.plan import scale_sizes

    sizes = scale_sizes(PYRAMID.replace(size=size))
    assert sizes[0] == first and len(sizes) == count and sizes[-1] == size
    ratios = np.array(sizes[1:]) / np.array(sizes[:-1])
    assert np.allclose(ratios, np.sqrt(2), atol=0.01)


@pytest.mark.parametrize("size", [724, 1448, 2048, 4096])
def test_above_the_base_size_a_run_is_the_base_sizes_run_then_the_output_size(size):
    from nst.plan import PLAN_BASE_SIDE

    plan = plan_scales(PYRAMID.replace(size=size))
    final = round(PYRAMID.steps * PYRAMID.final_share)
    # The scales between the base size and the output get no steps and are skipped: the
    # picture goes from the base size to the output in one resize.
    assert [s.size for s in plan] == [128, 181, 256, 362, PLAN_BASE_SIDE, size]
    assert sum(s.steps for s in plan) == PYRAMID.steps and plan[-1].steps == final
    assert [s.steps for s in plan[:-1]] == split_steps(
        PYRAMID.steps - final, 5, PYRAMID.final_share, growth=2.0
    )
    assert plan[-1].offset == PYRAMID.steps - final and plan[-1].last


def test_small_outputs_warm_starts_and_one_scale_paint_at_the_output_size_only():
    steps = StyleConfig().steps
    assert _plan(size=96) == [(96, steps)]
    assert _plan(size=512, scales=1) == [(512, steps)]
    assert [(s.size, s.steps) for s in plan_scales(PYRAMID.replace(size=512), warm_start=True)] == [
        (512, steps)
    ]
    # A scale left without steps is skipped; the output size always stays.
    assert _plan(size=512, steps=3, final_share=0.4) == [(128, 1), (181, 1), (512, 1)]


def test_split_steps_gives_each_smaller_scale_growth_times_the_next_ones_steps():
    assert split_steps(100, 5, 0.1, growth=2**0.5) == [35, 25, 18, 12, 10]
    assert split_steps(100, 5, 0.1, growth=2.0) == [48, 24, 12, 6, 10]
    assert split_steps(100, 4, 0.25) == [25, 25, 25, 25]  # growth 1: even
    for steps in (1, 7, 33, 100, 999):
        assert sum(split_steps(steps, 6, 0.15, growth=1.4)) == steps


def test_time_left_weighs_each_step_by_its_scales_pixels():
    plan = [Scale(128, 40, 0, False), Scale(256, 20, 40, True)]
    run = RunState(StyleConfig(size=256, steps=60), CancelToken(), 0.0, (192, 256), plan=plan)
    # All 40 coarse steps (each a quarter of a fine one) took 10 s: the 20 fine ones need 20 s.
    assert run.time_left(40, 10.0) == pytest.approx(20.0)
    # Half the fine steps done: 80 of the 120 quarter-step units took 20 s; 40 are left.
    assert run.time_left(50, 20.0) == pytest.approx(10.0)
    assert run.time_left(60, 30.0) == 0.0
    assert np.isnan(run.time_left(0, 1.0))
    assert run.scale_at(1) == (1, plan[0]) and run.scale_at(40) == (1, plan[0])
    assert run.scale_at(41) == (2, plan[1]) and run.scale_at(60) == (2, plan[1])


def test_time_left_weighs_a_tiled_scale_by_its_own_pace(monkeypatch):
    from nst.engine import scales

    monkeypatch.setattr(scales, "paces", lambda config: (2.0, 1.0))  # tiled: half the cost
    plan = [Scale(1024, 10, 0, False), Scale(2048, 10, 10, True)]
    run = RunState(StyleConfig(size=2048), CancelToken(), 0.0, (1536, 2048), plan=plan)
    # 1024 x 768 is computed whole, 2048 x 1536 tiled: a fine step costs 4 x 1/2 = 2 coarse ones.
    assert run.time_left(10, 10.0) == pytest.approx(20.0)


def test_a_pyramid_run_says_its_scale_and_ends_at_the_output_size(content_image, style_image):
    from nst import front

    # Adam does every step it is given (L-BFGS may end a scale early on random features).
    config = PYRAMID.replace(
        size=192, steps=6, final_share=0.3, preview_every=2, precision="float32", optimizer="adam"
    )
    plan = plan_scales(config)
    assert [(s.size, s.steps) for s in plan] == [(136, 4), (192, 2)]
    events = list(front.stylize(content_image, [style_image], config, instant_first=False))
    steps, result = events[:-1], events[-1]
    assert [(e.step, e.scale, e.scales, e.scale_size) for e in steps] == [
        (1, 1, 2, 136),
        (2, 1, 2, 136),
        (3, 1, 2, 136),
        (4, 1, 2, 136),
        (5, 2, 2, 192),
        (6, 2, 2, 192),
    ]
    assert all(np.isfinite(e.time_left) for e in steps) and steps[-1].time_left == 0.0
    # Previews, the coarse ones included, are at the output size, like the result.
    previews = [e.preview for e in steps if e.preview is not None]
    assert previews and all(p.shape == (144, 192, 3) for p in previews)
    assert result.image.shape == (144, 192, 3) and result.steps_done == 6


def test_a_pyramid_stopped_at_a_coarse_scale_keeps_its_best_at_the_output_size(
    content_image, style_image
):
    from nst import front

    config = PYRAMID.replace(size=192, steps=10, final_share=0.2, precision="float32")
    cancel = CancelToken()
    result = None
    for event in front.stylize(
        content_image, [style_image], config, cancel=cancel, instant_first=False
    ):
        if getattr(event, "step", 0) == 3:
            assert event.scale_size == 136
            cancel.cancel()
        result = event
    assert result.stopped and result.steps_done == 3
    assert result.image.shape == (144, 192, 3) and np.isfinite(result.final_loss)


def test_the_memory_estimate_of_a_pyramid_is_that_of_its_largest_scale():
    from nst.memory import estimate_memory

    shape = (1536, 2048, 3)
    pyramid = PYRAMID.replace(size=2048)
    assert len(plan_scales(pyramid)) > 1
    # The output scale's: its size, and L-BFGS's pairs for its iterations.
    final = plan_scales(pyramid)[-1].steps
    alone = pyramid.replace(scales=1, steps=final)
    assert estimate_memory(pyramid, shape) == estimate_memory(alone, shape)
    assert estimate_memory(pyramid.replace(scales=1), shape) > estimate_memory(alone, shape)
    assert estimate_memory(pyramid, shape) > estimate_memory(pyramid.replace(size=1448), shape)
