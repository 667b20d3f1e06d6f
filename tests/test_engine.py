"""The engine (``nst.engine``): the optimization loop on real images at small sizes (random
features, NST_WEIGHTS=random)."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from nst import color, front
from nst.config import StyleConfig
from nst.engine import CancelToken, Problem, Progress, Result, prepare
from nst.engine.losses import gram_matrix
from nst.engine.objective import evaluate
from nst.images import resize_to
from tests.engine_runs import run_stylize, stylize

SMALL = StyleConfig(size=96, steps=12, preview_every=4, precision="float32")


def _events(content, style, config, **options):
    return list(stylize(content, [style], config, **options))


def _cancelled_at(step, content, style, config):
    """The result of a run whose cancel token is set after its ``step``-th step."""
    token = CancelToken()
    for event in stylize(content, [style], config, cancel=token):
        if isinstance(event, Result):
            return event
        if event.step == step:
            token.cancel()
    raise AssertionError("stylize ended without a result")


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_run_streams_progress_and_ends_with_a_better_image(content_image, style_image, optimizer):
    config = SMALL.replace(optimizer=optimizer)
    events = _events(content_image, style_image, config)
    progress, result = events[:-1], events[-1]
    assert isinstance(result, Result) and all(isinstance(e, Progress) for e in progress)
    assert [e.step for e in progress] == list(range(1, len(progress) + 1))
    assert len(progress) == config.steps == result.steps_done == len(result.history)
    assert [e.step for e in progress if e.preview is not None] == [1, 4, 8, 12]
    assert progress[-1].preview.shape == result.image.shape == (72, 96, 3)  # 4:3 kept
    assert set(progress[0].parts) == {"content", "style", "tv"}
    assert result.final_loss < result.initial_loss
    assert np.isfinite(result.image).all() and 0 <= result.image.min() <= result.image.max() <= 1
    content_small = resize_to(content_image, 72, 96)
    assert np.abs(result.image - content_small).mean() > 0.01
    assert not result.stopped and result.error is None
    assert {"build", "targets", "first_step", "optimize", "total"} <= set(result.timings)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_cancellation_ends_early_and_keeps_the_best_image(content_image, style_image, optimizer):
    config = SMALL.replace(steps=50, optimizer=optimizer)
    result = _cancelled_at(3, content_image, style_image, config)
    assert result.stopped and result.steps_done == 3
    assert np.isfinite(result.image).all() and result.final_loss < result.initial_loss


def test_non_finite_loss_stops_with_a_message_and_keeps_last_good_image(
    content_image, style_image, monkeypatch
):
    calls = tf.Variable(0)
    objective = Problem.objective

    def failing(self, pixels):
        total, parts = objective(self, pixels)
        calls.assign_add(1)
        return tf.where(calls > 3, tf.constant(np.nan), total), parts

    monkeypatch.setattr(Problem, "objective", failing)
    result = run_stylize(content_image, [style_image], SMALL.replace(steps=10, optimizer="adam"))
    assert result.error.startswith("The loss became nan at step 4")
    assert result.steps_done == 3 and np.isfinite(result.image).all()


def test_extreme_settings_within_bounds_stay_finite(content_image, style_image):
    config = SMALL.replace(
        steps=5, learning_rate=1.0, style_weight=1000.0, content_weight=0.0, tv_weight=100.0
    )
    result = run_stylize(content_image, [style_image], config)
    assert np.isfinite(result.image).all() and np.isfinite(result.final_loss)


def test_loss_balance_is_about_the_same_at_two_sizes(content_image, style_image):
    parts = {}
    for size in (96, 192):
        problem = prepare(content_image, [style_image], SMALL.replace(size=size))
        height, width = problem.content.shape[:2]
        mixed = 0.5 * problem.content + 0.5 * resize_to(style_image, height, width)
        _, values = problem.objective(tf.constant(mixed[None]))
        parts[size] = {name: float(value) for name, value in values.items()}
    for name in ("content", "style", "tv"):
        ratio = parts[192][name] / parts[96][name]
        assert 0.5 < ratio < 2.0, (name, parts)


def test_warm_start_continues_from_a_result(content_image, style_image):
    first = run_stylize(content_image, [style_image], SMALL)
    resumed = run_stylize(
        content_image, [style_image], SMALL.replace(steps=3), init_image=first.image
    )
    assert resumed.initial_loss < first.initial_loss
    assert resumed.initial_loss == pytest.approx(first.final_loss, rel=0.1)


def test_two_styles_with_weights_one_zero_match_the_first_style(content_image, style_image):
    other = np.ascontiguousarray(style_image[::-1, ::-1, ::-1])
    alone = prepare(content_image, [style_image], SMALL)
    blended = prepare(content_image, [style_image, other], SMALL.replace(style_blend=(1.0, 0.0)))
    mixed = prepare(content_image, [style_image, other], SMALL.replace(style_blend=(0.5, 0.5)))
    for name, gram in alone.style_targets[0].grams.items():
        np.testing.assert_allclose(blended.style_targets[0].grams[name], gram, rtol=1e-6)
    name = next(iter(alone.style_targets[0].grams))
    assert not np.allclose(mixed.style_targets[0].grams[name], alone.style_targets[0].grams[name])


def test_mask_keeps_the_photo_where_black(content_image, style_image):
    mask = np.zeros(content_image.shape[:2], np.float32)
    mask[:, : mask.shape[1] // 2] = 1.0  # style on the left half only
    result = run_stylize(content_image, [style_image], SMALL, mask=mask)
    content_small = resize_to(content_image, *result.image.shape[:2])
    right = slice(result.image.shape[1] * 3 // 4, None)
    left = slice(None, result.image.shape[1] // 4)
    assert np.abs(result.image[:, right] - content_small[:, right]).max() < 0.02
    assert np.abs(result.image[:, left] - content_small[:, left]).mean() > 0.02


def test_mask_with_two_styles_builds_two_regions(content_image, style_image):
    mask = np.zeros(content_image.shape[:2], np.float32)
    mask[: mask.shape[0] // 2] = 1.0
    problem = prepare(content_image, [style_image, style_image[::-1]], SMALL, mask)
    assert len(problem.style_targets) == 2 and problem.pixel_mask is None
    top, bottom = (target.masks["block1_conv1"].numpy() for target in problem.style_targets)
    np.testing.assert_allclose(top + bottom, 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="one or two styles"):
        next(stylize(content_image, [style_image] * 3, SMALL, mask=mask))


def test_mask_keeps_the_style_part_at_the_same_scale(content_image, style_image):
    # The same style on both sides of a half mask, measured on noise (whose features have the
    # same statistics everywhere): each region's Gram error is about the whole image's, so the
    # style part must be about what it is without a mask, not twice it.
    mask = np.zeros(content_image.shape[:2], np.float32)
    mask[:, : mask.shape[1] // 2] = 1.0
    noise = np.random.default_rng(3).uniform(0.0, 1.0, (1, 96, 72, 3)).astype(np.float32)
    styles = [style_image, style_image]
    plain = prepare(content_image, styles, SMALL)
    masked = prepare(content_image, styles, SMALL, mask)
    assert sum(target.weight for target in masked.style_targets) == pytest.approx(1.0)
    pixels = tf.constant(resize_to(noise[0], *plain.content.shape[:2])[None])
    plain_style = float(plain.objective(pixels)[1]["style"])
    masked_style = float(masked.objective(pixels)[1]["style"])
    assert masked_style == pytest.approx(plain_style, rel=0.2)


def test_validate_names_the_combination_that_cannot_run(content_image, style_image):
    with pytest.raises(ValueError, match=r"^Give at least one style image\.$"):
        next(stylize(content_image, [], SMALL))
    with pytest.raises(ValueError, match=r"give one weight per style \(2 chosen, 3 given\)"):
        next(stylize(content_image, [style_image] * 2, SMALL.replace(style_blend=(1.0, 2.0, 3.0))))
    mask = np.ones(content_image.shape[:2], np.float32)
    with pytest.raises(ValueError, match=r"one or two styles .*; 3 are chosen\.$"):
        next(stylize(content_image, [style_image] * 3, SMALL, mask=mask))


def _chroma_distance(image, reference):
    target = resize_to(reference, *image.shape[:2])
    return float(
        np.abs(color.rgb_to_yiq(image)[..., 1:] - color.rgb_to_yiq(target)[..., 1:]).mean()
    )


def test_luminance_preservation_keeps_the_photo_colours(content_image, style_image):
    free = run_stylize(content_image, [style_image], SMALL.replace(steps=20))
    kept = run_stylize(
        content_image, [style_image], SMALL.replace(steps=20, preserve_colors="luminance")
    )
    assert _chroma_distance(kept.image, content_image) < 0.01
    assert _chroma_distance(free.image, content_image) > 2 * _chroma_distance(
        kept.image, content_image
    )


def test_histogram_preservation_gives_the_style_the_photos_colours(content_image, style_image):
    from nst.engine.objective import style_at_scale as _style_at_scale

    config = SMALL.replace(preserve_colors="histogram")
    problem = prepare(content_image, [style_image], config)
    plain = prepare(content_image, [style_image], SMALL)
    # The style the targets must come from: the painting at its scale, recoloured so that its
    # colour mean and covariance are the photo's (at the working size).
    recoloured = color.match_histogram(_style_at_scale(style_image, config), problem.content)
    pixels, photo = recoloured.reshape(-1, 3), problem.content.reshape(-1, 3)
    painting = _style_at_scale(style_image, config).reshape(-1, 3)
    np.testing.assert_allclose(pixels.mean(0), photo.mean(0), atol=0.03)
    # Clipping to [0, 1] trims the tails a little, so the covariance matches closely, not exactly.
    photo_cov = np.cov(photo.T)
    assert np.linalg.norm(np.cov(pixels.T) - photo_cov) < 0.25 * np.linalg.norm(photo_cov)
    assert np.linalg.norm(np.cov(painting.T) - photo_cov) > 0.5 * np.linalg.norm(photo_cov)
    assert np.abs(painting.mean(0) - photo.mean(0)).max() > 0.1  # there was something to match
    features = problem.extractor(tf.constant(recoloured[None]))
    for name, target in problem.style_targets[0].grams.items():
        expected = gram_matrix(features[name]).numpy()
        np.testing.assert_allclose(target.numpy(), expected, rtol=1e-3, atol=1e-6)
        if name == "block1_conv1":  # colours show first in the first layer's statistics
            assert not np.allclose(plain.style_targets[0].grams[name].numpy(), expected, rtol=0.05)


def _stripes(height: int, width: int, period: float) -> np.ndarray:
    """Blue and yellow vertical stripes ``period`` pixels wide (a texture of known scale)."""
    phase = (np.arange(width) / period) % 1.0 < 0.5
    row = np.where(phase[:, None], [0.15, 0.25, 0.7], [0.95, 0.85, 0.3]).astype(np.float32)
    return np.broadcast_to(row, (height, width, 3)).copy()


def test_style_scale_sets_the_size_of_the_texture(content_image):
    # A 256 px painting of 32 px stripes. At size 96 the style texture is 12 px stripes with
    # style_scale 1 and 24 px stripes with style_scale 2: of stripes of several widths on the
    # canvas, those must score the lowest style loss.
    painting = _stripes(192, 256, 32.0)
    for scale, expected in ((1.0, 12.0), (2.0, 24.0)):
        problem = prepare(content_image, [painting], SMALL.replace(style_scale=scale))
        height, width = problem.content.shape[:2]
        scores = {
            period: float(
                problem.objective(tf.constant(_stripes(height, width, period)[None]))[1]["style"]
            )
            for period in (6.0, 8.0, 12.0, 16.0, 24.0, 32.0)
        }
        assert min(scores, key=scores.get) == expected, scores


@pytest.mark.parametrize(
    "changes",
    [
        {"backbone": "vgg16"},
        {"backbone": "resnet50"},
        {"pooling": "avg"},
        {"init": "blend"},
        {"precision": "bfloat16", "size": 64},
    ],
)
def test_backbones_pooling_init_and_precision_reduce_the_loss(content_image, style_image, changes):
    result = run_stylize(content_image, [style_image], SMALL.replace(steps=6, **changes))
    assert result.final_loss < result.initial_loss and np.isfinite(result.image).all()


@pytest.mark.parametrize("backbone", ["vgg16", "resnet50"])
def test_default_style_leaves_the_deeper_layers_out_and_still_lowers_the_loss(
    content_image, style_image, backbone
):
    from nst.config import default_layers

    config = SMALL.replace(backbone=backbone, steps=8)
    assert config.subject_weight == 0.0
    style_layers = default_layers(backbone)[1]
    shallow = style_layers[: (len(style_layers) + 1) // 2]
    problem = prepare(content_image, [style_image], config)
    (target,) = problem.style_targets
    assert tuple(target.grams) == shallow  # block1 to block3 of VGG: strokes, not subjects
    assert sum(target.layer_weights.values()) == pytest.approx(1.0)
    everything = prepare(content_image, [style_image], config.replace(subject_weight=1.0))
    (all_layers,) = everything.style_targets
    assert tuple(all_layers.grams) == style_layers
    assert list(all_layers.layer_weights.values()) == pytest.approx(
        [1 / len(style_layers)] * len(style_layers)
    )
    # The default objective is the full objective without the deeper layers' style errors.
    image = tf.constant(problem.content[None] * 0.5 + 0.25)
    _, parts = problem.objective(image)
    _, all_parts = everything.objective(image)
    assert float(parts["content"]) == pytest.approx(float(all_parts["content"]), rel=1e-5)
    assert float(parts["style"]) != pytest.approx(float(all_parts["style"]), rel=1e-3)
    result = run_stylize(content_image, [style_image], config)
    assert result.final_loss < result.initial_loss and np.isfinite(result.image).all()


def test_subject_weight_scales_the_deeper_half_of_the_style_layers():
    from nst.engine.model import style_layer_shares

    # Five layers: the first three keep their weights, the last two are scaled, then all
    # are normalised: (1, 1, 1, 0.1, 0.1) / 3.2.
    shares = style_layer_shares(StyleConfig(subject_weight=0.1), 5)
    assert shares == pytest.approx([1 / 3.2] * 3 + [0.1 / 3.2] * 2)
    custom = StyleConfig(subject_weight=0.5, style_layer_weights=(2, 0, 0, 2))
    assert style_layer_shares(custom, 4) == pytest.approx([2 / 3, 0, 0, 1 / 3])
    with pytest.raises(ValueError, match="Painting's subjects"):
        StyleConfig(style_layer_weights=(0, 0, 0, 1, 1))


# ----- coarse to fine, learning-rate schedule, memory pre-flight -------------------------------


def test_scale_sizes_grow_by_sqrt2_to_the_output_size():
    from nst.engine.scales import scale_sizes

    assert scale_sizes(StyleConfig(size=512, scales=4)) == [181, 256, 362, 512]
    assert scale_sizes(StyleConfig(size=512, scales=8)) == [128, 181, 256, 362, 512]
    assert scale_sizes(StyleConfig(size=512, scales=1)) == [512]
    assert scale_sizes(StyleConfig(size=96, scales=4)) == [96]
    assert scale_sizes(StyleConfig(size=512, scales=4), warm_start=True) == [512]


def test_split_steps_gives_the_final_share_to_the_output_size():
    from nst.engine.scales import split_steps

    assert split_steps(100, 1, 0.5) == [100]
    assert split_steps(100, 4, 0.25) == [25, 25, 25, 25]
    assert split_steps(10, 3, 0.5) == [3, 2, 5]
    assert sum(split_steps(7, 5, 0.3)) == 7 and split_steps(7, 5, 0.3)[-1] == 2


def test_learning_rate_is_constant_then_falls_along_a_cosine():
    from nst.engine.adam import learning_rate_at

    config = StyleConfig(learning_rate=0.1, lr_decay=0.5, lr_end=0.2)
    rates = [learning_rate_at(config, step, 20) for step in range(20)]
    assert rates[:11] == [pytest.approx(0.1)] * 11
    assert all(later < earlier for earlier, later in itertools.pairwise(rates[10:]))
    assert rates[-1] == pytest.approx(0.02)
    constant = config.replace(lr_decay=0.0)
    assert {learning_rate_at(constant, step, 20) for step in range(20)} == {0.1}


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_coarse_to_fine_numbers_steps_across_scales_and_previews_at_full_size(
    content_image, style_image, optimizer
):
    config = SMALL.replace(size=192, scales=2, steps=8, final_share=0.5, optimizer=optimizer)
    events = _events(content_image, style_image, config)
    progress, result = events[:-1], events[-1]
    assert [e.step for e in progress] == list(range(1, 9))
    assert all(e.total == 8 for e in progress)
    previews = [e.preview for e in progress if e.preview is not None]
    assert len(previews) == 3 and all(p.shape == (144, 192, 3) for p in previews)
    assert result.image.shape == (144, 192, 3) and result.steps_done == 8
    assert np.isfinite(result.final_loss) and result.final_loss < result.initial_loss
    assert result.timings["first_preview"] > 0


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_cancel_during_a_coarse_scale_returns_a_full_size_image(
    content_image, style_image, optimizer
):
    config = SMALL.replace(size=192, scales=2, steps=20, optimizer=optimizer)
    result = _cancelled_at(2, content_image, style_image, config)
    # Both optimizers read the token before their next loss: the run ends at the step it was
    # told to.
    assert result.stopped and result.steps_done == 2
    assert result.image.shape == (144, 192, 3) and np.isfinite(result.final_loss)


def test_sizes_that_do_not_fit_in_memory_are_refused_before_starting(
    content_image, style_image, monkeypatch
):
    from nst import memory as engine

    small = engine.estimate_memory(StyleConfig(size=512), content_image.shape)
    large = engine.estimate_memory(StyleConfig(size=4096), content_image.shape)
    assert 0 < small < large
    assert engine.estimate_memory(
        StyleConfig(size=1024, optimizer="lbfgs"), content_image.shape
    ) > engine.estimate_memory(StyleConfig(size=1024, optimizer="adam"), content_image.shape)
    # oneDNN's AVX2 kernels need more memory than its AVX-512 ones, in either precision.
    config = StyleConfig(size=1024, precision="float32")
    monkeypatch.setattr(engine, "cpu_kernels", lambda: "avx512")
    avx512 = engine.estimate_memory(config, content_image.shape)
    monkeypatch.setattr(engine, "cpu_kernels", lambda: "avx2")
    avx2 = engine.estimate_memory(config, content_image.shape)
    assert avx2 - engine.MEMORY_BASE_BYTES > 1.5 * (avx512 - engine.MEMORY_BASE_BYTES)
    assert engine.estimate_memory(config.replace(precision="bfloat16"), content_image.shape) == avx2
    monkeypatch.setattr(front, "available_memory", lambda: 2 * 10**9)
    message = (
        r"^A 4096 px result needs about \d+ GB of memory but only 2 GB are available; "
        r"choose a smaller output size\.$"
    )
    with pytest.raises(ValueError, match=message):
        next(stylize(content_image, [style_image], StyleConfig(size=4096)))


def test_extra_loss_terms_join_the_objective_and_its_parts(content_image, style_image):
    config = SMALL.replace(steps=2)
    plain = prepare(content_image, [style_image], config)
    brightness = lambda image: {"bright": 3.0 * tf.reduce_mean(image)}  # noqa: E731
    extended = prepare(content_image, [style_image], config, extra_loss=brightness)
    image = tf.constant(plain.content[None])
    total, _ = plain.objective(image)
    extended_total, extended_parts = extended.objective(image)
    assert set(extended_parts) == {"content", "style", "tv", "bright"}
    expected = float(total) + 3.0 * float(tf.reduce_mean(image))
    assert float(extended_total) == pytest.approx(expected, rel=1e-5)
    result = run_stylize(content_image, [style_image], config, extra_loss=brightness)
    assert "bright" in result.history[-1]
    with pytest.raises(ValueError, match="extra loss terms need a single scale"):
        run_stylize(
            content_image, [style_image], config.replace(scales=2, size=192), extra_loss=brightness
        )


def _bfloat16_stalls(monkeypatch, failing):
    """Native bfloat16, with the line searches numbered ``failing`` finding nothing lower (as
    bfloat16's rounding can make happen; every other search is the real one). Returns the
    searches' budgets and the precision of the extractors of each scale (a change of precision
    as it happens; a scale fetches its style and objective extractors alike)."""
    import nst.engine.lbfgs as lbfgs
    import nst.engine.objective as engine

    real_search, searches = lbfgs.strong_wolfe, []

    def bfloat16_stall(evaluate, start, step, budget):
        searches.append(budget)
        if len(searches) in failing:
            return None, 0
        return real_search(evaluate, start, step, budget)

    precisions = []
    real_get_extractor = engine.get_extractor

    def recording(backbone, pooling, layers, precision):
        if not precisions or precisions[-1] != precision:
            precisions.append(precision)
        return real_get_extractor(backbone, pooling, layers, precision)

    monkeypatch.setattr(lbfgs, "strong_wolfe", bfloat16_stall)
    monkeypatch.setattr(engine, "get_extractor", recording)
    monkeypatch.setattr("nst.cpu.cpu_prefers_bf16", lambda: True)
    return searches, precisions


def test_lbfgs_goes_on_in_float32_when_bfloat16_stops_its_line_search(
    content_image, style_image, monkeypatch
):
    # The 4th search and its steepest-descent retry find nothing lower.
    searches, precisions = _bfloat16_stalls(monkeypatch, (4, 5))
    config = SMALL.replace(optimizer="lbfgs", steps=8, precision="auto")
    events = _events(content_image, style_image, config)
    result = events[-1]
    assert precisions == ["bfloat16", "float32"] and len(searches) == 5 + 5
    assert [event.step for event in events[:-1]] == list(range(1, 9))
    assert result.steps_done == 8 and not result.stopped and result.error is None
    assert result.note == (
        "L-BFGS went on in float32 after 3 iterations in bfloat16, whose rounding had stopped "
        "its line search."
    )
    # Asked for bfloat16 explicitly: it is kept, and the run says why it ended.
    searches.clear()
    explicit = run_stylize(content_image, [style_image], config.replace(precision="bfloat16"))
    assert explicit.steps_done == 3 and len(searches) == 5
    assert explicit.note == (
        "L-BFGS ended after 3 of 8 iterations: its line search found no lower loss along the "
        "search direction, which happens when the loss is as low as the precision resolves. The "
        "best image so far is kept."
    )


def test_a_pyramid_scale_goes_on_in_float32_and_the_next_scale_is_bfloat16_again(
    content_image, style_image, monkeypatch
):
    # The first scale's 3rd search and its retry find nothing lower.
    _searches, precisions = _bfloat16_stalls(monkeypatch, (3, 4))
    config = SMALL.replace(
        optimizer="lbfgs", size=192, scales=2, final_share=0.5, steps=8, precision="auto"
    )
    events = _events(content_image, style_image, config)
    result = events[-1]
    # 136 px: 2 iterations in bfloat16, 2 in float32; 192 px: bfloat16 again.
    assert precisions == ["bfloat16", "float32", "bfloat16"]
    assert [(event.step, event.scale_size) for event in events[:-1]] == [
        (step, 136 if step <= 4 else 192) for step in range(1, 9)
    ]
    assert result.steps_done == 8 and result.image.shape == (144, 192, 3)
    assert result.note == (
        "L-BFGS went on in float32 after 2 iterations in bfloat16, whose rounding had stopped "
        "its line search."
    )


def test_the_instant_picture_comes_first_and_leaves_the_run_unchanged(content_image, style_image):
    from nst.instant import stylize_instant

    config = StyleConfig(size=264, steps=2, precision="float32", preview_every=100)
    events = _events(content_image, style_image, config, instant_first=True)
    instant, steps, result = events[0], events[1:-1], events[-1]
    assert isinstance(instant, Progress) and instant.step == 0 and instant.total == 2
    assert np.isnan(instant.loss) and instant.parts == {} and np.isnan(instant.seconds_left)
    assert instant.preview.shape == result.image.shape == (198, 264, 3)  # at the output size
    np.testing.assert_array_equal(
        instant.preview, stylize_instant(content_image, [style_image], config)
    )
    assert [e.step for e in steps] == [1, 2] and len(result.history) == 2
    assert result.timings["first_preview"] <= steps[0].elapsed
    plain = run_stylize(content_image, [style_image], config)
    np.testing.assert_array_equal(result.image, plain.image)  # only a preview: same start


def test_no_instant_preview_for_warm_starts_or_extra_terms(content_image, style_image):
    config = SMALL.replace(size=96, steps=1)
    warm = _events(content_image, style_image, config, instant_first=True, init_image=content_image)
    assert warm[0].step == 1
    nothing = lambda image: {"zero": 0.0 * tf.reduce_sum(image)}  # noqa: E731
    extra = _events(content_image, style_image, config, instant_first=True, extra_loss=nothing)
    assert extra[0].step == 1


def test_starting_from_the_instant_picture(content_image, style_image):
    from nst.instant import stylize_instant

    config = SMALL.replace(size=96, steps=3, init="instant")
    instant = stylize_instant(content_image, [style_image], config)
    result = run_stylize(content_image, [style_image], config)
    from_photo = run_stylize(content_image, [style_image], config.replace(init="content"))
    # The first loss is the instant picture's, not the photo's; the run still lowers it.
    problem = prepare(content_image, [style_image], config)
    assert result.initial_loss == pytest.approx(evaluate(problem, instant), rel=1e-4)
    assert result.initial_loss != pytest.approx(from_photo.initial_loss, rel=1e-3)
    assert result.final_loss < result.initial_loss
    # With the photo's colours kept, the start is the instant picture's luminance.
    gray = run_stylize(
        content_image, [style_image], config.replace(preserve_colors="luminance", steps=1)
    )
    assert np.isfinite(gray.final_loss)


def test_a_missing_instant_network_costs_the_preview_not_the_run(
    content_image, style_image, monkeypatch
):
    from nst.instant import InstantUnavailable

    def unavailable(*args, **kwargs):
        raise InstantUnavailable("The instant network is not installed.")

    monkeypatch.setattr("nst.instant.stylize_instant", unavailable)
    config = SMALL.replace(size=96, steps=2, init="content")
    events = _events(content_image, style_image, config, instant_first=True)
    assert [e.step for e in events[:-1]] == [1, 2] and events[-1].steps_done == 2
    with pytest.raises(InstantUnavailable):
        _events(content_image, style_image, config.replace(init="instant"))
