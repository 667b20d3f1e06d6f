"""Print sizes tile by tile: the tiled loss and gradient are the untiled ones, the grid sits on
the pooling stride, a tiled run leaves no seam, and a tile's memory, not the picture's, grows
the estimate."""

import numpy as np
import pytest
import tensorflow as tf

from nst.config import StyleConfig
from nst.engine import tiles
from nst.engine.losses import gram_matrix
from nst.engine.model import get_extractor
from nst.engine.objective import prepare

SMALL_TILE = 96 * 96  # cores of 64 px within the 16-px margins of block3_conv1


def _plain(problem, image: tf.Tensor) -> tuple[float, dict, np.ndarray]:
    with tf.GradientTape() as tape:
        tape.watch(image)
        total, parts = problem.objective(image)
    return (
        float(total),
        {k: float(v) for k, v in parts.items()},
        tape.gradient(total, image).numpy(),
    )


def _tiled(problem, image: tf.Tensor) -> tuple[float, dict, np.ndarray]:
    total, parts, gradient = problem.value_and_gradient(image)
    return float(total), {k: float(v) for k, v in parts.items()}, gradient.numpy()


def test_the_geometry_of_vgg_style_layers() -> None:
    extractor = get_extractor("vgg19", "max", ("block1_conv1", "block2_conv1", "block3_conv1"))
    geo = tiles.geometry(extractor)
    assert geo is not None
    assert dict(geo.strides) == {"block1_conv1": 1, "block2_conv1": 2, "block3_conv1": 4}
    # Receptive radius of block3_conv1: 1+1, +1 (pool), +2+2, +2 (pool), +4 = 13 -> 16.
    assert (geo.margin, geo.align) == (16, 4)
    deep = tiles.geometry(get_extractor("vgg16", "avg", ("block5_conv2",)))
    assert deep is not None and deep.align == 16 and deep.margin >= 90


def test_resnet_runs_whole() -> None:
    assert tiles.geometry(get_extractor("resnet50", "max", ("conv2_block3_out",))) is None


@pytest.mark.parametrize("height,width", [(160, 224), (201, 131)])
def test_the_grid_covers_every_pixel_once_on_the_stride(height: int, width: int) -> None:
    geo = tiles.Geometry({"a": 1, "b": 4}, margin=16, align=4)
    boxes = tiles.plan(height, width, geo, SMALL_TILE)
    assert len(boxes) > 4
    cover = np.zeros((height, width), int)
    for y0, y1, x0, x1 in boxes:
        cover[y0:y1, x0:x1] += 1
        assert y0 % 4 == 0 and x0 % 4 == 0
        view = tiles.window((y0, y1, x0, x1), height, width, geo.margin)
        assert (view[1] - view[0]) * (view[3] - view[2]) <= SMALL_TILE
    assert (cover == 1).all()


@pytest.mark.parametrize("optimizer_mask", ["none", "one style", "two styles"])
def test_the_tiled_loss_and_gradient_equal_the_untiled_ones(
    content_image, style_image, optimizer_mask
) -> None:
    styles = (
        [style_image, style_image[::-1].copy()] if optimizer_mask == "two styles" else [style_image]
    )
    mask = None
    if optimizer_mask != "none":
        mask = np.zeros((60, 80, 3), np.float32)
        mask[:, 30:] = 1.0
    # A content layer deeper than the style's, measured on the picture scaled down: the
    # content pass of its own is the same tiled and whole.
    config = StyleConfig(
        size=256,
        precision="float32",
        content_scale=0.5,
        content_layers=("block5_conv2",),
        seed=2,
    )
    tiled = prepare(content_image, styles, config, mask, tile_pixels=SMALL_TILE)
    plain = prepare(content_image, styles, config, mask)
    assert tiled.tiled is not None and plain.tiled is None
    assert tiled.content_shape == plain.content_shape
    assert len(tiles.plan(*tiled.content.shape[:2], tiled.tiled.geo, SMALL_TILE)) >= 6
    rng = np.random.default_rng(5)
    image = tf.constant(rng.uniform(0, 1, (1, *plain.content.shape)).astype(np.float32))
    total, parts, gradient = _tiled(tiled, image)
    expected_total, expected_parts, expected_gradient = _plain(plain, image)
    assert total == pytest.approx(expected_total, rel=1e-4)
    for name in expected_parts:
        assert parts[name] == pytest.approx(expected_parts[name], rel=1e-4, abs=1e-7)
    scale = np.abs(expected_gradient).max()
    assert scale > 0
    np.testing.assert_allclose(gradient, expected_gradient, atol=2e-4 * scale)


def test_a_paintings_gram_matrices_tile_by_tile(style_image) -> None:
    extractor = get_extractor("vgg19", "max", ("block1_conv1", "block2_conv1", "block3_conv1"))
    geo = tiles.geometry(extractor)
    picture = tf.constant(style_image[None])
    whole = extractor(picture)
    tiled = tiles.gram_matrices(extractor, geo, picture, tile_pixels=SMALL_TILE)[0]
    for name, features in whole.items():
        expected = gram_matrix(features).numpy()
        np.testing.assert_allclose(
            tiled[name].numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()
        )


def _seam_ratio(image: np.ndarray, borders: list[int], axis: int) -> float:
    """The largest pixel step across a tile border, over the median step between neighbours
    elsewhere along ``axis`` (1 for rows: steps between row y-1 and y)."""
    steps = np.abs(np.diff(image, axis=axis)).mean(axis=(1, 2) if axis == 0 else (0, 2))
    across = [steps[border - 1] for border in borders]
    return float(max(across) / np.median(steps))


def test_a_run_over_many_tiles_ends_without_a_seam(content_image, style_image) -> None:
    from nst.engine.run import optimize

    config = StyleConfig(size=256, steps=8, scales=1, precision="float32", content_scale=0.5)
    events = list(optimize(content_image, [style_image], config, tile_pixels=SMALL_TILE))
    tiled = events[-1].image
    plain = list(optimize(content_image, [style_image], config))[-1].image
    assert events[-1].steps_done == 8 and events[-1].error is None
    # The painted picture moved away from the photo, as much as the untiled run's did...
    start = np.asarray(prepare(content_image, [style_image], config).content)
    moved = np.abs(tiled - start).mean()
    assert moved > 0.01
    # ...along the same path: the tiled loss is the untiled one, so the pictures agree (to
    # the float rounding that L-BFGS's steps carry on).
    assert np.abs(tiled - plain).mean() < 0.2 * moved
    # No seam: the steps across the tile borders are like those anywhere else.
    geo = tiles.Geometry({"block3_conv1": 4}, margin=16, align=4)
    boxes = tiles.plan(*tiled.shape[:2], geo, SMALL_TILE)
    rows = sorted({box[0] for box in boxes} - {0})
    cols = sorted({box[2] for box in boxes} - {0})
    assert rows and cols
    assert _seam_ratio(tiled, rows, axis=0) < 1.5
    assert _seam_ratio(tiled, cols, axis=1) < 1.5


def test_the_memory_estimate_grows_with_the_tile_not_the_picture(
    content_image, monkeypatch
) -> None:
    from nst import memory
    from nst.plan import TILE_PIXELS

    shape = content_image.shape
    config = StyleConfig(size=2896, precision="float32")
    a3, a4 = config.replace(size=4961), config.replace(size=3508)
    whole = memory.MEMORY_BYTES_PER_PIXEL[memory.cpu_kernels(), "float32"]
    whole += memory.LBFGS_BYTES_PER_PIXEL
    pixels = [np.prod(memory.working_shape(*shape[:2], c.size)) for c in (config, a4, a3)]
    estimates = [memory.estimate_memory(c, shape) for c in (config, a4, a3)]
    # Past the tile size, a further pixel costs the picture's own tensors only, well under what
    # a pixel of a pass over the whole picture costs...
    # (L-BFGS keeps a pair of picture copies per iteration of the output scale, up to its
    # history: 7 of 10 by default.)
    from nst.plan import plan_scales

    final = plan_scales(a3)[-1].steps
    assert final == plan_scales(a4)[-1].steps == 7
    picture = memory.PICTURE_BYTES_PER_PIXEL["lbfgs"] - (10 - 7) * memory.LBFGS_PAIR_BYTES_PER_PIXEL
    assert memory.lbfgs_bytes_per_pixel(final) == memory.LBFGS_BYTES_PER_PIXEL - 3 * 24.0
    growth = (estimates[2] - estimates[1]) / (pixels[2] - pixels[1])
    assert growth == pytest.approx(memory.MEMORY_MARGIN * picture, rel=0.01)
    full = config.replace(steps=200)  # 20 iterations at the output size: the whole history
    assert memory.estimate_memory(full.replace(size=4961), shape) > estimates[2]
    assert growth < 0.5 * whole
    assert pixels[0] > 2 * TILE_PIXELS
    assert estimates[0] < memory.MEMORY_BASE_BYTES + pixels[0] * whole
    # ...while a larger tile costs more at the same picture size.
    monkeypatch.setattr(memory, "TILE_SIDE", 2048)
    assert memory.estimate_memory(a4, shape) > estimates[1] + 0.2e9


def test_a_print_that_does_not_fit_is_refused_in_one_sentence(
    content_image, style_image, monkeypatch
) -> None:
    from nst import front

    monkeypatch.setattr(front, "available_memory", lambda: 3 * 10**9)
    with pytest.raises(ValueError) as refused:
        front.check(content_image, [style_image], StyleConfig(size=4961))
    message = str(refused.value)
    assert message.startswith("A 4961 px result needs about ")
    assert message.count(". ") == 0 and message.endswith(".")


def test_a_print_stopped_at_a_smaller_scale_keeps_its_picture_at_full_size(
    content_image, style_image, monkeypatch
) -> None:
    from nst.engine import run
    from nst.records import CancelToken, Result

    prepared_sizes = []
    real_prepare = run.prepare

    def recording(content, styles, config, *args):
        prepared_sizes.append(config.size)
        return real_prepare(content, styles, config, *args)

    monkeypatch.setattr(run, "prepare", recording)
    cancel = CancelToken()
    config = StyleConfig(size=256, steps=8, scales=2, precision="float32", content_scale=0.5)
    events = []
    # The 181-px scale is computed whole, the 256-px output size tile by tile.
    for event in run.optimize(
        content_image, [style_image], config, cancel=cancel, tile_pixels=160 * 160
    ):
        events.append(event)
        if getattr(event, "step", 0) == 2:
            cancel.cancel()
    result = events[-1]
    assert isinstance(result, Result) and result.stopped and result.steps_done == 2
    assert result.image.shape == (192, 256, 3)
    # The output size was never prepared: its targets and an evaluation there cost minutes
    # at print sizes. The loss is the smaller scale's.
    assert prepared_sizes == [181]
    assert np.isfinite(result.final_loss)
    assert result.final_loss <= min(row["loss"] for row in result.history) * (1 + 1e-6)


def test_a_prints_broad_style_term_and_hold_are_the_plain_computation(
    content_image, style_image
) -> None:
    from nst.config import CONTENT_TILED_SIDE
    from nst.engine.objective import BASE_HOLD, BROAD_STYLE_SHARE
    from nst.plan import PLAN_BASE_SIDE

    config = StyleConfig(size=640, precision="float32", seed=4)
    tiled = prepare(content_image, [style_image], config, tile_pixels=200 * 200)
    plain = prepare(content_image, [style_image], config)
    loss = tiled.tiled
    assert loss is not None and plain.tiled is None
    assert loss.broad == BROAD_STYLE_SHARE and max(loss.broad_shape) == PLAN_BASE_SIDE
    assert loss.hold == BASE_HOLD and loss.held is None
    assert max(loss.content_shape) == min(CONTENT_TILED_SIDE, 640)
    rng = np.random.default_rng(9)
    image = tf.constant(rng.uniform(0, 1, (1, *plain.content.shape)).astype(np.float32))
    start = rng.uniform(0, 1, plain.content.shape).astype(np.float32)
    free = _check_against_the_plain_loss(config, tiled, plain, image, start, held=False)
    loss.hold_to(start)
    held = _check_against_the_plain_loss(config, tiled, plain, image, start, held=True)
    assert held > free * 1.01  # a picture far from the one held to pays for it


def _check_against_the_plain_loss(config, tiled, plain, image, start, held) -> float:
    """The tiled loss, its parts and gradient against the plain computation; the loss."""
    from nst.engine.losses import content_loss, content_view, style_loss
    from nst.engine.objective import BASE_HOLD

    loss = tiled.tiled
    total, parts, gradient = _tiled(tiled, image)
    # The plain way: the untiled style and smoothness terms with the rest of the style weight,
    # the content on the picture scaled down to its measuring size, the style of the picture
    # scaled down to the base size and, once held, its squared difference there from the
    # start picture, all through one tape.
    with tf.GradientTape() as tape:
        tape.watch(image)
        _, whole = plain.objective(image)
        content = config.content_weight * content_loss(
            loss.content_extractor(content_view(image, loss.content_shape)), loss.content_targets
        )
        view = content_view(image, loss.broad_shape)
        broad = (
            config.style_weight * loss.broad * style_loss(loss.extractor(view), [loss.broad_target])
        )
        if held:
            start_view = content_view(tf.constant(start[None]), loss.broad_shape)
            broad += config.style_weight * BASE_HOLD * tf.reduce_mean(tf.square(view - start_view))
        style = (1.0 - loss.broad) * whole["style"] + broad
        expected = content + whole["tv"] + style
    expected_gradient = tape.gradient(expected, image).numpy()
    assert total == pytest.approx(float(expected), rel=1e-4)
    assert parts["style"] == pytest.approx(float(style), rel=1e-4)
    assert parts["content"] == pytest.approx(float(content), rel=1e-4)
    scale = np.abs(expected_gradient).max()
    np.testing.assert_allclose(gradient, expected_gradient, atol=2e-4 * scale)
    return total


def test_a_prints_output_size_holds_the_strokes_its_smaller_scale_painted(
    content_image, style_image, monkeypatch
) -> None:
    from nst.engine.run import optimize
    from nst.records import Progress

    holds: list[np.ndarray] = []
    real_hold = tiles.TiledLoss.hold_to

    def recording(self, image):
        holds.append(np.array(image))
        real_hold(self, image)
        assert self.held is not None and tuple(self.held.shape[1:3]) == self.broad_shape

    monkeypatch.setattr(tiles.TiledLoss, "hold_to", recording)
    config = StyleConfig(
        size=544, steps=2, scales=2, final_share=0.5, precision="float32", optimizer="adam"
    )
    events = list(optimize(content_image, [style_image], config, tile_pixels=200 * 200))
    assert events[-1].steps_done == 2 and events[-1].error is None
    # The 385-px scale (at most the base size) is computed whole and holds nothing; the
    # 544-px output, tile by tile, holds to the 385-px picture its step painted, enlarged:
    # the first preview, no longer the photo.
    assert len(holds) == 1 and holds[0].shape == (408, 544, 3)
    first = next(e for e in events if isinstance(e, Progress) and e.preview is not None)
    assert first.scale_size == 385
    np.testing.assert_allclose(holds[0], first.preview, atol=1e-5)
    photo = np.asarray(prepare(content_image, [style_image], config).content)
    assert np.abs(holds[0] - photo).mean() > 0.01
    # A print painted at its output size only (one scale) has no smaller scale to hold to.
    one_scale = config.replace(scales=1, steps=1)
    list(optimize(content_image, [style_image], one_scale, tile_pixels=200 * 200))
    assert len(holds) == 1
