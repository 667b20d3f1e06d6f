"""Losses on tiny tensors: Gram, content, style, total variation, gradients, size balance."""

import numpy as np
import pytest
import tensorflow as tf

from nst.engine.losses import (
    LossWeights,
    StyleTarget,
    content_loss,
    gram_matrix,
    style_loss,
    total_loss,
    total_variation,
)


def _features(seed: int, shape=(1, 6, 5, 4)) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def test_gram_is_symmetric_and_equals_numpy_reference():
    features = _features(0)
    gram = gram_matrix(features).numpy()[0]
    flat = features.numpy()[0].reshape(-1, 4)
    np.testing.assert_allclose(gram, flat.T @ flat / flat.shape[0], rtol=1e-5)
    np.testing.assert_allclose(gram, gram.T, rtol=1e-6)


def test_gram_of_bfloat16_features_is_float32_and_close_to_the_float32_gram():
    features = _features(2)
    mask = tf.constant(np.linspace(0, 1, 30, dtype=np.float32).reshape(1, 6, 5, 1))
    for given in (None, mask):
        exact = gram_matrix(features, given).numpy()
        approx = gram_matrix(tf.cast(features, tf.bfloat16), given)
        assert approx.dtype == tf.float32
        # bfloat16 keeps 8 significant bits of each feature: about 1% on each product.
        tolerance = 0.03 * np.abs(exact).max()
        np.testing.assert_allclose(approx.numpy(), exact, rtol=0.03, atol=tolerance)


def test_masked_gram_weights_positions():
    features = _features(1)
    mask = np.zeros((1, 6, 5, 1), np.float32)
    mask[:, :3] = 1.0
    masked = gram_matrix(features, tf.constant(mask)).numpy()[0]
    top = features.numpy()[0, :3].reshape(-1, 4)
    np.testing.assert_allclose(masked, top.T @ top / top.shape[0], rtol=1e-4)


def test_content_loss_is_zero_for_identical_features_and_relative():
    features = {"c": _features(2)}
    assert float(content_loss(features, features)) == 0.0
    scaled = {"c": features["c"] * 100.0}
    # A relative error: scaling both sides does not change it.
    other = {"c": _features(3)}
    np.testing.assert_allclose(
        float(content_loss(other, features)),
        float(content_loss({"c": other["c"] * 100.0}, scaled)),
        rtol=1e-4,
    )


def test_style_loss_zero_at_target_positive_elsewhere():
    features = {"a": _features(4), "b": _features(5, (1, 3, 3, 8))}
    grams = {name: gram_matrix(value) for name, value in features.items()}
    target = [StyleTarget(grams, {"a": 0.5, "b": 0.5})]
    assert float(style_loss(features, target)) == pytest.approx(0.0, abs=1e-7)
    other = {"a": _features(6), "b": _features(7, (1, 3, 3, 8))}
    assert float(style_loss(other, target)) > 0.1


def test_total_variation_zero_on_constant_and_size_independent():
    assert float(total_variation(tf.fill((1, 16, 16, 3), 0.3))) == pytest.approx(0.0, abs=1e-6)

    # A texture at a fixed scale in pixels (what stylization paints) gives the same value at
    # any image size: the term is a mean, not a sum.
    def texture(size: int) -> tf.Tensor:
        rng = np.random.default_rng(0)
        cells = rng.uniform(0, 1, (size // 4, size // 4, 3)).astype(np.float32)
        return tf.constant(np.kron(cells, np.ones((4, 4, 1), np.float32))[None])

    small, large = float(total_variation(texture(64))), float(total_variation(texture(256)))
    assert small > 0.05 and large == pytest.approx(small, rel=0.1)


def test_total_loss_parts_add_up_and_gradients_are_finite():
    image = tf.Variable(tf.random.stateless_uniform((1, 8, 8, 3), seed=(1, 2)))
    features = {"c": _features(8), "s": _features(9)}
    target = [StyleTarget({"s": gram_matrix(_features(10))}, {"s": 1.0})]
    with tf.GradientTape() as tape:
        scaled = {
            "c": features["c"] * tf.reduce_mean(image),
            "s": features["s"] * image[0, 0, 0, 0],
        }
        total, parts = total_loss(
            image, scaled, {"c": features["c"]}, target, LossWeights(1, 10, 0.1)
        )
    assert set(parts) == {"content", "style", "tv"}
    assert float(total) == pytest.approx(sum(float(v) for v in parts.values()), rel=1e-5)
    gradient = tape.gradient(total, image)
    assert gradient is not None and np.all(np.isfinite(gradient.numpy()))
    assert float(tf.reduce_max(tf.abs(gradient))) > 0
