"""Keras' Adam update as TensorFlow's fused kernel, attached to a plain `keras.optimizers.Adam`.

A speed device (`tf_cyclegan.speed`). Keras' Adam writes each variable's update as about
fifteen small ops. CycleGAN has 116 trainable variables in its two optimizers, so those
ops are a large share of what is traced and graph-optimised before the first step.
`ResourceApplyAdam` does the same update (m, v, then var -= lr·sqrt(1-β2^t)/(1-β1^t) ·
m / (sqrt(v) + ε)) in one op, and the scalars it takes (β powers, learning rate, ε) are
computed once per `apply` and dtype, not once per variable. The same numbers up to
rounding.

The same holds for `PyTorchAdam` (CUT's), which differs only in where epsilon enters:
its update is `ResourceApplyAdam`'s with epsilon times sqrt(1-β2^t).

`attach(optimizer)` gives that one optimizer object its own `update_step` and `apply`
(instance attributes shadowing Keras' methods); its class, config, slot variables and
checkpoints stay Keras' Adam's. `detach` takes them away.
"""

import keras
import tensorflow as tf

from tf_cyclegan.models.pytorch_adam import PyTorchAdam

_ATTACHED = ("update_step", "apply")


def adam_slots(optimizer, variable):
    """`variable`'s first and second moments in Keras' Adam, or None where this Keras keeps
    them otherwise (then the fused update falls back to Keras' own, op by op).

    The one use of private Keras API here (`_get_variable_index`, `_momentums`,
    `_velocities`). Missing public API: a way to ask a Keras optimizer for a variable's
    slot variables (`tf.keras`'s `get_slot` has no Keras 3 counterpart).
    """
    try:
        index = optimizer._get_variable_index(variable)
        return optimizer._momentums[index], optimizer._velocities[index]
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def inner_adam(optimizer):
    """The Keras `Adam` or `PyTorchAdam` behind `optimizer` (unwrapping a `LossScaleOptimizer`),
    or None when it is another optimizer, uses amsgrad, or is a subclass with its own update."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    if (
        not isinstance(optimizer, keras.optimizers.Adam) or optimizer.amsgrad
        or type(optimizer).update_step not in (keras.optimizers.Adam.update_step, PyTorchAdam.update_step)
        or type(optimizer).apply is not keras.optimizers.Adam.apply
    ):
        return None
    return optimizer


def attach(optimizer):
    """Gives the Adam behind `optimizer` the fused update; returns whether it did."""
    adam = inner_adam(optimizer)
    if adam is None:
        return False
    detach(adam)
    keras_apply, keras_update_step = adam.apply, adam.update_step
    step_scalars = {}  # dtype -> this apply's scalars; filled while an apply runs

    def apply(grads, trainable_variables=None):
        # Every variable of one apply shares the step's scalars: computed by the first
        # update of each dtype, in the graph (or eagerly) where this apply runs.
        step_scalars.clear()
        try:
            return keras_apply(grads, trainable_variables)
        finally:
            step_scalars.clear()

    def scalars(dtype, learning_rate):
        if dtype not in step_scalars:
            local_step = tf.cast(adam.iterations + 1, dtype)
            beta_1, beta_2 = tf.cast(adam.beta_1, dtype), tf.cast(adam.beta_2, dtype)
            beta_2_power = tf.pow(beta_2, local_step)
            epsilon = tf.cast(adam.epsilon, dtype)
            if isinstance(adam, PyTorchAdam):  # epsilon on the bias-corrected root, in Keras' terms
                epsilon = epsilon * tf.sqrt(1 - beta_2_power)
            step_scalars[dtype] = (
                tf.pow(beta_1, local_step), beta_2_power, tf.cast(learning_rate, dtype),
                beta_1, beta_2, epsilon,
            )
        return step_scalars[dtype]

    def update_step(gradient, variable, learning_rate):
        slots = adam_slots(adam, variable)
        if slots is None:
            return keras_update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        beta1_power, beta2_power, lr, beta1, beta2, epsilon = scalars(dtype, learning_rate)
        momentum, velocity = slots
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=momentum.handle, v=velocity.handle,
            beta1_power=beta1_power, beta2_power=beta2_power, lr=lr,
            beta1=beta1, beta2=beta2, epsilon=epsilon,
            grad=tf.cast(gradient, dtype),
        )

    # Past the optimizer's attribute tracking: plain functions on this one object.
    object.__setattr__(adam, "apply", apply)
    object.__setattr__(adam, "update_step", update_step)
    return True


def detach(optimizer):
    """Puts back Keras' own update on the Adam behind `optimizer` (a no-op where none was attached)."""
    adam = inner_adam(optimizer)
    if adam is not None:
        for name in _ATTACHED:
            adam.__dict__.pop(name, None)


def attached(optimizer):
    adam = inner_adam(optimizer)
    return adam is not None and all(name in adam.__dict__ for name in _ATTACHED)
