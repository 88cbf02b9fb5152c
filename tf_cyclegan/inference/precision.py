"""Translating in reduced precision: bfloat16 on CPUs that have it, float16 on GPUs.

A generator computes in a precision by giving each of its layers the matching Keras mixed
policy: weights stay float32 and are cast as they are read, the arithmetic runs in the
reduced type. Two things stay float32 whatever the precision, because an image's quality
depends on them: instance norm's mean and variance (`InstanceNormalization` computes them
in float32 under any policy) and the last layer, the tanh that makes the output, which
returns float32.

`auto` picks what runs fastest here without visible loss: float16 on a GPU, bfloat16 on a
CPU with bfloat16 instructions (AVX512-BF16 or AMX), float32 otherwise (bfloat16 emulated on
a CPU without them is slower than float32).
"""

import contextlib

import keras

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def check_precision(precision):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}. Received: precision={precision!r}")
    return precision


def resolve_precision(precision="auto"):
    """`precision` itself, or for "auto": float16 on a GPU, bfloat16 on a CPU with bfloat16
    instructions, else float32."""
    if check_precision(precision) != "auto":
        return precision
    from tf_cyclegan.training.precision import resolve_precision as resolve_training_policy

    # The same choice as training's `precision: auto`, named by what it computes in.
    return {policy: name for name, policy in _POLICIES.items()}[resolve_training_policy("auto")]


def _policies(model, precision):
    """{layer: policy name} making `model` compute in `precision`: the input and the last
    layer (the output's activation) stay float32."""
    reduced = _POLICIES[resolve_precision(precision)]
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
