"""Copying the official CUT networks' weights (taesungp/contrastive-unpaired-translation)
into this package's CUT generator, discriminator and feature head.

The weights come as a mapping from the official state dict's names to NumPy arrays (what
`{k: v.numpy() for k, v in net.state_dict().items()}` gives, or `read_state_dict` of a
`*_net_G.pth`), so no torch is needed here. Convolution kernels are PyTorch's OIHW, Keras'
HWIO; Linear weights are (out, in), Dense kernels (in, out). The blur layers' fixed `filt`
buffers have nothing to copy: they only mark (and are checked to be) the official filters.

Two ways in: `*_from_state_dict` read the architecture from the order, kinds and shapes of
the tensors (`resnet_layout.py`; what `import-torch` uses) and build the network;
`load_official_*` set a network already built to weights named as the official code names
them (what the fidelity tests use).
"""

import logging

import numpy as np

from tf_cyclegan.models.cut_discriminator import build_cut_discriminator
from tf_cyclegan.models.cut_generator import build_cut_generator
from tf_cyclegan.models.patch_nce import PatchSampleHead
from tf_cyclegan.torch_import.checkpoint import CheckpointError
from tf_cyclegan.torch_import.convert import (
    SUPPORTED,
    conv_weights,
    load_plan,
    read_patchgan,
    with_bias,
)
from tf_cyclegan.torch_import.structure import describe, read_layers

logger = logging.getLogger(__name__)


def cut_generator_from_layout(layout, name="generator"):
    """Our CUT generator (`build_cut_generator`) holding the weights of a `ResnetLayout` of
    the official CUT generator (anti-aliased sampling both ways, non-affine instance norm)."""
    if layout.sampling != "antialiased":
        raise CheckpointError("not the official CUT generator (no anti-aliased sampling)")
    if layout.affine:
        raise CheckpointError("a CUT generator with learned norm scales and offsets (affine instance norm): our CUT "
                              "generator's norms have none, as the official's (--normG instance)")
    generator = build_cut_generator(filters=layout.filters, num_residual_blocks=len(layout.blocks),
                                    channels=layout.channels, name=name)
    convs = [("stem_conv", layout.stem), ("down1_conv", layout.downs[0]), ("down2_conv", layout.downs[1]),
             ("up1_conv", layout.ups[0]), ("up2_conv", layout.ups[1]), ("head_conv", layout.head)]
    for b, (first, second) in enumerate(layout.blocks, start=1):
        convs += [(f"res{b}_conv1", first), (f"res{b}_conv2", second)]
    return load_plan(generator, [(layer, with_bias(conv_weights(conv), conv.shape[0])) for layer, conv in convs])


def cut_discriminator_from_state_dict(state_dict, name="discriminator", source="the file"):
    """Our CUT discriminator (`build_cut_discriminator`) holding the weights of the official
    anti-aliased `NLayerDiscriminator` state dict (names -> NumPy arrays, any module names)."""
    convs, _, affine, _, antialiased = read_patchgan(state_dict)
    if not antialiased or affine:
        what = "affine instance norm" if antialiased else "no anti-aliased downsampling (--no_antialias)"
        raise CheckpointError(f"the file holds {describe(state_dict)} with {what}, not the official CUT "
                              f"discriminator; supported: {SUPPORTED}")
    first = convs[0].shape
    discriminator = build_cut_discriminator(filters=int(first[0]), num_layers=len(convs) - 2,
                                            channels=int(first[1]), name=name)
    names = ["layer0_conv"] + [f"layer{k}_conv" for k in range(1, len(convs) - 1)] + ["logits_conv"]
    plan = [(layer, with_bias(conv_weights(conv), conv.shape[0])) for layer, conv in zip(names, convs)]
    logger.info("%s read as the official CUT discriminator of %d filters and %d layers; assumed: stride-1 4x4 "
                "convolutions with zero padding 1, LeakyReLU 0.2, a blur after each but the last two (the "
                "official's)", source, first[0], len(convs) - 2)
    return load_plan(discriminator, plan)


def feature_head_from_state_dict(state_dict, name="feature_head", source="the file"):
    """Our `PatchSampleHead` holding the weights of the official `PatchSampleF` (`mlp_sample`)
    state dict: one MLP per tapped layer, each two linear layers, in the file's order."""
    layers = read_layers(state_dict)
    pairs = list(zip(layers[::2], layers[1::2]))
    units = layers[0].shape[0] if layers and layers[0].kind == "linear" else None
    if (not layers or len(layers) % 2 or any(layer.kind != "linear" for layer in layers)
            or any(a.shape[0] != units or b.shape != (units, units) for a, b in pairs)):
        raise CheckpointError(f"the file holds {describe(state_dict)}, not the official CUT's feature head "
                              "(PatchSampleF with --netF mlp_sample: per tapped layer, linear C->U, ReLU, linear U->U)")
    head = PatchSampleHead([a.shape[1] for a, _ in pairs], units=units, name=name)
    for (first, second), hidden, output in zip(pairs, head.hidden_layers, head.output_layers):
        for dense, linear in ((hidden, first), (output, second)):
            _assign(dense.kernel, linear.tensors["weight"].T, f"{linear.path}.weight")
            bias = linear.tensors.get("bias", np.zeros((units,), np.float32))
            _assign(dense.bias, bias, f"{linear.path}.bias")
    logger.info("%s read as CUT's feature head of %d MLPs of %d units (inputs of %s channels); assumed: ReLU "
                "between each pair of linear layers", source, len(pairs), units, head.channels)
    return head


def generator_weight_names(num_residual_blocks):
    """Our generator's convolution names -> the official `ResnetGenerator`'s module names
    (its `nn.Sequential` indices with anti-aliased sampling both ways)."""
    names = {"stem_conv": "model.1", "down1_conv": "model.4", "down2_conv": "model.8"}
    for i in range(num_residual_blocks):
        names[f"res{i + 1}_conv1"] = f"model.{12 + i}.conv_block.1"
        names[f"res{i + 1}_conv2"] = f"model.{12 + i}.conv_block.5"
    up = 12 + num_residual_blocks  # Upsample, Conv2d, norm, ReLU; twice; then pad, Conv2d, Tanh
    names.update({"up1_conv": f"model.{up + 1}", "up2_conv": f"model.{up + 5}", "head_conv": f"model.{up + 9}"})
    return names


def discriminator_weight_names(num_layers):
    """Our discriminator's convolution names -> the official `NLayerDiscriminator`'s (anti-aliased):
    conv, LeakyReLU, Downsample first; conv, norm, LeakyReLU, Downsample after; no blur on the last."""
    names = {"layer0_conv": "model.0"}
    for i in range(1, num_layers + 1):
        names[f"layer{i}_conv"] = f"model.{4 * i - 1}"
    names["logits_conv"] = f"model.{4 * num_layers + 2}"
    return names


def load_official_generator(generator, weights, prefix=""):
    """Sets `generator` (`build_cut_generator`) to the official G's `weights`; returns it."""
    blocks = sum(1 for layer in generator.layers if layer.name.endswith("_conv1") and layer.name.startswith("res"))
    _load_convolutions(generator, generator_weight_names(blocks), weights, prefix)
    return generator


def load_official_discriminator(discriminator, weights, prefix=""):
    """Sets `discriminator` (`build_cut_discriminator`) to the official D's `weights`; returns it."""
    layers = sum(1 for layer in discriminator.layers if layer.name.endswith("_conv")) - 2
    _load_convolutions(discriminator, discriminator_weight_names(layers), weights, prefix)
    return discriminator


def load_official_head(head, weights, prefix=""):
    """Sets `head` (`PatchSampleHead`) to the official `PatchSampleF`'s `weights`
    (`mlp_{i}.0` and `mlp_{i}.2`, the two Linear layers of MLP i); returns it."""
    for i, (hidden, output) in enumerate(zip(head.hidden_layers, head.output_layers)):
        for dense, module in ((hidden, f"mlp_{i}.0"), (output, f"mlp_{i}.2")):
            kernel = np.asarray(weights[f"{prefix}{module}.weight"]).T
            _assign(dense.kernel, kernel, f"{prefix}{module}.weight")
            _assign(dense.bias, np.asarray(weights[f"{prefix}{module}.bias"]), f"{prefix}{module}.bias")
    return head


def _load_convolutions(model, names, weights, prefix):
    for layer_name, module in names.items():
        layer = model.get_layer(layer_name)
        kernel = np.asarray(weights[f"{prefix}{module}.weight"]).transpose(2, 3, 1, 0)  # OIHW -> HWIO
        _assign(layer.kernel, kernel, f"{prefix}{module}.weight")
        _assign(layer.bias, np.asarray(weights[f"{prefix}{module}.bias"]), f"{prefix}{module}.bias")


def _assign(variable, value, source):
    if tuple(variable.shape) != value.shape:
        raise ValueError(f"{source} has shape {value.shape}, {variable.path} {tuple(variable.shape)}")
    variable.assign(value.astype(variable.dtype))
