"""Adam with TensorFlow's fused update kernel: the same update as `keras.optimizers.Adam`.

Keras' Adam writes each variable's update as about fifteen small ops. CycleGAN has 116
trainable variables in its two optimizers, so those ops are a large share of what is
traced and graph-optimised before the first step. `ResourceApplyAdam` does the same
update (m, v, then var -= lr·sqrt(1-β2^t)/(1-β1^t) · m / (sqrt(v) + ε)) in one op.
"""

import keras
import tensorflow as tf


def _handle(variable):
    # Keras variables (slots) and the tf.Variables Keras passes to update_step both have one.
    return variable.handle


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

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), local_step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
