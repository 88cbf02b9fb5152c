"""A ResNet generator (CycleGAN's, or the official CUT's) read from the order, kinds and shapes
of its tensors, whatever its module names.

Johnson et al.'s generator, as the reference and the CUT code build it: a 7x7 convolution from
the image's channels to `f` filters; two 3x3 ones to 2f and 4f, each halving the size; N pairs
of 3x3 convolutions from 4f to 4f, the residual blocks; two upsamplings back to 2f and f; a
7x7 convolution to the image's channels. Each but the last is followed by a norm, which holds
tensors only with a learned scale and offset (or old running statistics).

The upsampling is read from the shapes: a transposed convolution's weight is (in, out, k, k),
an ordinary one's (out, in, k, k), so from 4f to 2f the first is (4f, 2f, 3, 3), the second
(2f, 4f, 3, 3): an `nn.Upsample` (no tensors) and a convolution. The official CUT's blur
filters (`filt` buffers: 3x3 after each downsampling convolution, 4x4 before each upsampling
one) mark its anti-aliased sampling. What no tensor says is assumed and listed in
`ResnetLayout.assumptions`, for the log.
"""

import dataclasses

import numpy as np

from tf_cyclegan.torch_import.checkpoint import CheckpointError
from tf_cyclegan.torch_import.structure import read_layers

# The official CUT's fixed filters (`models/networks.py:get_filter`): [1, 2, 1] for Downsample,
# [1, 3, 3, 1] times stride**2 for Upsample, each normalised to sum 1 first.
_BLUR_TAPS = {3: np.array([1.0, 2.0, 1.0]), 4: np.array([1.0, 3.0, 3.0, 1.0])}
_BLUR_GAIN = {3: 1.0, 4: 4.0}


@dataclasses.dataclass
class ResnetLayout:
    """The layers of a ResNet generator, each a `TorchLayer` (norms None where the file has none).

    `sampling` is "reference" (stride-2 convolutions, transposed convolutions up), "resize"
    (stride-2 convolutions, upsampling then a convolution) or "antialiased" (the official
    CUT's blurred sampling both ways)."""

    stem: object
    downs: list
    blocks: list  # of (first, second) convolution pairs
    ups: list
    head: object
    norms: dict  # a convolution's path -> the norm after it, or None
    sampling: str
    affine: bool
    use_bias: bool
    running_stats: bool
    assumptions: list

    @property
    def filters(self):
        return int(self.stem.shape[0])

    @property
    def channels(self):
        return int(self.stem.shape[1])

    @property
    def convolutions(self):
        return [self.stem, *self.downs, *[c for pair in self.blocks for c in pair], *self.ups]

    def summary(self):
        kinds = {"reference": "transposed-convolution upsampling", "resize": "Upsample+conv upsampling",
                 "antialiased": "the official CUT's anti-aliased sampling"}
        norms = "affine instance norm" if self.affine else "instance norm"
        return (f"a ResNet generator of {self.filters} filters, {len(self.blocks)} residual block(s), "
                f"{self.channels} channels, {kinds[self.sampling]}, {norms}, "
                f"{'with' if self.use_bias else 'without'} convolution biases")


def read_resnet_generator(state_dict, supported):
    """The `ResnetLayout` of `state_dict`; `CheckpointError` (ending with `supported`) when it
    is no such generator. Tried in the file's order, then in its names' numbers' order."""
    try:
        return _layout(read_layers(state_dict), supported)
    except CheckpointError as error:
        first = error
    renumbered = read_layers(state_dict, order="numbers")
    if [layer.path for layer in renumbered] != [layer.path for layer in read_layers(state_dict)]:
        try:
            layout = _layout(renumbered, supported)
        except CheckpointError:
            raise first from None
        layout.assumptions.insert(0, "the file lists its tensors out of the network's order (sorted as text?): "
                                     "read in the order of the numbers in their names")
        return layout
    raise first


def _segments(layers, supported):
    """[(convolution, [the norms and blurs after it, up to the next convolution])]."""
    if not layers or layers[0].kind != "conv":
        first = layers[0] if layers else "nothing"
        raise CheckpointError(f"its first layer is a {first}, not a convolution; supported: {supported}")
    segments = []
    for layer in layers:
        if layer.kind == "conv":
            segments.append((layer, []))
        elif layer.kind in ("norm", "blur"):
            segments[-1][1].append(layer)
        else:
            raise CheckpointError(f"it holds a {layer}, which a ResNet generator has not; supported: {supported}")
    return segments


def _layout(layers, supported):
    segments = _segments(layers, supported)
    convs = [conv for conv, _ in segments]
    if len(convs) < 6 or (len(convs) - 6) % 2:
        raise CheckpointError(f"{len(convs)} convolutions: not the 6 + 2 per residual block of a ResNet generator; "
                              f"supported: {supported}")
    stem, down1, down2, *middle, up1, up2, head = convs
    f, c = stem.shape[:2]
    wanted = [(stem, (f, c, 7, 7)), (down1, (2 * f, f, 3, 3)), (down2, (4 * f, 2 * f, 3, 3))]
    wanted += [(conv, (4 * f, 4 * f, 3, 3)) for conv in middle] + [(head, (head.shape[0], f, 7, 7))]
    for conv, shape in wanted:
        if conv.shape != shape:
            raise CheckpointError(f"its {conv} is not the {shape[2]}x{shape[3]} {shape[1]}->{shape[0]} convolution "
                                  f"a ResNet generator of {f} filters has there; supported: {supported}")
    if head.shape[0] != c:
        raise CheckpointError(f"{head.shape[0]} channels out for {c} in: only generators with as many channels out "
                              f"as in are supported")
    upsampling = _upsampling(up1, up2, f, supported)
    extras = {conv.path: extra for conv, extra in segments}
    blurs = {conv.path: [layer for layer in extras[conv.path] if layer.kind == "blur"] for conv in convs}
    antialiased = _blurs(blurs, down1, down2, middle[-1] if middle else down2, up1, f, supported)
    if antialiased and upsampling != "resize":
        raise CheckpointError("anti-aliased (blurred) downsampling with transposed-convolution upsampling (the "
                              f"official CUT's --no_antialias_up): not supported; supported: {supported}")
    transposed = {up1.path, up2.path} if upsampling == "reference" else set()
    norms = {conv.path: _norm_of(conv, extras[conv.path], conv.shape[1 if conv.path in transposed else 0], supported)
             for conv in convs}
    if norms[head.path] is not None:
        raise CheckpointError(f"a norm after the last convolution ({norms[head.path].path}): not a ResNet "
                              f"generator's; supported: {supported}")
    layout = ResnetLayout(stem, [down1, down2], list(zip(middle[::2], middle[1::2])), [up1, up2], head,
                          {path: norms[path] for path in norms if path != head.path},
                          "antialiased" if antialiased else upsampling, False, True, False, [])
    _read_norms(layout, supported)
    _assume(layout)
    return layout


def _upsampling(up1, up2, f, supported):
    """"reference" (transposed 3x3 convolutions) or "resize" (3x3 convolutions after an
    upsampling that holds no tensors)."""
    kinds = []
    for conv, (inp, out) in ((up1, (4 * f, 2 * f)), (up2, (2 * f, f))):
        if conv.shape[:2] == (inp, out):
            kind = "transposed convolution"
        elif conv.shape[:2] == (out, inp):
            kind = "convolution after an upsampling"
        elif conv.shape[:2] == (4 * out, inp):
            raise CheckpointError(f"its {conv} makes 4x the channels: a sub-pixel upsampling (PixelShuffle), not "
                                  f"supported; supported: {supported}")
        else:
            raise CheckpointError(f"its {conv} is no upsampling from {inp} to {out} channels of a ResNet generator "
                                  f"of {f} filters; supported: {supported}")
        if conv.shape[2:] != (3, 3):
            raise CheckpointError(f"an upsampling by a {conv.shape[2]}x{conv.shape[3]} {kind} ({conv.path}): ours are "
                                  f"3x3, as the reference's; supported: {supported}")
        kinds.append(kind)
    if kinds[0] != kinds[1]:
        raise CheckpointError(f"one upsampling a {kinds[0]}, the other a {kinds[1]}: not supported")
    return "reference" if kinds[0] == "transposed convolution" else "resize"


def _blurs(blurs, down1, down2, last_block, up1, f, supported):
    """Whether the official CUT's four blur filters are where its anti-aliased sampling puts
    them (and are its filters); none at all is the reference's plain sampling."""
    found = [layer for found in blurs.values() for layer in found]
    if not found:
        return False
    expected = {down1.path: (2 * f, 3), down2.path: (4 * f, 3), last_block.path: (4 * f, 4), up1.path: (2 * f, 4)}
    if not blurs[down1.path] and not blurs[down2.path] and blurs[up1.path]:
        raise CheckpointError("plain stride-2 downsampling with blurred upsampling (the official CUT's "
                              f"--no_antialias): not supported; supported: {supported}")
    if blurs[down1.path] and not blurs[last_block.path] and not blurs[up1.path]:
        raise CheckpointError("anti-aliased (blurred) downsampling with plain upsampling (the official CUT's "
                              f"--no_antialias_up): not supported; supported: {supported}")
    for path, found_here in blurs.items():
        shapes = [(layer.shape[0], layer.shape[2]) for layer in found_here]
        want = [expected[path]] if path in expected else []
        if shapes != want:
            where = found_here[0] if found_here else f"no blur after {path}"
            raise CheckpointError(f"blur filters where the official CUT generator has none or others ({where}); "
                                  f"supported: {supported}")
        for layer in found_here:
            size = layer.shape[2]
            taps = _BLUR_TAPS[size]
            kernel = np.outer(taps, taps) / taps.sum() ** 2 * _BLUR_GAIN[size]
            if layer.shape != (layer.shape[0], 1, size, size) or not np.allclose(layer.tensors["filt"], kernel,
                                                                                 atol=1e-6):
                raise CheckpointError(f"its {layer} is not the official CUT's fixed filter; supported: {supported}")
    return True


def _norm_of(conv, extras, channels, supported):
    norms = [layer for layer in extras if layer.kind == "norm"]
    if len(norms) > 1 or (norms and norms[0].shape != (channels,)):
        raise CheckpointError(f"after its {conv}: {', '.join(map(str, norms))}, not one norm of its "
                              f"{channels} channels; supported: {supported}")
    return norms[0] if norms else None


def _read_norms(layout, supported):
    """Sets `affine`, `use_bias` and `running_stats`; refuses batch norm and mixtures."""
    norms = list(layout.norms.values())
    present = {norm is not None for norm in norms}
    if len(present) != 1:
        missing = [path for path, norm in layout.norms.items() if norm is None]
        raise CheckpointError(f"norms after some convolutions and none after others ({', '.join(missing[:3])}); "
                              f"supported: {supported}")
    affine = {norm.affine for norm in norms if norm is not None}
    if len(affine) > 1:
        raise CheckpointError("instance norms both with and without a learned scale and offset")
    layout.affine = affine.pop() if affine else False
    layout.running_stats = any(norm is not None and norm.running_stats for norm in norms)
    biases = {"bias" in conv.tensors for conv in layout.convolutions}
    if len(biases) != 1:
        raise CheckpointError("some convolutions before a normalisation have a bias and some do not")
    layout.use_bias = biases.pop()
    if layout.affine and layout.running_stats and not layout.use_bias:
        raise CheckpointError("batch norm (the reference's --norm batch: a learned scale and offset, running "
                              f"statistics, convolutions without bias); supported: {supported}")


def _assume(layout):
    """What the file cannot say, as the log should say it."""
    f, said = layout.filters, layout.assumptions
    if layout.sampling == "antialiased":
        said.append(f"the 3x3 convolutions to {2 * f} and {4 * f} filters at stride 1 with zero padding 1, each "
                    "followed by its norm, ReLU and the blur (the official CUT's anti-aliased downsampling)")
    else:
        said.append(f"the 3x3 convolutions to {2 * f} and {4 * f} filters at stride 2 with zero padding 1 (the "
                    "reference's; a file holds no strides)")
    said.append(f"the {2 * len(layout.blocks)} 3x3 {4 * f}->{4 * f} convolutions as {len(layout.blocks)} residual "
                "block(s), x + conv(ReLU(norm(conv(x)))) with reflection padding 1, taking each pair in the "
                "file's order (their shapes cannot tell which comes first)")
    if layout.sampling == "reference":
        said.append("the transposed convolutions at stride 2 with padding 1 and output padding 1 (the reference's)")
    elif layout.sampling == "resize":
        said.append("each upsampling an nn.Upsample(scale_factor=2, mode='nearest') then reflection padding 1 "
                    "before its 3x3 convolution (our upsampling='resize'); a state dict holds neither: a "
                    "bilinear Upsample or zero padding would compute differently")
    else:
        said.append("each upsampling the official CUT's blurred one, then a 3x3 convolution with zero padding 1")
    said.append("reflection padding 3 around the 7x7 convolutions, ReLU after every norm, tanh at the end")
    if all(norm is None for norm in layout.norms.values()):
        said.append("an instance norm without learned scale and offset after every convolution but the last "
                    "(such a norm holds no tensors)")
    elif layout.running_stats:
        said.append("the instance norms' running statistics ignored, as PyTorch's InstanceNorm2d ignores them "
                    "unless built with track_running_stats")
