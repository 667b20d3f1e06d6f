"""The objective's content pass: measured on fewer pixels by its own truncated extractor, it
gives exactly the loss and gradient of the plain computation at that resolution."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nst.config import CONTENT_MIN_SIDE, StyleConfig
from nst.engine.losses import total_loss
from nst.engine.model import get_extractor, preload
from nst.engine.objective import content_measure_shape, content_view, prepare


def _loss_and_gradient(objective, image: tf.Tensor) -> tuple[float, dict, np.ndarray]:
    with tf.GradientTape() as tape:
        tape.watch(image)
        total, parts = objective(image)
    gradient = tape.gradient(total, image).numpy()
    return float(total), {name: float(value) for name, value in parts.items()}, gradient


def _assert_same_loss_and_gradient(objective, plain, image: tf.Tensor) -> None:
    """``objective`` and ``plain`` give the same loss, parts and gradient at ``image``, with
    a content term that is there, not vanished."""
    total, parts, gradient = _loss_and_gradient(objective, image)
    plain_total, plain_parts, plain_gradient = _loss_and_gradient(plain, image)
    assert total == pytest.approx(plain_total, rel=1e-5)
    for name in ("content", "style", "tv"):
        assert parts[name] == pytest.approx(plain_parts[name], rel=1e-5)
    assert parts["content"] > 0.01
    np.testing.assert_allclose(gradient, plain_gradient, rtol=1e-3, atol=1e-6 * abs(gradient).max())


def test_content_measure_shape_scales_down_but_never_below_the_floor() -> None:
    assert content_measure_shape(384, 512, 0.5) == (192, 256)
    assert content_measure_shape(384, 512, 1.0) is None
    # Never under CONTENT_MIN_SIDE, nor above the working size.
    assert CONTENT_MIN_SIDE == 128
    assert content_measure_shape(135, 181, 0.5) == (95, 128)
    assert content_measure_shape(96, 128, 0.5) is None
    assert content_measure_shape(48, 64, 0.25) is None


def test_the_content_pass_at_half_size_equals_the_plain_computation(content_image, style_image):
    config = StyleConfig(
        size=256,
        precision="float32",
        seed=3,
        content_scale=0.5,
        content_layers=("block5_conv2",),
    )
    problem = prepare(content_image, [style_image], config)
    assert (
        problem.content_shape == (128, 171)
        or problem.content_shape == (171, 128)
        or (max(problem.content_shape) == 128)
    )
    # Two truncated extractors: the style pass stops at block3_conv1, the content pass is its own.
    assert problem.extractor.layers == ("block1_conv1", "block2_conv1", "block3_conv1")
    assert problem.content_extractor.layers == ("block5_conv2",)
    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(0, 1, (1, *problem.content.shape)).astype(np.float32))

    # The plain way: one full extractor, its content layer read off the scaled-down picture.
    full = get_extractor("vgg19", "max", ("block5_conv2", *problem.extractor.layers), "float32")
    target = full(content_view(tf.constant(problem.content[None]), problem.content_shape))

    def plain(picture: tf.Tensor):
        features = dict(full(picture))
        features["block5_conv2"] = full(content_view(picture, problem.content_shape))[
            "block5_conv2"
        ]
        return total_loss(
            picture,
            features,
            {"block5_conv2": target["block5_conv2"]},
            problem.style_targets,
            problem.weights,
        )

    _assert_same_loss_and_gradient(problem.objective, plain, image)


def test_the_photo_itself_has_no_content_loss_at_any_content_scale(content_image, style_image):
    for scale in (0.25, 0.5, 1.0):
        config = StyleConfig(size=256, content_scale=scale, content_layers=("block5_conv2",))
        problem = prepare(content_image, [style_image], config)
        _, parts, _ = _loss_and_gradient(problem.objective, tf.constant(problem.content[None]))
        assert parts["content"] == pytest.approx(0.0, abs=1e-6)


def test_content_scale_one_is_one_pass_of_gatys_layers(content_image, style_image):
    config = StyleConfig(size=256, content_scale=1.0, content_layers=("block5_conv2",))
    problem = prepare(content_image, [style_image], config)
    assert problem.content_extractor is None and problem.content_shape is None
    assert set(problem.extractor.layers) == {
        "block5_conv2",
        "block1_conv1",
        "block2_conv1",
        "block3_conv1",
    }


def test_the_default_objective_equals_the_plain_computation_on_the_whole_network(
    content_image, style_image
):
    """Content and style read off one pass that stops at block3_conv1 give the loss and the
    gradient of the same terms read off the whole VGG19 (every block, to block5_pool)."""
    config = StyleConfig(size=192, precision="float32", seed=5)
    problem = prepare(content_image, [style_image], config)
    assert problem.content_extractor is None
    assert tuple(problem.content_targets) == ("block3_conv1",)
    rng = np.random.default_rng(1)
    image = tf.constant(rng.uniform(0, 1, (1, *problem.content.shape)).astype(np.float32))

    whole = get_extractor("vgg19", "max", ("block5_pool",), "float32")
    inner = keras.Model(
        whole.model.inputs,
        {
            name: whole.model.get_layer(name).output
            for name in ("block1_conv1", "block2_conv1", "block3_conv1", "block5_pool")
        },
    )
    assert _conv_layers(whole)[-1] == "block5_conv4"

    def features(picture: tf.Tensor) -> dict:
        return inner(whole.preprocess(picture * 255.0))

    target = features(tf.constant(problem.content[None]))["block3_conv1"]

    def plain(picture: tf.Tensor):
        return total_loss(
            picture,
            features(picture),
            {"block3_conv1": target},
            problem.style_targets,
            problem.weights,
        )

    _assert_same_loss_and_gradient(problem.objective, plain, image)


def _conv_layers(extractor) -> list[str]:
    return [layer.name for layer in extractor.model.layers if "conv" in layer.name]


def test_extractors_build_no_layer_beyond_the_deepest_one_the_settings_use(
    content_image, style_image
):
    deep = StyleConfig(size=256, content_scale=0.25, content_layers=("block5_conv2",))
    problem = prepare(content_image, [style_image], deep)
    assert _conv_layers(problem.extractor)[-1] == "block3_conv1"
    assert _conv_layers(problem.content_extractor)[-1] == "block5_conv2"
    # A shallow content layer shares the style's pass, which ends at the deeper of the two;
    # the deeper style layers, weighted 0 by default, are not built.
    shallow = prepare(
        content_image,
        [style_image],
        StyleConfig(size=256, content_layers=("block2_conv2",)),
    )
    assert shallow.content_extractor is None
    assert _conv_layers(shallow.extractor)[-1] == "block3_conv1"
    assert not any(
        name.startswith(("block4", "block5")) for name in _conv_layers(shallow.extractor)
    )
    deep_style = prepare(
        content_image,
        [style_image],
        StyleConfig(
            size=256, subject_weight=1.0, content_scale=0.5, content_layers=("block5_conv2",)
        ),
    )
    assert _conv_layers(deep_style.extractor)[-1] == "block5_conv1"
    # At the default, one pass that stops at block3_conv1, the content layer and the deepest
    # style layer alike, whatever the content resolution.
    for scale in (1.0, 0.25):
        default = prepare(content_image, [style_image], StyleConfig(size=256, content_scale=scale))
        assert default.content_extractor is None
        assert _conv_layers(default.extractor)[-1] == "block3_conv1"
        # A worker's start-up build is that very extractor.
        assert preload() is default.extractor
