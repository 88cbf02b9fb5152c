"""Adam with TensorFlow's fused update kernel: the same update as `keras.optimizers.Adam`.

Keras' Adam writes each variable's update as about fifteen small ops. CycleGAN has 116
trainable variables in its two optimizers, so those ops are a large share of what is
traced and graph-optimised before the first step. `ResourceApplyAdam` does the same
update (m, v, then var -= lr·sqrt(1-β2^t)/(1-β1^t) · m / (sqrt(v) + ε)) in one op, and
the scalars it takes (β powers, learning rate, ε) are computed once per `apply` and
dtype, not once per variable.
"""

import keras
import tensorflow as tf


def _handle(variable):
    # Keras variables (slots) and the tf.Variables Keras passes to update_step both have one.
    return variable.handle


def _adam_slots(optimizer, variable):
    """`variable`'s first and second moments in Keras' Adam, or None where this Keras keeps
    them otherwise: the one place that reads Keras' private slot lists."""
    try:
        index = optimizer._get_variable_index(variable)
        return optimizer._momentums[index], optimizer._velocities[index]
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (without amsgrad) whose update is one fused op per variable.

    Same arguments, same slot variables (so checkpoints of either load into the other),
    same numbers up to float rounding.

    Example:
    >>> FusedAdam(2e-4, beta_1=0.5).beta_1
    0.5
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("FusedAdam does not implement amsgrad; use keras.optimizers.Adam(amsgrad=True)")
        self._step_scalars = None

    def apply(self, grads, trainable_variables=None):
        # Every variable of one apply shares the step's scalars: computed by the first
        # update of each dtype, in the graph (or eagerly) where this apply runs.
        self._step_scalars = {}
        try:
            return super().apply(grads, trainable_variables)
        finally:
            self._step_scalars = None

    def _all_reduce_sum_gradients(self, grads_and_vars):
        # Keras sums the gradients across replicas through the replica context. Outside any
        # `tf.distribute` strategy there is one replica and the sum is the gradient itself,
        # but the call still adds an Identity op per gradient (and an IdentityN) to the
        # traced step; skip it there. Under a strategy, Keras' all-reduce runs as always.
        if not tf.distribute.has_strategy():
            return list(grads_and_vars)
        return super()._all_reduce_sum_gradients(grads_and_vars)

    def _scalars(self, dtype, learning_rate):
        """(β1^t, β2^t, lr, β1, β2, ε) as `dtype` tensors for this step's update."""
        cache = self._step_scalars
        if cache is not None and dtype in cache:
            return cache[dtype]
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        scalars = (
            tf.pow(beta_1, local_step), tf.pow(beta_2, local_step), tf.cast(learning_rate, dtype),
            beta_1, beta_2, tf.cast(self.epsilon, dtype),
        )
        if cache is not None:
            cache[dtype] = scalars
        return scalars

    def update_step(self, gradient, variable, learning_rate):
        slots = _adam_slots(self, variable)
        if slots is None:  # Keras' own update, op by op
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        beta1_power, beta2_power, lr, beta1, beta2, epsilon = self._scalars(dtype, learning_rate)
        momentum, velocity = slots
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(momentum),
            v=_handle(velocity),
            beta1_power=beta1_power, beta2_power=beta2_power, lr=lr,
            beta1=beta1, beta2=beta2, epsilon=epsilon,
            grad=tf.cast(gradient, dtype),
        )
