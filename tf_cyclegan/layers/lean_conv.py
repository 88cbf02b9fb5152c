"""`LeanConv2D`: Keras' convolution whose stride-1 "valid" gradients take little scratch memory."""

import keras
import tensorflow as tf

from tf_cyclegan import runtime
from tf_cyclegan.layers.custom_gradient import custom_gradient


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class LeanConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose stride-1 "valid" gradients are computed as forward convolutions.

    The same weights and forward pass as `keras.layers.Conv2D`. What differs is the backward
    pass of stride-1, undilated, ungrouped, channels-last, "valid" convolutions (the
    generator's reflection-padded ones, the discriminator's last two): TensorFlow's own CPU
    kernels for the input and filter gradients (Eigen) take a scratch buffer of up to several
    hundred megabytes per call (`benchmarks/conv_grad_memory.py`); written as forward
    convolutions, `dx = conv(pad(dy), flipped kernel)` and `dkernel = conv(x as [in, H, W,
    batch], dy as [h, w, batch, out])` (or the other way round when `out < in`, see
    `_valid_conv_kernel_grad`), they need a fraction of that at the same speed
    (docs/performance.md). Every other configuration, a machine with a GPU (cuDNN's gradients
    need no such help), and TensorFlow running oneDNN's CPU kernels (whose gradients need
    little scratch, and which run the rewritten kernel gradient's shapes slowly) use Keras'
    convolution unchanged.

    Args: those of `keras.layers.Conv2D`.

    Example:
    >>> LeanConv2D(8, 3)(keras.ops.zeros((1, 10, 10, 4))).shape
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


def _valid_conv(x, kernel):
    """Stride-1 "valid" NHWC convolution whose gradients are computed as forward convolutions."""

    @custom_gradient
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
    image: the channels of the other become the convolution's output channels, and
    convolutions to few output channels run far below the others' rate. So the image is `x`
    (channels as the batch) unless the layer has fewer output than input channels (a
    generator's last layer, 64 to 3; the discriminator's, 512 to 1): then it is the upstream
    gradient, padded and correlated with `x` the other way round, which flips the result.
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
