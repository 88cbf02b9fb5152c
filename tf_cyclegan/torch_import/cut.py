"""Copying the official CUT networks' weights (taesungp/contrastive-unpaired-translation)
into this package's CUT generator, discriminator and feature head.

The weights come as a mapping from the official state dict's names to NumPy arrays (what
`{k: v.numpy() for k, v in net.state_dict().items()}` gives), so no torch is needed here.
Convolution kernels are PyTorch's OIHW, Keras' HWIO; Linear weights are (out, in), Dense
kernels (in, out). The blur layers' fixed `filt` buffers have nothing to copy.
"""

import numpy as np


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
