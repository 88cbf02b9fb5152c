"""Instance normalisation with the activation that follows it fused in.

Instance normalisation is what Keras spells `GroupNormalization(groups=-1, center=False,
scale=False)` (tensorflow-addons, which had `InstanceNormalization`, reached end of life in
2024 and does not work with Keras 3). This layer computes the same numbers with the
activation fused in and a hand-written gradient, which keeps the training step's memory
and op count down: the networks run a normalisation after nearly every convolution.
"""

import keras
import tensorflow as tf

from tf_cyclegan.layers.custom_gradient import custom_gradient

_ACTIVATIONS = (None, "relu", "leaky_relu")


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class InstanceNormalization(keras.layers.Layer):
    """Instance normalisation (no affine parameters), optionally followed by a (leaky) ReLU.

    https://arxiv.org/abs/1607.08022. Each image's channels are normalised over height and
    width: `y = (x - mean) / sqrt(var + epsilon)`, the same numbers as
    `GroupNormalization(groups=-1, center=False, scale=False)`, then `activation`.

    Why not that layer and a ReLU: differentiated op by op, they keep about five
    full-size tensors per normalisation alive for the backward pass. The gradient here is
    written out, `dx = (g - mean(g) - y * mean(g * y)) / sqrt(var + epsilon)` with `g` the
    incoming gradient through the activation, and needs only `y` and the per-channel scale.
    Statistics are computed in float32 under mixed precision.

    Args:
        epsilon: float, default 1e-5. Added to the variance (the reference's value).
        activation: None, "relu" or "leaky_relu", default None. Applied after normalising.
        negative_slope: float, default 0.2. Slope below zero of "leaky_relu".

    Example:
    >>> InstanceNormalization(activation="relu")(keras.ops.ones((1, 4, 4, 8))).shape
    (1, 4, 4, 8)
    """

    def __init__(self, epsilon=1e-5, activation=None, negative_slope=0.2, **kwargs):
        super().__init__(**kwargs)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}. Received: activation={activation!r}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive. Received: epsilon={epsilon!r}")
        self.epsilon = float(epsilon)
        self.activation = activation
        self.negative_slope = float(negative_slope)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def call(self, inputs):
        return _instance_norm(inputs, self.epsilon, self._slope())

    def _slope(self):
        return {None: None, "relu": 0.0, "leaky_relu": self.negative_slope}[self.activation]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(), "epsilon": self.epsilon,
            "activation": self.activation, "negative_slope": self.negative_slope,
        }


def _instance_norm(x, epsilon, slope):
    """Normalises `x` (NHWC) per image and channel, then applies a leaky ReLU of `slope`
    (0: ReLU; None: no activation), with the backward pass written out."""

    @custom_gradient
    def forward(x):
        x32 = tf.cast(x, tf.float32)
        axes = [1, 2]
        mean = tf.reduce_mean(x32, axis=axes, keepdims=True)
        variance = tf.reduce_mean(tf.math.squared_difference(x32, mean), axis=axes, keepdims=True)
        inv_std = tf.math.rsqrt(variance + epsilon)
        y = tf.cast((x32 - mean) * inv_std, x.dtype)

        def backward(upstream):
            y32 = tf.cast(y, tf.float32)
            g = tf.cast(upstream, tf.float32)
            if slope == 0:
                g = tf.raw_ops.ReluGrad(gradients=g, features=y32)
            elif slope is not None:
                g = tf.raw_ops.LeakyReluGrad(gradients=g, features=y32, alpha=slope)
            g_mean = tf.reduce_mean(g, axis=axes, keepdims=True)
            gy_mean = tf.reduce_mean(g * y32, axis=axes, keepdims=True)
            return tf.cast((g - g_mean - y32 * gy_mean) * inv_std, x.dtype)

        if slope is None:
            out = y
        elif slope == 0:
            out = tf.nn.relu(y)
        else:
            out = tf.nn.leaky_relu(y, alpha=slope)
        return out, backward

    return forward(x)
