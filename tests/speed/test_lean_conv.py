import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_cyclegan

from tf_cyclegan import runtime
from tf_cyclegan.speed import apply_cpu_speedups, lean_conv


def LeanConv2D(*args, **kwargs):  # noqa: N802 - reads as the class it once was
    """A plain `keras.layers.Conv2D` with the lean gradient attached (where it applies)."""
    layer = keras.layers.Conv2D(*args, **kwargs)
    lean_conv.attach(layer)
    return layer


# Filters: more than the 5 input channels, and fewer (the kernel gradient is computed the
# other way round then, as for the generator's last layer).
@pytest.mark.onednn
@pytest.mark.parametrize("kernel_size, strides, batch, filters", [
    (3, 1, 1, 6), (7, 1, 2, 6), (4, 1, 3, 6), (3, 2, 2, 6), (3, 1, 1, 2), (7, 1, 3, 3), (4, 1, 2, 1),
])
def test_lean_conv_matches_keras_conv_values_and_gradients(kernel_size, strides, batch, filters):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(batch, 13, 11, 5)).astype("float32"))
    weights = None
    results = []
    for layer_class in (keras.layers.Conv2D, LeanConv2D):
        layer = layer_class(filters, kernel_size, strides=strides, padding="valid")
        layer.build(x.shape)
        if weights is None:
            weights = [rng.normal(size=v.shape).astype("float32") for v in layer.weights]
        layer.set_weights(weights)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.sin(y) * y)
        grads = tape.gradient(loss, [x, layer.kernel, layer.bias])
        results.append([y.numpy()] + [g.numpy() for g in grads])
    for ref, got, what in zip(results[0], results[1], ("output", "input grad", "kernel grad", "bias grad")):
        np.testing.assert_allclose(got, ref, atol=1e-4 * max(1.0, np.abs(ref).max()), err_msg=what)


@pytest.mark.parametrize("gpu, onednn, mode", [
    (False, False, "auto"), (False, True, "auto"), (True, False, "auto"), (False, False, "off"), (True, False, "on"),
])
def test_lean_gradients_only_where_tensorflow_runs_its_own_cpu_kernels(monkeypatch, gpu, onednn, mode):
    # With a GPU (cuDNN), or under oneDNN's CPU kernels, TensorFlow's gradients are the better choice.
    monkeypatch.setattr(runtime, "has_gpu", lambda: gpu)
    monkeypatch.setattr(runtime, "onednn_enabled", lambda: onednn)
    lean = (mode == "on" or (mode == "auto" and not gpu)) and not onednn
    model = tiny_cyclegan()
    model.compile()
    assert apply_cpu_speedups(model, mode)["lean_conv"] is lean
    layer = model.gen_a2b.get_layer("stem_conv")
    assert type(layer) is keras.layers.Conv2D and lean_conv.attached(layer) is lean
    assert not lean_conv.attached(model.gen_a2b.get_layer("down1_conv"))  # stride 2: Keras' gradient

    @tf.function
    def grads(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(layer(images) ** 2)
        return tape.gradient(loss, [images, layer.kernel])

    graph = grads.get_concrete_function(tf.TensorSpec((1, 14, 14, 3))).graph
    types = {op.type for op in graph.get_operations()}
    assert ("Conv2DBackpropInput" in types) is not lean
    assert ("Conv2DBackpropFilter" in types) is not lean


@pytest.mark.onednn
def test_lean_conv_gradients_with_unknown_spatial_size_and_round_trip():
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, LeanConv2D(3, 3, name="conv")(inputs))
    x = tf.random.normal((2, 9, 7, 4))

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 4))])
    def grads(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(model(images) ** 2)
        return tape.gradient(loss, [images] + model.trainable_weights)

    lean = grads(x)
    reference = keras.layers.Conv2D(3, 3)
    reference.build(x.shape)
    reference.set_weights(model.get_layer("conv").get_weights())
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(reference(x) ** 2)
    expected = tape.gradient(loss, [x] + reference.trainable_weights)
    for got, want in zip(lean, expected):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4 * np.abs(want.numpy()).max())
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model.get_layer("conv")))
    assert type(restored) is keras.layers.Conv2D and restored.filters == 3 and not lean_conv.attached(restored)
