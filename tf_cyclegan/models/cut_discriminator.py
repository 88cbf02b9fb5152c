"""CUT's PatchGAN discriminator: CycleGAN's, with each stride-2 convolution anti-aliased.

https://arxiv.org/abs/2007.15651, following the official code (`models/networks.py:
NLayerDiscriminator` with `no_antialias=False`): each stride-2 4x4 convolution becomes a
stride-1 4x4 convolution, its norm and LeakyReLU, then `BlurPool2D`.
"""

import keras

from tf_cyclegan.layers.antialiased_sampling import BlurPool2D
from tf_cyclegan.layers.instance_normalization import InstanceNormalization
from tf_cyclegan.models.initializers import xavier_initializer


def _padded_conv(x, filters, name):
    """A 4x4 convolution at stride 1 with zero padding 1, as the official `padding=1`."""
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(
        filters, 4, padding="valid", kernel_initializer=xavier_initializer(), bias_initializer="zeros",
        name=f"{name}_conv",
    )(x)


def build_cut_discriminator(filters=64, num_layers=3, channels=3, name="cut_discriminator"):
    """Builds CUT's discriminator, mapping an image to a grid of real/fake logits (float32).

    The first layer has no normalisation; the others instance norm (non-affine); LeakyReLU
    slope 0.2; Xavier normal weights with gain 0.02. With the defaults it has the official
    `basic` D's 2,764,737 parameters. A 32-px input gives 2x2 logits, 256 px 30x30.

    Args:
        filters: int, default 64. Filters of the first layer; doubled per layer, capped at 8x.
        num_layers: int, default 3. Downsampling layers (the first included).
        channels: int, default 3. Input image channels.
        name: str, model name.

    Example:
    >>> discriminator = build_cut_discriminator(filters=8)
    >>> discriminator(keras.ops.zeros((1, 64, 64, 3))).shape
    (1, 6, 6, 1)
    """
    if filters < 1 or num_layers < 1:
        raise ValueError(
            f"Need filters >= 1 and num_layers >= 1. "
            f"Received: filters={filters!r}, num_layers={num_layers!r}"
        )
    inputs = keras.Input(shape=(None, None, channels), name="image")
    x = _padded_conv(inputs, filters, name="layer0")
    x = keras.layers.LeakyReLU(0.2, name="layer0_lrelu")(x)
    x = BlurPool2D(3, name="layer0_blur")(x)
    for i in range(1, num_layers + 1):
        x = _padded_conv(x, filters * min(2**i, 8), name=f"layer{i}")
        x = InstanceNormalization(activation="leaky_relu", name=f"layer{i}_norm")(x)
        if i < num_layers:
            x = BlurPool2D(3, name=f"layer{i}_blur")(x)
    x = _padded_conv(x, 1, name="logits")
    outputs = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(x)
    return keras.Model(inputs, outputs, name=name)
