"""The 70x70 PatchGAN discriminator (Isola et al. 2017), as used by CycleGAN.

https://arxiv.org/abs/1611.07004: C64-C128-C256-C512, 4x4 convolutions, one logit per
70x70 patch. Padding 1 on every convolution as in the reference, so a 256x256 input
gives 30x30 logits.
"""

import keras

from tf_cyclegan.layers.instance_normalization import InstanceNormalization
from tf_cyclegan.models.initializers import paper_initializer


def _padded_conv(x, filters, strides, name, use_bias=True):
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(
        filters, 4, strides=strides, padding="valid", use_bias=use_bias,
        kernel_initializer=paper_initializer(), bias_initializer="zeros", name=f"{name}_conv",
    )(x)


def build_patchgan_discriminator(filters=64, num_layers=3, channels=3, name="patchgan_discriminator",
                                 norm_affine=False, use_bias=True):
    """Builds the PatchGAN discriminator, mapping an image to a grid of real/fake logits.

    With the defaults it has exactly 2,764,737 parameters (the reference's `basic` D).
    The first layer has no normalisation; LeakyReLU slope 0.2; logits are float32.

    Args:
        filters: int, default 64. Filters of the first layer; doubled per layer, capped at 8x.
        num_layers: int, default 3. Stride-2 layers after the first; 3 gives 70x70 patches.
        channels: int, default 3. Input image channels.
        name: str, model name.
        norm_affine: bool, default False (the reference's). Instance norms with a learned
            scale and offset, as PyTorch's `InstanceNorm2d(affine=True)`.
        use_bias: bool, default True (the reference's with instance norm). Biases on the
            convolutions before a normalisation (the first and last always have one).

    Example:
    >>> disc_b = build_patchgan_discriminator(filters=8)
    >>> disc_b(keras.ops.zeros((1, 64, 64, 3))).shape
    (1, 6, 6, 1)
    """
    if filters < 1 or num_layers < 1:
        raise ValueError(
            f"Need filters >= 1 and num_layers >= 1. "
            f"Received: filters={filters!r}, num_layers={num_layers!r}"
        )
    inputs = keras.Input(shape=(None, None, channels), name="image")
    x = _padded_conv(inputs, filters, 2, name="layer0")
    x = keras.layers.LeakyReLU(0.2, name="layer0_lrelu")(x)
    mult = 1
    for i in range(1, num_layers + 1):
        mult = min(2**i, 8)
        strides = 2 if i < num_layers else 1
        x = _padded_conv(x, filters * mult, strides, name=f"layer{i}", use_bias=use_bias)
        x = InstanceNormalization(activation="leaky_relu", affine=norm_affine, name=f"layer{i}_norm")(x)
    x = _padded_conv(x, 1, 1, name="logits")
    outputs = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(x)
    return keras.Model(inputs, outputs, name=name)
