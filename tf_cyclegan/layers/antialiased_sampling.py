"""Anti-aliased resampling by 2, as CUT's generator does it (Park et al. 2020, after Zhang,
"Making Convolutional Networks Shift-Invariant Again", 2019): down, blur then keep every second
pixel (`BlurPool2D`); up, zeros between the pixels then a blur (`BlurUpSampling2D`). Neither
has weights."""

import keras
import numpy as np
import tensorflow as tf

# The binomial filters by size: [1, 2, 1] is CUT's default for downsampling.
_BINOMIAL = {2: (1.0, 1.0), 3: (1.0, 2.0, 1.0), 4: (1.0, 3.0, 3.0, 1.0), 5: (1.0, 4.0, 6.0, 4.0, 1.0)}


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class BlurPool2D(keras.layers.Layer):
    """Halves the height and width: a fixed binomial blur of each channel on its own, sampled at
    stride 2, after reflection padding.

    A plain stride-2 convolution samples without low-pass filtering first, so detail finer than
    two pixels aliases into patterns that move when the input shifts by one pixel; blurring
    first removes most of it. No weights: the filter is fixed.

    Args:
        filter_size: int in 2..5, default 3 (`[1, 2, 1]`, CUT's). The binomial filter's taps.

    Example:
    >>> BlurPool2D()(keras.ops.zeros((1, 8, 6, 3))).shape
    (1, 4, 3, 3)
    """

    def __init__(self, filter_size=3, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(filter_size, int) or isinstance(filter_size, bool) or filter_size not in _BINOMIAL:
            raise ValueError(f"filter_size must be one of {sorted(_BINOMIAL)}. Received: filter_size={filter_size!r}")
        self.filter_size = filter_size
        taps = np.asarray(_BINOMIAL[filter_size])
        self._filter = np.outer(taps, taps) / np.sum(taps) ** 2
        # CUT's padding: (size - 1) // 2 before, the rest after; with stride 2 an image of even
        # size keeps exactly half.
        self._pads = ((filter_size - 1) // 2, filter_size // 2)

    def call(self, inputs):
        channels = inputs.shape[-1]
        kernel = np.tile(self._filter[:, :, None, None], (1, 1, channels, 1))
        before, after = self._pads
        x = keras.ops.pad(inputs, [[0, 0], [before, after], [before, after], [0, 0]], mode="reflect")
        return keras.ops.depthwise_conv(x, keras.ops.cast(kernel, inputs.dtype), strides=2, padding="valid")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        half = lambda size: None if size is None else (size - 1) // 2 + 1  # noqa: E731
        return batch, half(height), half(width), channels

    def get_config(self):
        return {**super().get_config(), "filter_size": self.filter_size}


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class BlurUpSampling2D(keras.layers.Layer):
    """Doubles the height and width: the image with zeros between its pixels, edges replicated,
    blurred by `[1, 3, 3, 1]` on each axis (times 4, to keep the brightness): CUT's `Upsample`.

    That is exactly a bilinear resize by 2 with half-pixel centres: each new pixel is 3/4 of
    its nearest old pixel and 1/4 of the next nearest (the edge pixel itself at the borders),
    so it is computed as one, by TensorFlow's own resize kernel, whose gradient is one native
    op too (the same sums written with slices have gradients that are chains of copies). It
    traces with unknown sizes, compiles under XLA, and converts to TFLite (RESIZE_BILINEAR,
    half-pixel centres) and ONNX (Resize); it computes in float32, cast back to the layer's dtype.
    Every output pixel gets its value the same way, so no period-2 grid, unlike a stride-2
    transposed convolution.

    Example:
    >>> BlurUpSampling2D()(keras.ops.zeros((1, 3, 5, 2))).shape
    (1, 6, 10, 2)
    """

    def call(self, inputs):
        # In float32 and cast back: the resize returns float32 whatever it is given, and under
        # XLA its gradient does too, which a float16 graph cannot add to its other gradients.
        size = tf.shape(inputs)[1:3] * 2
        return tf.cast(tf.image.resize(tf.cast(inputs, tf.float32), size, method="bilinear"), inputs.dtype)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return batch, None if height is None else 2 * height, None if width is None else 2 * width, channels
