"""Reflection padding: Keras has none, and the ResNet generator pads with it before every
3x3 and 7x7 convolution (zero padding there leaves visible border artefacts)."""

import keras


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
