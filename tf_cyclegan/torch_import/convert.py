"""PyTorch CycleGAN state dicts -> this package's networks, with the architecture read from
the parameters' names and shapes.

The reference implementation's (junyanz/pytorch-CycleGAN-and-pix2pix) networks are
`nn.Sequential`s under `model.`: its `ResnetGenerator` maps to `build_resnet_generator`
(alignment "reference": the same computation, pixel for pixel) and its `NLayerDiscriminator`
to `build_patchgan_discriminator`. Read from the file: the number of residual blocks, the
base filters, the image channels, biases on the convolutions or not, instance norms with or
without learned scale and offset. Ignored, as the reference ignores them on load: the
instance norms' running statistics of older PyTorch versions. Stripped: `DataParallel`'s
`module.` prefix. A generator trained with the reference's `--use_dropout` imports without
its dropout layers (they only act in training). Anything else (a U-Net generator, batch norm, the 1x1 pixel
discriminator, another layout) is refused with what the file holds.
"""

import collections
import re

import numpy as np

from tf_cyclegan.models.patchgan import build_patchgan_discriminator
from tf_cyclegan.models.resnet_generator import build_resnet_generator
from tf_cyclegan.torch_import.checkpoint import CheckpointError

SUPPORTED = ("the reference's ResNet generator (resnet_6blocks, resnet_9blocks, any number of blocks) and "
             "its PatchGAN discriminator (basic, n_layers), with instance norm")
_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _modules(state_dict):
    """{index in `model.`: {rest of the name: array}}, `module.` stripped, running stats dropped."""
    modules = collections.defaultdict(dict)
    for key, value in state_dict.items():
        key = key[len("module."):] if key.startswith("module.") else key
        match = re.fullmatch(r"model\.(\d+)\.(.+)", key)
        if not match or match.group(2).startswith("model."):
            raise CheckpointError(f"the file holds {describe(state_dict)}: {key!r} is not of the reference's layout "
                                  f"(model.<index>.<name>); supported: {SUPPORTED}")
        index, name = int(match.group(1)), match.group(2)
        if name.rsplit(".", 1)[-1] not in _RUNNING_STATS:
            modules[index][name] = value
        elif name.rsplit(".", 1)[-1] == "running_mean":
            modules[index].setdefault("_running_stats", True)
    return dict(sorted(modules.items()))


def describe(state_dict):
    """What a state dict holds, in a few words, for error messages."""
    keys = list(state_dict)
    if any(".model." in key or re.match(r"(module\.)?model\.model\.", key) for key in keys):
        return "a U-Net generator (unet_128 / unet_256)"
    shapes = [value.shape for value in state_dict.values() if value.ndim == 4]
    if shapes and all(shape[2:] == (1, 1) for shape in shapes):
        return "the 1x1 pixel discriminator"
    return f"{len(keys)} tensor(s), e.g. {', '.join(keys[:4])}"


def _is_conv(params):
    return "weight" in params and params["weight"].ndim == 4


def _norm_kind(params, where):
    """"affine" or "plain" for an instance norm's parameters (running statistics dropped)."""
    names = set(params) - {"_running_stats"}
    if names == {"weight", "bias"}:
        return "affine"
    if not names:
        return "plain"
    raise CheckpointError(f"{where} holds {sorted(names)}: not an instance norm; supported: {SUPPORTED}")


def _sub(params, prefix):
    """The entries of `params` under `prefix.`, without it."""
    return {key[len(prefix) + 1:]: value for key, value in params.items() if key.startswith(prefix + ".")}


def _norm_options(norms, conv_params, running_stats):
    """(affine, use_bias) of the networks' instance norms and the convolutions before them."""
    kinds = {_norm_kind(params, where) for where, params in norms}
    if len(kinds) != 1:
        raise CheckpointError("instance norms both with and without a learned scale and offset")
    affine = kinds.pop() == "affine"
    biases = {"bias" in params for params in conv_params}
    if len(biases) != 1:
        raise CheckpointError("some convolutions before a normalisation have a bias and some do not")
    use_bias = biases.pop()
    if affine and running_stats and not use_bias:
        raise CheckpointError("batch norm (the reference's --norm batch: a learned scale and offset, running "
                              f"statistics, convolutions without bias); supported: {SUPPORTED}")
    return affine, use_bias


def _conv_weights(params):
    """Keras' weights of a PyTorch convolution: the kernel as (kh, kw, in, out) (PyTorch:
    (out, in, kh, kw)), the bias. The same transpose serves a transposed convolution: PyTorch's
    (in, out, kh, kw) becomes Keras' (kh, kw, out, in)."""
    kernel = np.transpose(params["weight"], (2, 3, 1, 0))
    return [kernel] + ([params["bias"]] if "bias" in params else [])


def _norm_weights(params, affine):
    return [params["weight"], params["bias"]] if affine else []


def _load_plan(network, plan):
    for layer_name, weights in plan:
        layer = network.get_layer(layer_name)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        given = [tuple(w.shape) for w in weights]
        if expected != given:
            raise CheckpointError(f"{layer_name}: the file's shapes {given} do not fit the network read from "
                                  f"it ({expected})")
        layer.set_weights(weights)
    return network


def generator_from_state_dict(state_dict, name="gen_a2b"):
    """A Keras ResNet generator (`build_resnet_generator`, alignment "reference") holding the
    weights of the reference's `ResnetGenerator` state dict (names -> NumPy arrays)."""
    modules = _modules(state_dict)
    blocks = [i for i, params in modules.items() if any(key.startswith("conv_block.") for key in params)]
    n = len(blocks)
    convs = [i for i, params in modules.items() if _is_conv(params)]
    if convs != [1, 4, 7, 10 + n, 13 + n, 17 + n] or blocks != list(range(10, 10 + n)):
        raise CheckpointError(f"the file holds {describe(state_dict)}, not the reference's ResNet generator; "
                              f"supported: {SUPPORTED}")
    stem, down1, down2, up1, up2, head = (modules[i] for i in convs)
    block_convs = []
    for index in blocks:
        inner = sorted({int(key.split(".")[1]) for key, value in modules[index].items()
                        if key.startswith("conv_block.") and value.ndim == 4})
        if len(inner) != 2:
            raise CheckpointError(f"residual block model.{index} is not two 3x3 convolutions; supported: {SUPPORTED}")
        block_convs.append(inner)
    norms = [(f"model.{i}", modules.get(i, {})) for i in (2, 5, 8, 11 + n, 14 + n)]
    norms += [(f"model.{b}.conv_block.{c + 1}", _sub(modules[b], f"conv_block.{c + 1}"))
              for b, inner in zip(blocks, block_convs) for c in inner]
    before_norms = [stem, down1, down2, up1, up2] + [_sub(modules[b], f"conv_block.{c}")
                                                     for b, inner in zip(blocks, block_convs) for c in inner]
    running_stats = any(params.get("_running_stats") for params in modules.values())
    affine, use_bias = _norm_options(norms, before_norms, running_stats)
    filters, channels = stem["weight"].shape[:2]
    if head["weight"].shape[0] != channels:
        raise CheckpointError(f"{head['weight'].shape[0]} channels out for {channels} in: only generators with as "
                              "many channels out as in are supported")
    generator = build_resnet_generator(filters=int(filters), num_residual_blocks=n, channels=int(channels), name=name,
                                       norm_affine=affine, use_bias=use_bias)
    norm_params = dict(norms)
    plan = [("stem_conv", _conv_weights(stem)), ("down1_conv", _conv_weights(down1)),
            ("down2_conv", _conv_weights(down2)), ("up1_conv", _conv_weights(up1)),
            ("up2_conv", _conv_weights(up2)), ("head_conv", _conv_weights(head))]
    for layer_name, index in (("stem_norm", 2), ("down1_norm", 5), ("down2_norm", 8), ("up1_norm", 11 + n),
                              ("up2_norm", 14 + n)):
        plan.append((layer_name, _norm_weights(norm_params[f"model.{index}"], affine)))
    for b, (index, inner) in enumerate(zip(blocks, block_convs), start=1):
        for j, c in enumerate(inner, start=1):
            plan.append((f"res{b}_conv{j}", _conv_weights(_sub(modules[index], f"conv_block.{c}"))))
            plan.append((f"res{b}_norm{j}", _norm_weights(norm_params[f"model.{index}.conv_block.{c + 1}"], affine)))
    return _load_plan(generator, plan)


def discriminator_from_state_dict(state_dict, name="disc_a"):
    """A Keras PatchGAN (`build_patchgan_discriminator`) holding the weights of the reference's
    `NLayerDiscriminator` state dict (names -> NumPy arrays)."""
    modules = _modules(state_dict)
    convs = [i for i, params in modules.items() if _is_conv(params)]
    num_layers = len(convs) - 2
    expected = [0] + [2 + 3 * k for k in range(num_layers)] + [2 + 3 * num_layers]
    if num_layers < 1 or convs != expected or any(modules[i]["weight"].shape[2:] != (4, 4) for i in convs):
        raise CheckpointError(f"the file holds {describe(state_dict)}, not the reference's PatchGAN discriminator; "
                              f"supported: {SUPPORTED}")
    norms = [(f"model.{i + 1}", modules.get(i + 1, {})) for i in convs[1:-1]]
    running_stats = any(params.get("_running_stats") for params in modules.values())
    affine, use_bias = _norm_options(norms, [modules[i] for i in convs[1:-1]], running_stats)
    first = modules[convs[0]]["weight"]
    discriminator = build_patchgan_discriminator(filters=int(first.shape[0]), num_layers=num_layers,
                                                 channels=int(first.shape[1]), name=name, norm_affine=affine,
                                                 use_bias=use_bias)
    plan = [("layer0_conv", _conv_weights(modules[convs[0]])), ("logits_conv", _conv_weights(modules[convs[-1]]))]
    for k, index in enumerate(convs[1:-1], start=1):
        plan.append((f"layer{k}_conv", _conv_weights(modules[index])))
        plan.append((f"layer{k}_norm", _norm_weights(dict(norms)[f"model.{index + 1}"], affine)))
    return _load_plan(discriminator, plan)
