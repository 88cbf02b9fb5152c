"""The ResNet generator of CycleGAN (Johnson et al. 2016, as used by Zhu et al. 2017).

https://arxiv.org/abs/1703.10593, appendix 7.2: c7s1-64, d128, d256, R256 x N,
u128, u64, c7s1-3.
"""

import keras

from tf_cyclegan.layers.instance_normalization import InstanceNormalization
from tf_cyclegan.layers.lean_conv import LeanConv2D
from tf_cyclegan.layers.reflection_padding import ReflectionPadding2D
from tf_cyclegan.models.initializers import paper_initializer


def _conv(filters, kernel_size, strides=1, name=None):
    return LeanConv2D(
        filters, kernel_size, strides=strides, padding="valid",
        kernel_initializer=paper_initializer(), bias_initializer="zeros", name=name,
    )


def _residual_block(x, filters, name):
    """Two reflection-padded 3x3 convolutions with instance norm, added to the input."""
    shortcut = x
    x = ReflectionPadding2D(1, name=f"{name}_pad1")(x)
    x = _conv(filters, 3, name=f"{name}_conv1")(x)
    x = InstanceNormalization(activation="relu", name=f"{name}_norm1")(x)
    x = ReflectionPadding2D(1, name=f"{name}_pad2")(x)
    x = _conv(filters, 3, name=f"{name}_conv2")(x)
    x = InstanceNormalization(name=f"{name}_norm2")(x)
    return keras.layers.Add(name=f"{name}_add")([shortcut, x])


def build_resnet_generator(filters=64, num_residual_blocks=9, channels=3, name="resnet_generator"):
    """Builds the CycleGAN ResNet generator, mapping [-1, 1] images to [-1, 1] images.

    Input is `(None, None, channels)`: any height and width divisible by 4 (two stride-2
    downsamplings are undone by two stride-2 transposed convolutions). With the defaults
    it has exactly 11,378,179 parameters, as the reference's `resnet_9blocks`.

    Args:
        filters: int, default 64. Filters of the first convolution; doubled at each downsampling.
        num_residual_blocks: int, default 9. 9 for 256 px images, 6 for 128 px (the paper's choice).
        channels: int, default 3. Image channels in and out.
        name: str, model name.

    Example:
    >>> gen_a2b = build_resnet_generator(filters=8, num_residual_blocks=2)
    >>> gen_a2b(keras.ops.zeros((1, 32, 48, 3))).shape
    (1, 32, 48, 3)
    """
    if filters < 1 or num_residual_blocks < 0:
        raise ValueError(
            f"Need filters >= 1 and num_residual_blocks >= 0. "
            f"Received: filters={filters!r}, num_residual_blocks={num_residual_blocks!r}"
        )
    inputs = keras.Input(shape=(None, None, channels), name="image")
    x = ReflectionPadding2D(3, name="stem_pad")(inputs)
    x = _conv(filters, 7, name="stem_conv")(x)
    x = InstanceNormalization(activation="relu", name="stem_norm")(x)

    for i, mult in enumerate((2, 4)):
        x = LeanConv2D(
            filters * mult, 3, strides=2, padding="same",
            kernel_initializer=paper_initializer(), name=f"down{i + 1}_conv",
        )(x)
        x = InstanceNormalization(activation="relu", name=f"down{i + 1}_norm")(x)

    for i in range(num_residual_blocks):
        x = _residual_block(x, filters * 4, name=f"res{i + 1}")

    for i, mult in enumerate((2, 1)):
        x = keras.layers.Conv2DTranspose(
            filters * mult, 3, strides=2, padding="same",
            kernel_initializer=paper_initializer(), name=f"up{i + 1}_conv",
        )(x)
        x = InstanceNormalization(activation="relu", name=f"up{i + 1}_norm")(x)

    x = ReflectionPadding2D(3, name="head_pad")(x)
    x = _conv(channels, 7, name="head_conv")(x)
    # tanh in float32 so mixed-precision outputs keep their full [-1, 1] resolution.
    outputs = keras.layers.Activation("tanh", dtype="float32", name="head_tanh")(x)
    return keras.Model(inputs, outputs, name=name)
