"""A PyTorch state dict read as the sequence of layers it holds, whatever their module names.

A state dict lists each module's tensors in the order the modules were registered, which for
networks built as `nn.Sequential`s (and the ResNet blocks inside them) is the order the
forward pass applies them. So the names only group the tensors into layers (everything
before a tensor's last dot names its module) and the order, the kinds and the shapes say
what each layer is: a convolution (a 4-D `weight`), a linear layer (a 2-D one), a norm (1-D
`weight` and `bias`, or running statistics alone), or an anti-aliasing blur (CUT's fixed
`filt` buffer). What a state dict cannot say (strides, paddings, activations, a norm that
holds no tensors at all) the readers of whole networks (`resnet_layout.py`, `convert.py`,
`cut.py`) assume, and say so.
"""

import re
import typing

from tf_cyclegan.torch_import.checkpoint import CheckpointError

_NORM_TENSORS = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
_REPARAMETRISED = {"weight_orig": "spectral norm", "weight_u": "spectral norm", "weight_v": "weight norm",
                   "weight_g": "weight norm", "parametrizations": "a parametrisation (spectral or weight norm)"}


class TorchLayer(typing.NamedTuple):
    """One module of a state dict: `kind` "conv", "linear", "norm" or "blur", `path` its
    name in the file, `tensors` its tensors by their last name part (`weight`, `bias`, ...)."""

    kind: str
    path: str
    tensors: dict

    @property
    def weight(self):
        return self.tensors.get("weight")

    @property
    def shape(self):
        """A convolution's (out, in, kh, kw) (a transposed one's: (in, out, kh, kw)), a linear
        layer's (out, in), a norm's (channels,), a blur filter's (channels, 1, kh, kw)."""
        if self.kind == "blur":
            return tuple(self.tensors["filt"].shape)
        if self.kind == "norm":
            tensor = self.tensors.get("weight", self.tensors.get("running_mean", self.tensors.get("bias")))
            return tuple(tensor.shape)
        return tuple(self.weight.shape)

    @property
    def affine(self):
        """A norm with a learned scale and offset."""
        return "weight" in self.tensors

    @property
    def running_stats(self):
        return "running_mean" in self.tensors

    def __str__(self):
        if self.kind == "conv":
            out, inp, kh, kw = self.shape
            return f"{kh}x{kw} conv {inp}->{out} ({self.path})"
        if self.kind == "linear":
            return f"linear {self.shape[1]}->{self.shape[0]} ({self.path})"
        if self.kind == "blur":
            return f"{self.shape[2]}x{self.shape[3]} blur of {self.shape[0]} channels ({self.path})"
        return f"norm of {self.shape[0]} channels ({self.path})"


def read_layers(state_dict, order="file"):
    """The layers of `state_dict` (names -> NumPy arrays), in the file's order, or with
    `order="numbers"` in the order of their names' numbers (`model.2` before `model.10`,
    for a file whose keys were sorted as text). Raises `CheckpointError` for a tensor no
    layer of these networks holds, naming it."""
    keys = list(state_dict)
    if order == "numbers":
        keys = sorted(keys, key=_number_key)
    grouped = {}
    for key in keys:
        path, _, leaf = key.rpartition(".")
        if leaf in _REPARAMETRISED or any(part in _REPARAMETRISED for part in path.split(".")):
            what = _REPARAMETRISED.get(leaf) or next(_REPARAMETRISED[p] for p in path.split(".") if p in
                                                     _REPARAMETRISED)
            raise CheckpointError(f"{key!r} belongs to a layer under {what}, which these networks do not have")
        grouped.setdefault(path, {})[leaf] = state_dict[key]
    return [_layer(path, tensors) for path, tensors in grouped.items()]


def _number_key(key):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"\.", key)]


def _layer(path, tensors):
    names = set(tensors)
    weight = tensors.get("weight")
    if names == {"filt"} and tensors["filt"].ndim == 4:
        return TorchLayer("blur", path, tensors)
    if weight is not None and weight.ndim == 4 and names <= {"weight", "bias"}:
        return TorchLayer("conv", path, tensors)
    if weight is not None and weight.ndim == 2 and names <= {"weight", "bias"}:
        return TorchLayer("linear", path, tensors)
    if names <= _NORM_TENSORS and all(tensors[n].ndim == 1 for n in names - {"num_batches_tracked"}) and (
            names & {"weight", "running_mean"}):
        return TorchLayer("norm", path, tensors)
    shapes = ", ".join(f"{name} {tuple(value.shape)}" for name, value in tensors.items())
    raise CheckpointError(f"layer {path or '(top level)'!r} holds {shapes}: not a convolution, linear layer, norm "
                          "or blur filter")


def describe(state_dict):
    """What a state dict holds, in a few words on one line, for error messages."""
    keys = list(state_dict)
    if any(re.search(r"(^|\.)model\.model\.|\.model\.\d+\.model\.", key) for key in keys):
        return "a U-Net generator (unet_128 / unet_256)"
    try:
        layers = read_layers(state_dict)
    except CheckpointError:
        layers = []
    kinds = {kind: [layer for layer in layers if layer.kind == kind] for kind in ("conv", "linear", "norm", "blur")}
    convs = kinds["conv"]
    if layers and len(kinds["linear"]) == len(layers) and len(layers) % 2 == 0:
        return f"a feature head of {len(layers) // 2} two-layer MLP(s) (CUT's PatchSampleF)"
    if convs and all(layer.shape[2:] == (1, 1) for layer in convs):
        return "the 1x1 pixel discriminator"
    if len(convs) >= 2 and all(layer.shape[2:] == (4, 4) for layer in convs) and convs[-1].shape[0] == 1:
        blurred = " with anti-aliased downsampling (CUT's)" if kinds["blur"] else ""
        return f"a PatchGAN discriminator of {len(convs)} 4x4 convolutions{blurred}"
    if not layers:
        return f"{len(keys)} tensor(s), e.g. {', '.join(keys[:4])}"
    counts = ", ".join(f"{len(found)} {name}" for name, found in (
        ("convolution(s)", convs), ("linear layer(s)", kinds["linear"]), ("norm(s)", kinds["norm"]),
        ("blur filter(s)", kinds["blur"])) if found)
    first = f", the first a {convs[0]}" if convs else ""
    return f"{len(keys)} tensor(s) in {len(layers)} layer(s): {counts}{first}"
