import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import group_norm_then

from tf_cyclegan.layers.instance_normalization import InstanceNormalization


def test_instance_norm_normalises_each_sample_and_channel_without_parameters():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2, 8, 8, 4)) * [1, 5, 10, 0.1] + [3, -2, 0, 7]).astype("float32")
    layer = InstanceNormalization()
    out = keras.ops.convert_to_numpy(layer(x))
    assert layer.count_params() == 0
    expected = (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, expected, atol=1e-4)


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
def test_instance_norm_values_and_gradient_match_group_norm_and_activation(activation):
    # The hand-written backward pass against Keras' op-by-op differentiation of the same maths.
    rng = np.random.default_rng(1)
    x = tf.constant((rng.normal(size=(3, 6, 5, 4)) * [1, 5, 10, 0.1] + [3, -2, 0, 7]).astype("float32"))
    weights = tf.constant(rng.normal(size=x.shape).astype("float32"))
    results = []
    for fn in (group_norm_then(activation), InstanceNormalization(activation=activation)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(tf.sin(y) * weights)
        results.append((y.numpy(), tape.gradient(loss, x).numpy()))
    (y_ref, grad_ref), (y, grad) = results
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    np.testing.assert_allclose(grad, grad_ref, atol=1e-5 * np.abs(grad_ref).max())
    assert np.abs(grad_ref).max() > 0.1


def test_instance_norm_under_mixed_bfloat16_keeps_the_compute_dtype_and_float32_statistics():
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 4)).astype("float32") * 50 + 1000
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = InstanceNormalization(activation="relu")
        with tf.GradientTape() as tape:
            inputs = tf.cast(x, "bfloat16")
            tape.watch(inputs)
            out = layer(inputs)
            loss = tf.reduce_sum(tf.cast(out, "float32"))
        grad = tape.gradient(loss, inputs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == tf.bfloat16 and grad.dtype == tf.bfloat16
    # Large offsets would swamp bfloat16 statistics; in float32 the output stays normalised.
    # (The input is rounded to bfloat16 first, so compare with that input's statistics.)
    x16 = tf.cast(tf.cast(x, "bfloat16"), "float32").numpy()
    expected = np.maximum((x16 - x16.mean((1, 2), keepdims=True)) / np.sqrt(x16.var((1, 2), keepdims=True) + 1e-5), 0)
    np.testing.assert_allclose(tf.cast(out, "float32").numpy(), expected, atol=0.05)


def test_instance_norm_config_round_trip_and_bad_arguments():
    layer = InstanceNormalization(epsilon=1e-3, activation="leaky_relu", negative_slope=0.1, name="norm")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, InstanceNormalization)
    assert (restored.epsilon, restored.activation, restored.negative_slope, restored.name) == (
        1e-3, "leaky_relu", 0.1, "norm")
    with pytest.raises(ValueError, match="activation.*'gelu'"):
        InstanceNormalization(activation="gelu")
    with pytest.raises(ValueError, match="epsilon"):
        InstanceNormalization(epsilon=0)


def _instance_norm_by_ops(activation, affine, epsilon=1e-5, negative_slope=0.2):
    """The layer's maths with plain TensorFlow ops, for autodiff to differentiate."""
    def reference(x, *weights):
        mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        y = (x - mean) / tf.sqrt(variance + epsilon)
        if affine:
            gamma, beta = weights
            y = y * gamma + beta
        if activation == "relu":
            return tf.nn.relu(y)
        return tf.nn.leaky_relu(y, negative_slope) if activation == "leaky_relu" else y
    return reference


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
def test_instance_norm_passes_the_layer_harness_with_its_gradient_against_autodiff(tmp_path, activation, affine):
    """Its own gradient, for the input and (affine) for the scale and offset, against autodiff."""
    from conftest import run_layer_test

    layer = run_layer_test(InstanceNormalization, {"activation": activation, "affine": affine}, (2, 6, 5, 4),
                           (2, 6, 5, 4), tmp_path, reference=_instance_norm_by_ops(activation, affine))
    assert len(layer.trainable_weights) == (2 if affine else 0)
