import functools

import keras
import numpy as np
import tensorflow as tf

from tf_cyclegan.speed import fused_adam


def FusedAdam(*args, **kwargs):  # noqa: N802 - reads as the class it once was
    """A plain `keras.optimizers.Adam` with the fused update attached."""
    optimizer = keras.optimizers.Adam(*args, **kwargs)
    assert fused_adam.attach(optimizer)
    return optimizer


def _train(optimizer, start, gradients):
    variable = keras.Variable(start)
    optimizer.build([variable])

    @tf.function
    def step(gradient):
        optimizer.apply_gradients([(gradient, variable)])

    for gradient in gradients:
        step(tf.constant(gradient))
    return np.asarray(variable)


def test_fused_adam_makes_the_same_updates_as_keras_adam():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(6, 4)).astype("float32")
    gradients = [rng.normal(size=(6, 4)).astype("float32") * scale for scale in (1.0, 0.1, 3.0, 1e-3, 1.0)]
    expected = _train(keras.optimizers.Adam(0.01, beta_1=0.5), start, gradients)
    actual = _train(FusedAdam(0.01, beta_1=0.5), start, gradients)
    assert np.abs(expected - start).max() > 0.01
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)


def _apply(optimizer, variables, grads):
    optimizer.apply_gradients(zip(grads, variables))


def test_fused_adam_matches_keras_adam_on_several_variables_in_graph_and_eagerly():
    # The step's scalars are computed once per apply and shared by every variable.
    rng = np.random.default_rng(1)
    starts = [rng.normal(size=shape).astype("float32") for shape in ((3, 3, 2, 4), (4,), (5, 2))]
    gradients = [[rng.normal(size=start.shape).astype("float32") for start in starts] for _ in range(4)]
    results = {}
    for name, make in (("keras", keras.optimizers.Adam), ("fused", FusedAdam)):
        for compiled in (True, False):
            optimizer = make(0.01, beta_1=0.5)
            variables = [keras.Variable(start) for start in starts]
            optimizer.build(variables)
            step = functools.partial(_apply, optimizer, variables)
            step = tf.function(step) if compiled else step
            for grads in gradients:
                step([tf.constant(g) for g in grads])
            results[name, compiled] = [np.asarray(v) for v in variables]
    for compiled in (True, False):
        for expected, actual, start in zip(results["keras", compiled], results["fused", compiled], starts):
            assert np.abs(expected - start).max() > 0.01
            np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)


def test_the_fused_update_is_one_op_per_variable_and_detaches():
    variables = [keras.Variable(tf.ones((2, 2))), keras.Variable(tf.ones((3,)))]
    optimizer = FusedAdam(0.1)
    optimizer.build(variables)
    grads = [tf.ones((2, 2)), tf.ones((3,))]

    def op_types():
        step = tf.function(functools.partial(_apply, optimizer, variables))
        return [op.type for op in step.get_concrete_function(grads).graph.get_operations()]

    assert op_types().count("ResourceApplyAdam") == 2 and fused_adam.attached(optimizer)
    fused_adam.detach(optimizer)
    assert "ResourceApplyAdam" not in op_types() and not fused_adam.attached(optimizer)


def test_attaching_changes_neither_class_nor_config_and_skips_what_it_cannot_fuse():
    optimizer = FusedAdam(3e-4, beta_1=0.5)
    assert type(optimizer) is keras.optimizers.Adam
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(optimizer))
    assert type(restored) is keras.optimizers.Adam and restored.beta_1 == 0.5
    assert not fused_adam.attached(restored)
    for other in (keras.optimizers.Adam(amsgrad=True), keras.optimizers.SGD()):
        assert fused_adam.attach(other) is False and "update_step" not in other.__dict__
    scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
    assert fused_adam.attach(scaled) and fused_adam.attached(scaled.inner_optimizer)


def test_fused_adam_falls_back_to_keras_update_where_the_slots_are_not_where_it_looks(monkeypatch):
    # A Keras that keeps Adam's moments elsewhere: the same numbers, by Keras' own update.
    monkeypatch.setattr(fused_adam, "adam_slots", lambda optimizer, variable: None)
    rng = np.random.default_rng(2)
    start = rng.normal(size=(3, 2)).astype("float32")
    gradients = [rng.normal(size=(3, 2)).astype("float32") for _ in range(3)]
    expected = _train(keras.optimizers.Adam(0.01, beta_1=0.5), start, gradients)
    np.testing.assert_allclose(_train(FusedAdam(0.01, beta_1=0.5), start, gradients), expected, rtol=0, atol=1e-6)
    variables = [keras.Variable(start)]
    optimizer = FusedAdam(0.01)
    optimizer.build(variables)
    step = tf.function(functools.partial(_apply, optimizer, variables))
    types = [op.type for op in step.get_concrete_function([tf.ones((3, 2))]).graph.get_operations()]
    assert "ResourceApplyAdam" not in types  # Keras' update ran, op by op


def test_the_slots_are_found_in_this_keras():
    # Pins the private Keras names `adam_slots` reads: a Keras that renames them fails here.
    optimizer = FusedAdam()
    variable = keras.Variable(np.zeros((2, 2), "float32"))
    optimizer.build([variable])
    momentum, velocity = fused_adam.adam_slots(optimizer, variable)
    assert momentum.shape == velocity.shape == (2, 2) and momentum is not velocity
