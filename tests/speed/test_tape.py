import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import group_norm_then

from tf_cyclegan.layers.instance_normalization import InstanceNormalization
from tf_cyclegan.speed import lean_conv, tape


def _norm_conv_stack(reference, lean=False, recorded=True):
    """Two convolutions, each followed by instance norm + ReLU: Keras' layers op by op
    (`reference`), or ours with the lean convolution gradient and the tape recording attached."""
    layers = []
    for name in ("a", "b"):
        conv = keras.layers.Conv2D(4, 3, name=f"conv_{name}")
        if lean and not reference:
            lean_conv.attach(conv)
        layers.append(conv)
        norm = InstanceNormalization(activation="relu")
        if recorded:
            norm.custom_gradient = tape.recorded_custom_gradient
        layers.append(group_norm_then("relu") if reference else norm)

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
@pytest.mark.parametrize("lean, recorded", [(True, True), (False, True), (False, False)])
@pytest.mark.parametrize("how", ["eager", "tape in tf.function", "tape outside tf.function"])
def test_custom_gradients_agree_however_they_are_differentiated(how, lean, recorded):
    # Eagerly and inside a traced function the hand-written gradients are recorded on the
    # tape; with the tape outside, TensorFlow differentiates the function's graph op by op.
    # All must match Keras' own layers differentiated op by op, with either convolution path,
    # attached by the tape recording or by `tf.custom_gradient` (the plain path).
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(2, 9, 9, 3)).astype("float32"))
    results = []
    for reference in (True, False):
        run, convs = _norm_conv_stack(reference, lean, recorded)
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
def test_traced_gradient_records_no_extra_ops(lean):
    # Under a tape in a traced function: no IdentityN and no zeros (Fill) for the custom gradients.
    run, convs = _norm_conv_stack(reference=False, lean=lean)
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


def test_the_tape_module_is_found_in_this_tensorflow():
    # Pins the private TensorFlow module the recording needs: a TensorFlow that moves it fails here.
    assert tape.tape_record_module() is not None
