import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_cyclegan import runtime
from tf_cyclegan.layers.instance_normalization import InstanceNormalization
from tf_cyclegan.layers.lean_conv import LeanConv2D
from tf_cyclegan.layers.reflection_padding import ReflectionPadding2D


def _conv_path(monkeypatch, lean):
    """Makes `LeanConv2D` take its lean gradients (`lean=True`: what a CPU running TensorFlow's
    own kernels takes) or Keras' (what a GPU, or a CPU running oneDNN, takes), on any machine."""
    monkeypatch.setattr(runtime, "has_gpu", lambda: not lean)
    monkeypatch.setattr(runtime, "onednn_enabled", lambda: False)


@pytest.fixture
def lean_conv(monkeypatch):
    _conv_path(monkeypatch, lean=True)


def test_reflection_padding_matches_numpy_reflect():
    x = np.arange(2 * 5 * 6 * 3, dtype="float32").reshape(2, 5, 6, 3)
    out = keras.ops.convert_to_numpy(ReflectionPadding2D(2)(x))
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect"))


def test_reflection_padding_shape_and_config_round_trip():
    layer = ReflectionPadding2D(3, name="pad")
    assert layer.compute_output_shape((None, None, 10, 3)) == (None, None, 16, 3)
    clone = ReflectionPadding2D.from_config(layer.get_config())
    assert clone.padding == 3 and clone.name == "pad"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, ReflectionPadding2D) and restored.padding == 3


@pytest.mark.parametrize("bad", [-1, 1.5, "1"])
def test_reflection_padding_rejects_bad_padding(bad):
    with pytest.raises(ValueError, match="padding"):
        ReflectionPadding2D(bad)


def test_instance_norm_normalises_each_sample_and_channel_without_parameters():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2, 8, 8, 4)) * [1, 5, 10, 0.1] + [3, -2, 0, 7]).astype("float32")
    layer = InstanceNormalization()
    out = keras.ops.convert_to_numpy(layer(x))
    assert layer.count_params() == 0
    expected = (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, expected, atol=1e-4)


def _group_norm_then(activation):
    norm = keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, center=False, scale=False)
    act = {
        None: lambda t: t,
        "relu": keras.layers.ReLU(),
        "leaky_relu": keras.layers.LeakyReLU(0.2),
    }[activation]
    return lambda t: act(norm(t))


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
def test_instance_norm_values_and_gradient_match_group_norm_and_activation(activation):
    # The hand-written backward pass against Keras' op-by-op differentiation of the same maths.
    rng = np.random.default_rng(1)
    x = tf.constant((rng.normal(size=(3, 6, 5, 4)) * [1, 5, 10, 0.1] + [3, -2, 0, 7]).astype("float32"))
    weights = tf.constant(rng.normal(size=x.shape).astype("float32"))
    results = []
    for fn in (_group_norm_then(activation), InstanceNormalization(activation=activation)):
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


# Filters: more than the 5 input channels, and fewer (the kernel gradient is computed the
# other way round then, as for the generator's last layer).
@pytest.mark.onednn
@pytest.mark.parametrize("kernel_size, strides, batch, filters", [
    (3, 1, 1, 6), (7, 1, 2, 6), (4, 1, 3, 6), (3, 2, 2, 6), (3, 1, 1, 2), (7, 1, 3, 3), (4, 1, 2, 1),
])
def test_lean_conv_matches_keras_conv_values_and_gradients(kernel_size, strides, batch, filters, lean_conv):
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


@pytest.mark.parametrize("gpu, onednn", [(False, False), (False, True), (True, False)])
def test_lean_gradients_only_where_tensorflow_runs_its_own_cpu_kernels(monkeypatch, gpu, onednn):
    # With a GPU (cuDNN), or under oneDNN's CPU kernels, TensorFlow's gradients are the better choice.
    monkeypatch.setattr(runtime, "has_gpu", lambda: gpu)
    monkeypatch.setattr(runtime, "onednn_enabled", lambda: onednn)
    keras_gradients = gpu or onednn
    layer = LeanConv2D(4, 3)
    layer.build((1, 8, 8, 3))

    @tf.function
    def grads(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(layer(images) ** 2)
        return tape.gradient(loss, [images, layer.kernel])

    graph = grads.get_concrete_function(tf.TensorSpec((1, 8, 8, 3))).graph
    types = {op.type for op in graph.get_operations()}
    assert ("Conv2DBackpropInput" in types) == keras_gradients
    assert ("Conv2DBackpropFilter" in types) == keras_gradients


@pytest.mark.onednn
def test_lean_conv_gradients_with_unknown_spatial_size_and_round_trip(lean_conv):
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
    assert type(restored) is LeanConv2D and restored.filters == 3


def _norm_conv_stack(reference):
    """Two convolutions, each followed by instance norm + ReLU: ours, or Keras' layers."""
    conv_class = keras.layers.Conv2D if reference else LeanConv2D
    layers = []
    for name in ("a", "b"):
        layers.append(conv_class(4, 3, name=f"conv_{name}"))
        layers.append(_group_norm_then("relu") if reference else InstanceNormalization(activation="relu"))

    def run(x):
        for layer in layers:
            x = layer(x)
        return x

    run(tf.zeros((1, 9, 9, 3)))
    return run, [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]


def _gradients(run, variables, x, how):
    """d sum(sin(run(x))) / d [x] + variables, differentiated `how`."""

    def loss_and_grads(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(tf.sin(run(images)))
        return tape.gradient(loss, [images] + variables)

    if how == "eager":
        return loss_and_grads(x)
    if how == "tape in tf.function":
        return tf.function(loss_and_grads)(x)
    forward = tf.function(lambda images: tf.reduce_sum(tf.sin(run(images))))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = forward(x)
    return tape.gradient(loss, [x] + variables)


@pytest.mark.onednn
@pytest.mark.parametrize("lean", [True, False])
@pytest.mark.parametrize("how", ["eager", "tape in tf.function", "tape outside tf.function"])
def test_custom_gradients_agree_however_they_are_differentiated(how, lean, monkeypatch):
    # Eagerly and inside a traced function the hand-written gradients are recorded on the
    # tape; with the tape outside, TensorFlow differentiates the function's graph op by op.
    # All must match Keras' own layers differentiated op by op, with either convolution path.
    _conv_path(monkeypatch, lean)
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(2, 9, 9, 3)).astype("float32"))
    results = []
    for reference in (True, False):
        run, convs = _norm_conv_stack(reference)
        if not results:
            weights = [[rng.normal(size=w.shape).astype("float32") for w in conv.get_weights()] for conv in convs]
        for conv, w in zip(convs, weights):
            conv.set_weights(w)
        variables = [v for conv in convs for v in conv.trainable_variables]
        results.append([g.numpy() for g in _gradients(run, variables, x, how)])
    scale = max(np.abs(g).max() for g in results[0])
    assert scale > 0.1
    for want, got, what in zip(results[0], results[1], ("input", "kernel a", "bias a", "kernel b", "bias b")):
        # (A bias before instance norm has a gradient of exactly zero, up to rounding.)
        np.testing.assert_allclose(got, want, atol=1e-5 * scale, err_msg=what)


@pytest.mark.parametrize("lean", [True, False])
def test_traced_gradient_records_no_extra_ops(lean, monkeypatch):
    # Under a tape in a traced function: no IdentityN and no zeros (Fill) for the custom gradients.
    _conv_path(monkeypatch, lean)
    run, convs = _norm_conv_stack(reference=False)
    variables = [v for conv in convs for v in conv.trainable_variables]

    def step(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(run(images))
        return tape.gradient(loss, [images] + variables)

    graph = tf.function(step).get_concrete_function(tf.TensorSpec((2, 9, 9, 3))).graph
    types = [op.type for op in graph.get_operations()]
    assert "IdentityN" not in types and "Fill" not in types
    # Forward, then each backward's two convolutions (lean), or TensorFlow's two gradient ops.
    assert types.count("Conv2D") == (2 + 2 * 2 if lean else 2)
    assert types.count("Conv2DBackpropInput") + types.count("Conv2DBackpropFilter") == (0 if lean else 2 * 2)
