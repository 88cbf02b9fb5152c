"""Translating in reduced precision: bfloat16 on CPUs that have it, float16 on GPUs.

A generator computes in a precision by giving each of its layers the matching Keras mixed
policy: weights stay float32 and are cast as they are read, the arithmetic runs in the
reduced type. Two things stay float32 whatever the precision, because an image's quality
depends on them: instance norm's mean and variance (`InstanceNormalization` computes them
in float32 under any policy) and the last layer, the tanh that makes the output, which
returns float32.

The words, and what `auto` picks, are `tf_cyclegan.precision`'s, as for training.
"""

import contextlib

import keras

from tf_cyclegan.precision import keras_policy


def savedmodel_signature(precision):
    """The name of an exported SavedModel's float signature computing in `precision` (not "auto")."""
    return "translate_float" if precision == "float32" else f"translate_float_{precision}"


def _policies(model, precision):
    """{layer: policy name} making `model` compute in `precision`: the input and the last
    layer (the output's activation) stay float32."""
    reduced = keras_policy(precision)
    last = model.layers[-1]
    return {layer: "float32" if layer is last or isinstance(layer, keras.layers.InputLayer) else reduced
            for layer in model.layers}


@contextlib.contextmanager
def computing_in(model, precision):
    """Within the block, `model` (a functional model) computes in `precision`; its own
    policies are put back after. The weights are not copied: what is traced inside (an
    export's signature) reads the very variables of the float32 computation."""
    before = {layer: layer.dtype_policy for layer in model.layers}
    try:
        for layer, policy in _policies(model, precision).items():
            layer.dtype_policy = policy
        yield model
    finally:
        for layer, policy in before.items():
            layer.dtype_policy = policy


def with_precision(model, precision):
    """`model` itself if it already computes in `precision`, else a copy with the same weights
    that does (see the module docstring for what stays float32)."""
    wanted = _policies(model, precision)
    if all(layer.dtype_policy.name == policy for layer, policy in wanted.items()):
        return model
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for layer, policy in _policies(copy, precision).items():
        layer.dtype_policy = policy
    return copy
