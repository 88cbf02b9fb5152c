"""Small layers the CycleGAN networks need and Keras does not ship.

Keras has no reflection padding layer. Instance normalisation is what Keras spells
`GroupNormalization(groups=-1, center=False, scale=False)` (tensorflow-addons, which had
`InstanceNormalization`, reached end of life in 2024 and does not work with Keras 3);
`InstanceNormalization` here computes the same numbers with the activation that follows
it fused in and a hand-written gradient, which keeps the training step's memory and op
count down (the networks run a normalisation after nearly every convolution).
"""

import functools

import keras
import tensorflow as tf

from tf_cyclegan import runtime

try:  # the gradient-tape API that `tf.custom_gradient` itself is built on
    from tensorflow.python.eager import record as _tape_record
except ImportError:  # pragma: no cover - a TensorFlow that moved it; `tf.custom_gradient` does the same
    _tape_record = None


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads height and width by mirroring the image, without repeating the edge pixel.

    The reference implementation pads with reflection before every 3x3 and 7x7
    convolution of the generator; zero padding there produces visible border artefacts.

    Args:
        padding: int, default 1. Pixels added on each side of height and width.

    Example:
    >>> ReflectionPadding2D(3)(keras.ops.zeros((1, 8, 8, 3))).shape
    (1, 14, 14, 3)
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a non-negative int. Received: padding={padding!r}")
        self.padding = padding

    def call(self, inputs):
        p = self.padding
        return keras.ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        grow = 2 * self.padding
        return (
            batch,
            None if height is None else height + grow,
            None if width is None else width + grow,
            channels,
        )

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


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

    @_custom_gradient
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


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose gradients, for stride-1 "valid" convolutions, are forward convolutions.

    The same layer, weights and forward pass as `keras.layers.Conv2D`, and the same class
    name on purpose: Keras weight files address layers by class name, so weights saved
    from networks built with `keras.layers.Conv2D` load into these. What differs is
    the backward pass of stride-1, undilated, ungrouped, channels-last, "valid"
    convolutions (the generator's reflection-padded ones, the discriminator's last two):
    TensorFlow's CPU kernels for the input and filter gradients (Eigen) take a scratch
    buffer of up to several hundred megabytes per call (`benchmarks/conv_grad_memory.py`);
    written as forward convolutions, `dx = conv(pad(dy), flipped kernel)` and
    `dkernel = conv(x as [in, H, W, batch], dy as [h, w, batch, out])` (or the other way
    round when `out < in`, see `_valid_conv_kernel_grad`), they need a fraction of that
    and ran as fast or faster on this project's benchmark CPU. Other configurations, any
    machine with a GPU (whose cuDNN gradients need no such workaround), and TensorFlow
    running oneDNN's CPU kernels (`runtime.onednn_enabled`: their gradients need little
    scratch, and they run the rewritten kernel gradient's shapes, batch as channels, slowly)
    use Keras' convolution unchanged.

    Args: those of `keras.layers.Conv2D`.

    Example:
    >>> Conv2D(8, 3)(keras.ops.zeros((1, 10, 10, 4))).shape
    (1, 8, 8, 8)
    """

    def convolution_op(self, inputs, kernel):
        lean = (
            self.padding == "valid" and tuple(self.strides) == (1, 1) and tuple(self.dilation_rate) == (1, 1)
            and self.groups == 1 and self.data_format == "channels_last" and not runtime.has_gpu()
            and not runtime.onednn_enabled()
        )
        if not lean:
            return super().convolution_op(inputs, kernel)
        return _valid_conv(inputs, tf.convert_to_tensor(kernel))


def _custom_gradient(f):
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


def _valid_conv(x, kernel):
    """Stride-1 "valid" NHWC convolution whose gradients are computed as forward convolutions."""

    @_custom_gradient
    def forward(x, kernel):
        def backward(upstream):
            flipped = tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])
            x_grad = tf.nn.conv2d(tf.pad(upstream, _full_paddings(kernel.shape)), flipped, strides=1, padding="VALID")
            return x_grad, _valid_conv_kernel_grad(x, upstream, kernel.shape)

        return tf.nn.conv2d(x, kernel, strides=1, padding="VALID"), backward

    return forward(x, kernel)


def _valid_conv_kernel_grad(x, upstream, kernel_shape):
    """The gradient of a stride-1 "valid" NHWC convolution's kernel, as one forward convolution.

    `dkernel[i, j, c, o] = sum over n, h, w of x[n, h + i, w + j, c] * upstream[n, h, w, o]`:
    a correlation of the input with the upstream gradient, one output pixel per kernel tap,
    with the batch summed as the convolution's input channels. Either tensor can play the
    image: the channels of the other become the convolution's output channels, and oneDNN's
    kernels are fast only when those are many (convolutions to 3 output channels ran at a
    fifth to an eighth of the others' rate per multiply-add in the training step). So the
    image is `x` (channels as the batch) unless the layer has fewer output than input
    channels (a generator's last layer, 64 to 3; the discriminator's, 512 to 1): then it is
    the upstream gradient, padded and correlated with `x` the other way round, which flips
    the result.
    """
    _, _, in_channels, out_channels = kernel_shape
    to_hwno = [1, 2, 0, 3]
    if out_channels >= in_channels:
        kernel_grad = tf.nn.conv2d(
            tf.transpose(x, [3, 1, 2, 0]), tf.transpose(upstream, to_hwno), strides=1, padding="VALID"
        )
        return tf.transpose(kernel_grad, to_hwno)
    upstream_as_images = tf.pad(tf.transpose(upstream, [3, 1, 2, 0]), _full_paddings(kernel_shape))
    flipped_grad = tf.nn.conv2d(upstream_as_images, tf.transpose(x, to_hwno), strides=1, padding="VALID")
    return tf.transpose(tf.reverse(flipped_grad, axis=[1, 2]), [1, 2, 3, 0])


def _full_paddings(kernel_shape):
    """NHWC paddings of `kernel - 1` on each side of height and width: a "valid" correlation
    of the padded tensor with a `kernel_shape` kernel is the full one."""
    kernel_h, kernel_w = kernel_shape[0], kernel_shape[1]
    return [[0, 0], [kernel_h - 1, kernel_h - 1], [kernel_w - 1, kernel_w - 1], [0, 0]]


def instance_norm(name=None, activation=None):
    """Instance normalisation as in the reference (per image and channel, no affine, eps
    1e-5), followed by `activation` (None, "relu" or "leaky_relu" of slope 0.2)."""
    return InstanceNormalization(epsilon=1e-5, activation=activation, name=name)


def conv_init():
    """Weights drawn from N(0, 0.02), the paper's initialisation (biases start at zero)."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)
