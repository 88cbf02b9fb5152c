"""CUT's ResNet generator, and the encoder features its PatchNCE loss compares.

https://arxiv.org/abs/2007.15651 (Park et al., ECCV 2020), following the official code
(taesungp/contrastive-unpaired-translation, `models/networks.py:ResnetGenerator` with its
defaults for CUT: anti-aliased sampling both ways, non-affine instance norm, no dropout,
reflection padding). It is CycleGAN's generator with the two stride-2 convolutions replaced
by a stride-1 convolution, norm, ReLU and a blur-then-subsample (`BlurPool2D`), and the two
transposed convolutions by a blurred upsampling (`BlurUpSampling2D`) and a convolution.
"""

import keras

from tf_cyclegan.layers.antialiased_sampling import BlurPool2D, BlurUpSampling2D
from tf_cyclegan.layers.instance_normalization import InstanceNormalization
from tf_cyclegan.layers.reflection_padding import ReflectionPadding2D
from tf_cyclegan.models.initializers import xavier_initializer

# The official `--nce_layers 0,4,8,12,16` index the generator's nn.Sequential; by our names
# they are: the reflection-padded input (0), the first and the second downsampling's stride-1
# convolution before its norm (4, 8; the second runs on the half-size image), and the
# outputs of residual blocks 1 and 5 (12, 16).
NCE_LAYERS = ("stem_pad", "down1_conv", "down2_conv", "res1_add", "res5_add")


def _conv(filters, kernel_size, name, padding="valid", use_bias=True):
    return keras.layers.Conv2D(
        filters, kernel_size, padding=padding, use_bias=use_bias,
        kernel_initializer=xavier_initializer(), bias_initializer="zeros", name=name,
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


def build_cut_generator(filters=64, num_residual_blocks=9, channels=3, name="cut_generator"):
    """Builds CUT's generator, mapping [-1, 1] images to [-1, 1] images.

    Input is `(None, None, channels)`: any height and width divisible by 4. Down: a 3x3
    convolution at stride 1 (zero padding 1), instance norm, ReLU, then `BlurPool2D`
    ([1, 2, 1] blur, stride 2, reflection padding). Up: `BlurUpSampling2D` ([1, 3, 3, 1]
    blur, edges replicated), then a 3x3 convolution, instance norm, ReLU. Weights are Xavier
    normal with gain 0.02, biases zero; every convolution has a bias (the official choice
    with instance norm). With the defaults it has the official `resnet_9blocks` G's
    11,378,179 parameters.

    Args:
        filters: int, default 64. Filters of the first convolution; doubled at each downsampling.
        num_residual_blocks: int, default 9. The official CUT uses 9 at 256 px.
        channels: int, default 3. Image channels in and out.
        name: str, model name.

    Example:
    >>> generator = build_cut_generator(filters=8, num_residual_blocks=2)
    >>> generator(keras.ops.zeros((1, 32, 48, 3))).shape
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
        x = _conv(filters * mult, 3, padding="same", name=f"down{i + 1}_conv")(x)
        x = InstanceNormalization(activation="relu", name=f"down{i + 1}_norm")(x)
        x = BlurPool2D(3, name=f"down{i + 1}_blur")(x)

    for i in range(num_residual_blocks):
        x = _residual_block(x, filters * 4, name=f"res{i + 1}")

    for i, mult in enumerate((2, 1)):
        x = BlurUpSampling2D(name=f"up{i + 1}_blur")(x)
        x = _conv(filters * mult, 3, padding="same", name=f"up{i + 1}_conv")(x)
        x = InstanceNormalization(activation="relu", name=f"up{i + 1}_norm")(x)

    x = ReflectionPadding2D(3, name="head_pad")(x)
    x = _conv(channels, 7, name="head_conv")(x)
    # tanh in float32 so mixed-precision outputs keep their full [-1, 1] resolution.
    outputs = keras.layers.Activation("tanh", dtype="float32", name="head_tanh")(x)
    return keras.Model(inputs, outputs, name=name)


def default_nce_layers(num_residual_blocks):
    """The official five PatchNCE layers (`NCE_LAYERS`) for a generator of that many blocks.

    They tap residual block 5, so a smaller generator has no default: pass `nce_layers`
    naming its layers (e.g. `("stem_pad", "down1_conv", "down2_conv", "res1_add")`).
    """
    if num_residual_blocks < 5:
        raise ValueError(
            "The official nce_layers tap residual block 5; name the layers to tap with "
            f"nce_layers for a smaller generator. Received: num_residual_blocks={num_residual_blocks!r}"
        )
    return NCE_LAYERS


def build_feature_extractor(generator, layer_names=NCE_LAYERS):
    """A model sharing `generator`'s layers and weights that maps an image to the list of
    the named layers' outputs: the official `netG(image, nce_layers, encode_only=True)`.

    Computes only what those layers need (the encoder up to the last one), not the image.

    Example:
    >>> generator = build_cut_generator(filters=4, num_residual_blocks=5)
    >>> [tuple(f.shape) for f in build_feature_extractor(generator)(keras.ops.zeros((1, 16, 16, 3)))]
    [(1, 22, 22, 3), (1, 16, 16, 8), (1, 8, 8, 16), (1, 4, 4, 16), (1, 4, 4, 16)]
    """
    if not layer_names:
        raise ValueError(f"Need at least one layer to tap. Received: layer_names={layer_names!r}")
    names = {layer.name for layer in generator.layers}
    missing = [name for name in layer_names if name not in names]
    if missing:
        raise ValueError(f"{generator.name} has no layers named {missing}. Received: layer_names={layer_names!r}")
    outputs = [generator.get_layer(name).output for name in layer_names]
    return keras.Model(generator.input, outputs, name=f"{generator.name}_features")
