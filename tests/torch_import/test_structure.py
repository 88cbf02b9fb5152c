import os

import numpy as np
import pytest

from tf_cyclegan.torch_import.checkpoint import CheckpointError, read_state_dict
from tf_cyclegan.torch_import.structure import describe, read_layers

LAYOUTS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch_layouts")
REFERENCE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch")


def state(path):
    return read_state_dict(path)


def kinds(layers):
    return [layer.kind for layer in layers]


def test_the_layers_of_different_namings_are_the_same_sequence():
    # The reference's names, `block`, nested sequences under `module.`, a flat list with attributes.
    sequences = {}
    for name in ("block_affine.pth", "nested_dataparallel.pth", "flat_no_bias.pth"):
        layers = read_layers(state(os.path.join(LAYOUTS, name)))
        sequences[name] = [layer.shape for layer in layers if layer.kind == "conv"]
    assert sequences["block_affine.pth"] == sequences["nested_dataparallel.pth"] == sequences["flat_no_bias.pth"]
    assert sequences["block_affine.pth"][0] == (4, 3, 7, 7) and len(sequences["block_affine.pth"]) == 10


def test_a_layer_is_a_module_with_its_tensors_by_their_last_name():
    layers = read_layers(state(os.path.join(LAYOUTS, "flat_no_bias.pth")))
    assert layers[0].path == "1" and set(layers[0].tensors) == {"weight"}  # no bias
    assert layers[1].kind == "norm" and layers[1].affine and not layers[1].running_stats
    assert [layer.path for layer in layers if layer.kind == "conv"][3:5] == ["10.conv1", "10.conv2"]


def test_running_statistics_alone_are_a_norm_and_blur_buffers_a_blur():
    reference = read_layers(state(os.path.join(REFERENCE, "gen_dataparallel_running_stats.pth")))
    norm = reference[1]
    assert norm.kind == "norm" and not norm.affine and norm.running_stats and norm.shape == (8,)
    cut = read_layers(state(os.path.join(LAYOUTS, "cut_run", "latest_net_G.pth")))
    blurs = [layer for layer in cut if layer.kind == "blur"]
    assert [layer.shape for layer in blurs] == [(8, 1, 3, 3), (16, 1, 3, 3), (16, 1, 4, 4), (8, 1, 4, 4)]
    assert kinds(read_layers(state(os.path.join(LAYOUTS, "cut_run", "latest_net_F.pth")))) == ["linear"] * 10


def test_the_numbers_order_undoes_keys_sorted_as_text():
    original = state(os.path.join(REFERENCE, "gen.pth"))
    as_text = {key: original[key] for key in sorted(original)}  # model.10 before model.2
    assert [layer.path for layer in read_layers(as_text)][:2] == ["model.1", "model.10.conv_block.1"]
    assert [layer.path for layer in read_layers(as_text, order="numbers")] == [
        layer.path for layer in read_layers(original)]


@pytest.mark.parametrize("key, what", [
    ("model.1.weight_orig", "spectral norm"), ("model.1.weight_g", "weight norm"),
    ("model.1.parametrizations.weight.original", "parametrisation"),
])
def test_a_reparametrised_layer_is_refused_naming_it(key, what):
    with pytest.raises(CheckpointError, match=f"{key}.*{what}"):
        read_layers({key: np.zeros((4, 3, 3, 3), np.float32)})


def test_an_unknown_layer_is_refused_with_its_tensors():
    with pytest.raises(CheckpointError, match=r"layer 'embed' holds weight \(4, 3, 3\)"):
        read_layers({"embed.weight": np.zeros((4, 3, 3), np.float32)})


@pytest.mark.parametrize("path, line", [
    (os.path.join(REFERENCE, "disc.pth"), "a PatchGAN discriminator of 5 4x4 convolutions"),
    (os.path.join(LAYOUTS, "cut_run", "latest_net_D.pth"),
     "a PatchGAN discriminator of 5 4x4 convolutions with anti-aliased downsampling (CUT's)"),
    (os.path.join(LAYOUTS, "cut_run", "latest_net_F.pth"), "a feature head of 5 two-layer MLP(s) (CUT's PatchSampleF)"),
    (os.path.join(LAYOUTS, "flat_no_bias.pth"),
     "29 tensor(s) in 19 layer(s): 10 convolution(s), 9 norm(s), the first a 7x7 conv 3->4 (1)"),
])
def test_describe_says_what_a_file_holds_in_one_line(path, line):
    assert describe(state(path)) == line


def test_describe_names_a_unet_and_the_pixel_discriminator():
    unet = {"model.model.0.weight": np.zeros((8, 3, 4, 4), np.float32)}
    assert describe(unet).startswith("a U-Net generator")
    pixel = {"net.0.weight": np.zeros((8, 3, 1, 1), np.float32), "net.2.weight": np.zeros((1, 8, 1, 1), np.float32)}
    assert describe(pixel) == "the 1x1 pixel discriminator"
