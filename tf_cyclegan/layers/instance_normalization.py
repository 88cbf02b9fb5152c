"""Instance normalisation with the activation that follows it fused in.

Instance normalisation is what Keras spells `GroupNormalization(groups=-1, center=False,
scale=False)` (tensorflow-addons, which had `InstanceNormalization`, reached end of life in
2024 and does not work with Keras 3). This layer computes the same numbers with the
activation fused in and a hand-written gradient, which keeps the training step's memory
and op count down: the networks run a normalisation after nearly every convolution.
"""

import keras
import tensorflow as tf

_ACTIVATIONS = (None, "relu", "leaky_relu")


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class InstanceNormalization(keras.layers.Layer):
    """Instance normalisation, optionally with a learned scale and offset, then a (leaky) ReLU.

    https://arxiv.org/abs/1607.08022. Each image's channels are normalised over height and
    width: `y = (x - mean) / sqrt(var + epsilon)`, the same numbers as
    `GroupNormalization(groups=-1, center=affine, scale=affine)`; with `affine=True` (PyTorch's
    `InstanceNorm2d(affine=True)`, which many CycleGANs other than the reference use) `y` is
    scaled by `gamma` and offset by `beta` per channel; then `activation`.

    Why not that layer and a ReLU: differentiated op by op, they keep about five full-size
    tensors per normalisation alive for the backward pass. The gradient here is written out,
    `dx = gamma * (g - mean(g) - y * mean(g * y)) / sqrt(var + epsilon)` with `g` the incoming
    gradient through the activation (and `dgamma = sum(g * y)`, `dbeta = sum(g)`), and needs
    only `y` and the per-channel scale. Statistics are computed in float32 under mixed precision.

    The gradient is attached with `tf.custom_gradient`; `custom_gradient` may be set on one
    layer object to another function of the same contract (the CPU speed-ups of
    `tf_cyclegan.speed` set one that records it straight onto the tape).

    Args:
        epsilon: float, default 1e-5. Added to the variance (the reference's value).
        activation: None, "relu" or "leaky_relu", default None. Applied after normalising.
        negative_slope: float, default 0.2. Slope below zero of "leaky_relu".
        affine: bool, default False (the reference's). Learn a per-channel scale and offset.

    Example:
    >>> InstanceNormalization(activation="relu")(keras.ops.ones((1, 4, 4, 8))).shape
    (1, 4, 4, 8)
    """

    # How the hand-written gradient is attached (not part of the config: a runtime choice).
    custom_gradient = staticmethod(tf.custom_gradient)

    def __init__(self, epsilon=1e-5, activation=None, negative_slope=0.2, affine=False, **kwargs):
        super().__init__(**kwargs)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}. Received: activation={activation!r}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive. Received: epsilon={epsilon!r}")
        self.epsilon = float(epsilon)
        self.activation = activation
        self.negative_slope = float(negative_slope)
        self.affine = bool(affine)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        if self.affine:
            channels = input_shape[-1]
            self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        if self.affine:
            return _instance_norm(inputs, self.epsilon, self._slope(), self.gamma, self.beta,
                                  custom_gradient=self.custom_gradient)
        return _instance_norm(inputs, self.epsilon, self._slope(), custom_gradient=self.custom_gradient)

    def _slope(self):
        return {None: None, "relu": 0.0, "leaky_relu": self.negative_slope}[self.activation]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {
            **super().get_config(), "epsilon": self.epsilon,
            "activation": self.activation, "negative_slope": self.negative_slope,
        }
        if self.affine:  # left out otherwise, so that files of the affine-free layer stay as they were
            config["affine"] = True
        return config


def _instance_norm(x, epsilon, slope, gamma=None, beta=None, custom_gradient=tf.custom_gradient):
    """Normalises `x` (NHWC) per image and channel, scales by `gamma` and offsets by `beta`
    (per channel; None: neither), then applies a leaky ReLU of `slope` (0: ReLU; None: no
    activation), with the backward pass written out and attached by `custom_gradient`."""
    axes = [1, 2]

    def normalise(x32):
        mean = tf.reduce_mean(x32, axis=axes, keepdims=True)
        variance = tf.reduce_mean(tf.math.squared_difference(x32, mean), axis=axes, keepdims=True)
        inv_std = tf.math.rsqrt(variance + epsilon)
        return (x32 - mean) * inv_std, inv_std

    def activate(z):
        if slope is None:
            return z
        return tf.nn.relu(z) if slope == 0 else tf.nn.leaky_relu(z, alpha=slope)

    def through_activation(upstream, features):
        g = tf.cast(upstream, tf.float32)
        if slope == 0:
            return tf.raw_ops.ReluGrad(gradients=g, features=features)
        if slope is not None:
            return tf.raw_ops.LeakyReluGrad(gradients=g, features=features, alpha=slope)
        return g

    def input_gradient(g, y32, inv_std):
        g_mean = tf.reduce_mean(g, axis=axes, keepdims=True)
        gy_mean = tf.reduce_mean(g * y32, axis=axes, keepdims=True)
        return (g - g_mean - y32 * gy_mean) * inv_std

    if gamma is None:
        @custom_gradient
        def forward(x):
            y32, inv_std = normalise(tf.cast(x, tf.float32))
            y = tf.cast(y32, x.dtype)

            def backward(upstream):
                y32 = tf.cast(y, tf.float32)
                return tf.cast(input_gradient(through_activation(upstream, y32), y32, inv_std), x.dtype)

            return activate(y), backward

        return forward(tf.convert_to_tensor(x))

    @custom_gradient
    def forward_affine(x, gamma, beta):
        y32, inv_std = normalise(tf.cast(x, tf.float32))
        y = tf.cast(y32, x.dtype)
        gamma32, beta32 = tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32)

        def backward(upstream):
            y32 = tf.cast(y, tf.float32)
            g = through_activation(upstream, y32 * gamma32 + beta32)
            x_grad = tf.cast(input_gradient(g * gamma32, y32, inv_std), x.dtype)
            gamma_grad = tf.reduce_sum(g * y32, axis=[0, 1, 2])
            beta_grad = tf.reduce_sum(g, axis=[0, 1, 2])
            return x_grad, tf.cast(gamma_grad, gamma.dtype), tf.cast(beta_grad, beta.dtype)

        return activate(tf.cast(y32 * gamma32 + beta32, x.dtype)), backward

    return forward_affine(*[tf.convert_to_tensor(t) for t in (x, gamma, beta)])
