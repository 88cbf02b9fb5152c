"""PyTorch CycleGAN state dicts -> this package's networks, with the architecture read from
the order, kinds and shapes of the tensors, whatever the modules' names.

The reference implementation's (junyanz/pytorch-CycleGAN-and-pix2pix) `ResnetGenerator`, and
any generator of its architecture however its modules are named (`resnet_layout.py`), maps
to `build_resnet_generator` (alignment "reference": the same computation, pixel for pixel);
one that upsamples with an `nn.Upsample` and a convolution maps to `upsampling="resize"`. Its
`NLayerDiscriminator` maps to `build_patchgan_discriminator`. Read from the file: the number
of residual blocks, the base filters, the image channels, biases on the convolutions or not,
instance norms with or without learned scale and offset. Ignored, as the reference ignores
them on load: the instance norms' running statistics of older PyTorch versions. A generator
trained with the reference's `--use_dropout` imports without its dropout layers (they only act
in training). Anything else (a U-Net generator, batch norm, the 1x1 pixel discriminator,
another layout) is refused with what the file holds.
"""

import logging

import numpy as np

from tf_cyclegan.models.patchgan import build_patchgan_discriminator
from tf_cyclegan.models.resnet_generator import build_resnet_generator
from tf_cyclegan.torch_import.checkpoint import CheckpointError
from tf_cyclegan.torch_import.resnet_layout import read_resnet_generator
from tf_cyclegan.torch_import.structure import describe, read_layers

logger = logging.getLogger(__name__)

SUPPORTED = ("a ResNet generator of the reference's architecture (resnet_6blocks, resnet_9blocks, any number of "
             "blocks, any module names) and its PatchGAN discriminator (basic, n_layers), with instance norm; the "
             "official CUT's generator and discriminator")


def conv_weights(layer, transposed=False):
    """Keras' weights of a PyTorch convolution: the kernel as (kh, kw, in, out) (PyTorch:
    (out, in, kh, kw)), the bias. The same transpose serves a transposed convolution: PyTorch's
    (in, out, kh, kw) becomes Keras' (kh, kw, out, in)."""
    kernel = np.transpose(layer.tensors["weight"], (2, 3, 1, 0))
    return [kernel] + ([layer.tensors["bias"]] if "bias" in layer.tensors else [])


def with_bias(weights, filters):
    """`weights` of a convolution, with a zero bias where the file's had none (the same output)."""
    return weights if len(weights) == 2 else [weights[0], np.zeros((filters,), weights[0].dtype)]


def _norm_weights(norm, affine):
    return [norm.tensors["weight"], norm.tensors["bias"]] if affine else []


def load_plan(network, plan):
    """Sets each named layer of `network` to its weights; `CheckpointError` where the shapes differ."""
    for layer_name, weights in plan:
        layer = network.get_layer(layer_name)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        given = [tuple(w.shape) for w in weights]
        if expected != given:
            raise CheckpointError(f"{layer_name}: the file's shapes {given} do not fit the network read from "
                                  f"it ({expected})")
        layer.set_weights(weights)
    return network


def log_reading(source, what, assumptions):
    logger.info("%s read as %s. Assumed, as no tensor says it:\n  - %s", source, what, "\n  - ".join(assumptions))


def read_generator_layout(state_dict):
    """The `ResnetLayout` of a generator's state dict; `CheckpointError` saying what the file
    holds when it is none."""
    try:
        return read_resnet_generator(state_dict, SUPPORTED)
    except CheckpointError as error:
        what = describe(state_dict)
        if not what[0].isdigit():  # a network it can name: that says enough
            raise CheckpointError(f"the file holds {what}, not a ResNet generator of the reference's architecture; "
                                  f"supported: {SUPPORTED}") from None
        raise CheckpointError(f"the file holds {what}, not a ResNet generator of the reference's architecture: "
                              f"{error}") from None


def generator_from_layout(layout, name="gen_a2b"):
    """A Keras ResNet generator (`build_resnet_generator`, alignment "reference") holding the
    weights of a `ResnetLayout` of the reference's sampling or of Upsample+conv ("resize")."""
    if layout.sampling == "antialiased":
        raise CheckpointError("the official CUT generator (anti-aliased sampling): build_resnet_generator has none; "
                              "load_torch_generator builds it as our CUT generator")
    upsampling = "resize" if layout.sampling == "resize" else "transpose"
    generator = build_resnet_generator(filters=layout.filters, num_residual_blocks=len(layout.blocks),
                                       channels=layout.channels, name=name, norm_affine=layout.affine,
                                       use_bias=layout.use_bias, upsampling=upsampling)
    convs = [("stem", layout.stem), ("down1", layout.downs[0]), ("down2", layout.downs[1]), ("up1", layout.ups[0]),
             ("up2", layout.ups[1])]
    convs += [(f"res{b}_", conv) for b, pair in enumerate(layout.blocks, start=1) for conv in pair]
    plan, seen = [], {}
    for prefix, conv in convs:
        if prefix.endswith("_"):  # a residual block's first, then second convolution
            seen[prefix] = seen.get(prefix, 0) + 1
            conv_name, norm_name = f"{prefix}conv{seen[prefix]}", f"{prefix}norm{seen[prefix]}"
        else:
            conv_name, norm_name = f"{prefix}_conv", f"{prefix}_norm"
        plan.append((conv_name, conv_weights(conv)))
        plan.append((norm_name, _norm_weights(layout.norms[conv.path], layout.affine)))
    plan.append(("head_conv", with_bias(conv_weights(layout.head), layout.channels)))
    return load_plan(generator, plan)


def generator_from_state_dict(state_dict, name="gen_a2b", source="the file"):
    """A Keras ResNet generator (`build_resnet_generator`, alignment "reference") holding the
    weights of a PyTorch ResNet generator of the reference's architecture (names -> NumPy
    arrays, any module names); logs what it assumed."""
    layout = read_generator_layout(state_dict)
    generator = generator_from_layout(layout, name)
    log_reading(source, layout.summary(), layout.assumptions)
    return generator


def read_patchgan(state_dict, supported=SUPPORTED):
    """(convolutions, norms by convolution path, affine, use_bias, antialiased) of a PatchGAN
    discriminator's state dict: 4x4 convolutions in a chain, the first and the last without a
    norm, the last to one logit; the official CUT's with a 3x3 blur after each but the last two."""
    try:
        layers = read_layers(state_dict)
    except CheckpointError as error:
        raise CheckpointError(f"{error}; supported: {supported}") from None
    segments = []
    for layer in layers:
        if layer.kind == "conv":
            segments.append((layer, []))
        elif layer.kind in ("norm", "blur") and segments:
            segments[-1][1].append(layer)
        else:
            segments = []
            break
    convs = [conv for conv, _ in segments]
    chained = all(b.shape[1] == a.shape[0] for a, b in zip(convs, convs[1:]))
    if (len(convs) < 3 or not chained or any(conv.shape[2:] != (4, 4) for conv in convs)
            or convs[-1].shape[0] != 1):
        raise CheckpointError(f"the file holds {describe(state_dict)}, not the reference's PatchGAN discriminator; "
                              f"supported: {supported}")
    norms, blurs = {}, []
    for i, (conv, extra) in enumerate(segments):
        found = [layer for layer in extra if layer.kind == "norm"]
        if len(found) > 1 or (found and (i in (0, len(convs) - 1) or found[0].shape != (conv.shape[0],))):
            raise CheckpointError(f"a norm where the reference's PatchGAN has none or another ({found[0]}); "
                                  f"supported: {supported}")
        norms[conv.path] = found[0] if found else None
        blurs.append([(layer.shape[0], layer.shape[2]) for layer in extra if layer.kind == "blur"])
    middle = [norms[conv.path] for conv in convs[1:-1]]
    if len({norm is None for norm in middle}) != 1 or len({norm.affine for norm in middle if norm}) > 1:
        raise CheckpointError(f"norms of different kinds, or after some convolutions only; supported: {supported}")
    affine = bool(middle[0] is not None and middle[0].affine)
    running_stats = any(norm is not None and norm.running_stats for norm in middle)
    biases = {"bias" in conv.tensors for conv in convs[1:-1]}
    if len(biases) != 1:
        raise CheckpointError("some convolutions before a normalisation have a bias and some do not")
    use_bias = biases.pop()
    if affine and running_stats and not use_bias:
        raise CheckpointError("batch norm (the reference's --norm batch: a learned scale and offset, running "
                              f"statistics, convolutions without bias); supported: {supported}")
    expected_blurs = [[(conv.shape[0], 3)] for conv in convs[:-2]] + [[], []]
    antialiased = any(blurs)
    if antialiased and blurs != expected_blurs:
        raise CheckpointError(f"blur filters where the official CUT discriminator has none or others; supported: "
                              f"{supported}")
    return convs, norms, affine, use_bias, antialiased


def discriminator_from_state_dict(state_dict, name="disc_a", source="the file"):
    """A Keras PatchGAN (`build_patchgan_discriminator`) holding the weights of the reference's
    `NLayerDiscriminator` state dict (names -> NumPy arrays, any module names)."""
    convs, norms, affine, use_bias, antialiased = read_patchgan(state_dict)
    if antialiased:
        raise CheckpointError(f"the file holds {describe(state_dict)}, not the reference's PatchGAN discriminator "
                              "(the official CUT's: import its run folder as a CUT model)")
    num_layers = len(convs) - 2
    first = convs[0].shape
    discriminator = build_patchgan_discriminator(filters=int(first[0]), num_layers=num_layers, channels=int(first[1]),
                                                 name=name, norm_affine=affine, use_bias=use_bias)
    plan = [("layer0_conv", with_bias(conv_weights(convs[0]), first[0])),
            ("logits_conv", with_bias(conv_weights(convs[-1]), 1))]
    for k, conv in enumerate(convs[1:-1], start=1):
        plan.append((f"layer{k}_conv", conv_weights(conv)))
        plan.append((f"layer{k}_norm", _norm_weights(norms[conv.path], affine)))
    logger.info("%s read as a PatchGAN discriminator of %d filters and %d layers; assumed: stride 2 for all but "
                "the last two 4x4 convolutions, padding 1, LeakyReLU 0.2 (the reference's)", source, first[0],
                num_layers)
    return load_plan(discriminator, plan)
