"""Small layers the CycleGAN networks need and Keras does not ship.

Keras has no reflection padding layer, and instance normalisation is spelled
`GroupNormalization(groups=-1)` (tensorflow-addons, which had `InstanceNormalization`,
reached end of life in 2024 and does not work with Keras 3).
"""

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


def instance_norm(name=None):
    """Instance normalisation as in the reference: per sample and channel, no affine, eps 1e-5."""
    return keras.layers.GroupNormalization(
        groups=-1, epsilon=1e-5, center=False, scale=False, name=name
    )


def conv_init():
    """Weights drawn from N(0, 0.02), the paper's initialisation (biases start at zero)."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)
