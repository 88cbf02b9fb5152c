"""The ResNet generator of CycleGAN (Johnson et al. 2016, as used by Zhu et al. 2017).

https://arxiv.org/abs/1703.10593, appendix 7.2: c7s1-64, d128, d256, R256 x N,
u128, u64, c7s1-3.
"""

import keras

from tf_cyclegan.choices import ALIGNMENTS, UPSAMPLINGS  # what each means: tf_cyclegan/choices.py
from tf_cyclegan.layers.instance_normalization import InstanceNormalization
from tf_cyclegan.layers.reflection_padding import ReflectionPadding2D
from tf_cyclegan.models.initializers import paper_initializer


def _conv(filters, kernel_size, strides=1, use_bias=True, padding="valid", name=None):
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
        kernel_initializer=paper_initializer(), bias_initializer="zeros", name=name,
    )


def _residual_block(x, filters, norm, use_bias, name):
    """Two reflection-padded 3x3 convolutions with instance norm, added to the input."""
    shortcut = x
    x = ReflectionPadding2D(1, name=f"{name}_pad1")(x)
    x = _conv(filters, 3, use_bias=use_bias, name=f"{name}_conv1")(x)
    x = norm(activation="relu", name=f"{name}_norm1")(x)
    x = ReflectionPadding2D(1, name=f"{name}_pad2")(x)
    x = _conv(filters, 3, use_bias=use_bias, name=f"{name}_conv2")(x)
    x = norm(name=f"{name}_norm2")(x)
    return keras.layers.Add(name=f"{name}_add")([shortcut, x])


def _downsample(x, filters, alignment, use_bias, name):
    """A stride-2 3x3 convolution: half the height and width."""
    if alignment == "keras_same":
        return _conv(filters, 3, strides=2, use_bias=use_bias, padding="same", name=f"{name}_conv")(x)
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)  # 1 on every side, as PyTorch's padding=1
    return _conv(filters, 3, strides=2, use_bias=use_bias, name=f"{name}_conv")(x)


def _upsample(x, filters, alignment, upsampling, use_bias, name):
    """Twice the height and width: a stride-2 3x3 transposed convolution, or (`upsampling=
    "resize"`) a nearest-neighbour resize followed by a reflection-padded 3x3 convolution."""
    if upsampling == "resize":
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
        x = ReflectionPadding2D(1, name=f"{name}_pad")(x)
        return _conv(filters, 3, use_bias=use_bias, name=f"{name}_conv")(x)
    padding = "same" if alignment == "keras_same" else "valid"
    x = keras.layers.Conv2DTranspose(
        filters, 3, strides=2, padding=padding, use_bias=use_bias,
        kernel_initializer=paper_initializer(), name=f"{name}_conv",
    )(x)
    if alignment == "keras_same":
        return x
    # "valid" gives 2H + 1 rows, output row o from input row i and tap k at o = 2i + k;
    # PyTorch's padding=1, output_padding=1 puts it at o - 1 and keeps 2H rows.
    return keras.layers.Cropping2D(((1, 0), (1, 0)), name=f"{name}_crop")(x)


def build_resnet_generator(filters=64, num_residual_blocks=9, channels=3, name="resnet_generator",
                           alignment="reference", norm_affine=False, use_bias=True, upsampling="transpose"):
    """Builds the CycleGAN ResNet generator, mapping [-1, 1] images to [-1, 1] images.

    Input is `(None, None, channels)`: any height and width divisible by 4 (two stride-2
    downsamplings are undone by two stride-2 transposed convolutions). With the defaults
    it is the reference's `resnet_9blocks` exactly: 11,378,179 parameters, the same
    computation pixel for pixel.

    Args:
        filters: int, default 64. Filters of the first convolution; doubled at each downsampling.
        num_residual_blocks: int, default 9. 9 for 256 px images, 6 for 128 px (the paper's choice).
        channels: int, default 3. Image channels in and out.
        name: str, model name.
        alignment: "reference" (default) or "keras_same", see `ALIGNMENTS`.
        norm_affine: bool, default False (the reference's). Instance norms with a learned
            scale and offset, as PyTorch's `InstanceNorm2d(affine=True)`.
        use_bias: bool, default True (the reference's with instance norm). Biases on the
            convolutions before a normalisation (the last convolution always has one).
        upsampling: "transpose" (default, the reference's) or "resize", see `UPSAMPLINGS`.
            As many parameters either way, but a "resize" network's upsampling kernels are
            ordinary convolutions', so reference checkpoints load only into "transpose".
            `alignment` then concerns the downsamplings only.

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
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}. Received: alignment={alignment!r}")
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"upsampling must be one of {UPSAMPLINGS}. Received: upsampling={upsampling!r}")

    def norm(activation=None, name=None):
        return InstanceNormalization(activation=activation, affine=norm_affine, name=name)

    inputs = keras.Input(shape=(None, None, channels), name="image")
    x = ReflectionPadding2D(3, name="stem_pad")(inputs)
    x = _conv(filters, 7, use_bias=use_bias, name="stem_conv")(x)
    x = norm(activation="relu", name="stem_norm")(x)

    for i, mult in enumerate((2, 4)):
        x = _downsample(x, filters * mult, alignment, use_bias, name=f"down{i + 1}")
        x = norm(activation="relu", name=f"down{i + 1}_norm")(x)

    for i in range(num_residual_blocks):
        x = _residual_block(x, filters * 4, norm, use_bias, name=f"res{i + 1}")

    for i, mult in enumerate((2, 1)):
        x = _upsample(x, filters * mult, alignment, upsampling, use_bias, name=f"up{i + 1}")
        x = norm(activation="relu", name=f"up{i + 1}_norm")(x)

    x = ReflectionPadding2D(3, name="head_pad")(x)
    x = _conv(channels, 7, name="head_conv")(x)
    # tanh in float32 so mixed-precision outputs keep their full [-1, 1] resolution.
    outputs = keras.layers.Activation("tanh", dtype="float32", name="head_tanh")(x)
    return keras.Model(inputs, outputs, name=name)


def generator_alignment(generator):
    """The `ALIGNMENTS` entry a built ResNet generator follows (read from its first
    downsampling: "same" padding is "keras_same"), or None for another network."""
    try:
        conv = generator.get_layer("down1_conv")
    except ValueError:
        return None
    return "keras_same" if conv.padding == "same" else "reference"


def generator_upsampling(generator):
    """The `UPSAMPLINGS` entry a built ResNet generator uses (read from its first
    upsampling), or None for another network."""
    try:
        conv = generator.get_layer("up1_conv")
    except ValueError:
        return None
    return "transpose" if isinstance(conv, keras.layers.Conv2DTranspose) else "resize"
