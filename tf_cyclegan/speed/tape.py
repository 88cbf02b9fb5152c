"""Hand-written gradients recorded straight onto the gradient tapes (a CPU speed device).

`recorded_custom_gradient` has the contract of `tf.custom_gradient`. The layers whose
gradients are written out (`InstanceNormalization`, and the lean convolution of
`tf_cyclegan.speed.lean_conv`) use `tf.custom_gradient` on the plain path; the CPU
speed-ups give them this one instead (`InstanceNormalization.custom_gradient`).
"""

import functools

import tensorflow as tf


def tape_record_module():
    """TensorFlow's gradient-tape recording module, or None where this TensorFlow lacks it.

    The one use of private TensorFlow API here (`tensorflow.python.eager.record`, what
    `tf.custom_gradient` itself is built on). Missing public API: a way to record an
    operation with its gradient function on the active tapes without the `IdentityN`
    that `tf.custom_gradient` adds in graphs. Fallback: `tf.custom_gradient`.
    """
    try:
        from tensorflow.python.eager import record
    except ImportError:  # pragma: no cover - a TensorFlow that moved it
        return None
    needed = ("should_record_backprop", "stop_recording", "record_operation")
    return record if all(hasattr(record, name) for name in needed) else None


def recorded_custom_gradient(f):
    """`tf.custom_gradient` for a function of tensors, recorded straight onto the active tapes.

    Under a `tf.GradientTape` in a graph (the training step), `tf.custom_gradient` also routes
    the inputs and outputs through an `IdentityN` (so that `tf.gradients` can find the
    gradient), and the tape then builds zeros (`Fill` of a shape) for the gradients of the
    inputs' copies, which nothing uses: about 900 of the training step's ops, each traced and
    then pruned again by Grappler. When a tape watches the inputs, this records `f` on the
    tapes as `tf.custom_gradient` does eagerly, with `f`'s own ops unrecorded; otherwise it
    is `tf.custom_gradient` itself. One case loses the hand-written gradient: a tape
    outside a `tf.function` (TensorFlow differentiates the function's graph op by op) gets
    TensorFlow's standard gradients, the same values with more memory. `fit`, and any
    step that keeps its tape inside the `tf.function`, gets this one.
    """
    record = tape_record_module()
    if record is None:
        return tf.custom_gradient(f)

    @functools.wraps(f)
    def wrapped(*args):
        args = [tf.convert_to_tensor(a) for a in args]
        if not record.should_record_backprop(args):
            return tf.custom_gradient(f)(*args)
        with record.stop_recording():
            result, grad_fn = f(*args)

        def backward(upstream):
            grads = grad_fn(upstream)
            return list(grads) if isinstance(grads, (list, tuple)) else [grads]

        record.record_operation(f.__name__, [result], args, backward)
        return result

    return wrapped
