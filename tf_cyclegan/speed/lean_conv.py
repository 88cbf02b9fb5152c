"""The lean convolution gradient: a stride-1 "valid" `Conv2D`'s gradients as forward convolutions.

A CPU speed device (`tf_cyclegan.speed`). TensorFlow's own CPU kernels (Eigen) for a
convolution's input and filter gradients take a scratch buffer of up to several hundred
megabytes per call (`benchmarks/conv_grad_memory.py`); written as forward convolutions,
`dx = conv(pad(dy), flipped kernel)` and `dkernel = conv(x as [in, H, W, batch], dy as
[h, w, batch, out])` (or the other way round when `out < in`, see `_valid_conv_kernel_grad`),
they need a fraction of that at the same speed (docs/performance.md). oneDNN's gradient
kernels need little scratch and run the rewritten kernel gradient's shapes slowly, and
cuDNN needs no such help, so `tf_cyclegan.speed` attaches this only where TensorFlow runs
its own CPU kernels.

It attaches to a plain `keras.layers.Conv2D` without changing its class, config or
weights: `attach(layer)` gives that one layer object its own `convolution_op` (the method
Keras' `Conv2D.call` computes the convolution with; the forward numbers are the same),
`detach(layer)` takes it away. A saved model names `Conv2D` either way.
"""

import keras
import tensorflow as tf

from tf_cyclegan.speed.tape import recorded_custom_gradient


def applies_to(layer):
    """Whether `layer` is a convolution this gradient serves: a `keras.layers.Conv2D` (or a
    subclass that keeps its convolution) of stride 1, undilated, ungrouped, channels-last,
    "valid" (the generator's reflection-padded convolutions, the discriminator's last two)."""
    return (
        isinstance(layer, keras.layers.Conv2D)
        and type(layer).convolution_op is keras.layers.Conv2D.convolution_op
        and layer.padding == "valid" and tuple(layer.strides) == (1, 1)
        and tuple(layer.dilation_rate) == (1, 1) and layer.groups == 1
        and layer.data_format == "channels_last"
    )


def attach(layer):
    """Gives `layer` (see `applies_to`) the lean gradient; returns whether it did."""
    if not applies_to(layer):
        return False

    def convolution_op(inputs, kernel):
        return _valid_conv(inputs, tf.convert_to_tensor(kernel))

    # Set past Keras' attribute tracking: an instance attribute shadowing the method, for
    # this object only; nothing in get_config or the weights changes.
    object.__setattr__(layer, "convolution_op", convolution_op)
    return True


def detach(layer):
    """Puts back Keras' own `convolution_op` on `layer` (a no-op where none was attached)."""
    layer.__dict__.pop("convolution_op", None)


def attached(layer):
    return "convolution_op" in layer.__dict__


def _valid_conv(x, kernel):
    """Stride-1 "valid" NHWC convolution whose gradients are computed as forward convolutions."""

    @recorded_custom_gradient
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
