"""`custom_gradient`: a hand-written backward pass, recorded straight onto the gradient tapes.

Shared by the layers whose gradients are written out (instance normalisation and the
stride-1 "valid" convolution).
"""

import functools

import tensorflow as tf

try:  # the gradient-tape API that `tf.custom_gradient` itself is built on
    from tensorflow.python.eager import record as _tape_record
except ImportError:  # pragma: no cover - a TensorFlow that moved it; `tf.custom_gradient` does the same
    _tape_record = None


def custom_gradient(f):
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
    @functools.wraps(f)
    def wrapped(*args):
        args = [tf.convert_to_tensor(a) for a in args]
        if _tape_record is None or not _tape_record.should_record_backprop(args):
            return tf.custom_gradient(f)(*args)
        with _tape_record.stop_recording():
            result, grad_fn = f(*args)

        def backward(upstream):
            grads = grad_fn(upstream)
            return list(grads) if isinstance(grads, (list, tuple)) else [grads]

        _tape_record.record_operation(f.__name__, [result], args, backward)
        return result

    return wrapped
