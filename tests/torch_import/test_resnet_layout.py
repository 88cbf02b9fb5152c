import os

import numpy as np
import pytest

from tf_cyclegan.torch_import.checkpoint import CheckpointError, read_state_dict
from tf_cyclegan.torch_import.resnet_layout import read_resnet_generator

LAYOUTS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch_layouts")
REFERENCE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch")
CUT_G = os.path.join(LAYOUTS, "cut_run", "latest_net_G.pth")


def state(path):
    return read_state_dict(path)


def layout(path_or_state):
    found = state(path_or_state) if isinstance(path_or_state, str) else path_or_state
    return read_resnet_generator(found, "SUPPORTED")


@pytest.mark.parametrize("path, affine, use_bias, sampling", [
    (os.path.join(REFERENCE, "gen.pth"), False, True, "reference"),
    (os.path.join(LAYOUTS, "block_affine.pth"), True, True, "reference"),
    (os.path.join(LAYOUTS, "nested_dataparallel.pth"), False, True, "reference"),
    (os.path.join(LAYOUTS, "flat_no_bias.pth"), True, False, "reference"),
    (os.path.join(LAYOUTS, "upsample_conv.pth"), False, True, "resize"),
    (CUT_G, False, True, "antialiased"),
    (os.path.join(LAYOUTS, "cut_no_antialias.pth"), False, True, "reference"),
])
def test_the_architecture_is_read_from_the_shapes(path, affine, use_bias, sampling):
    found = layout(path)
    assert (found.affine, found.use_bias, found.sampling) == (affine, use_bias, sampling)
    assert found.channels == 3 and found.head.shape[0] == 3
    assert len(found.blocks) == (5 if path == CUT_G else 2)


def test_what_the_file_cannot_say_is_listed():
    plain = layout(os.path.join(LAYOUTS, "nested_dataparallel.pth")).assumptions
    assert any("stride 2" in line for line in plain)
    assert any("taking each pair in the file's order" in line for line in plain)
    assert any("instance norm without learned scale" in line for line in plain)
    resize = " ".join(layout(os.path.join(LAYOUTS, "upsample_conv.pth")).assumptions)
    assert "mode='nearest'" in resize and "bilinear Upsample or zero padding would compute differently" in resize
    assert not any("without learned scale" in line for line in layout(os.path.join(LAYOUTS, "block_affine.pth"))
                   .assumptions)


def test_a_file_sorted_as_text_is_read_in_its_numbers_order_and_says_so():
    original = state(os.path.join(REFERENCE, "gen_affine.pth"))
    found = layout({key: original[key] for key in sorted(original)})
    assert found.assumptions[0].startswith("the file lists its tensors out of the network's order")
    assert [conv.path for conv in found.convolutions] == [conv.path for conv in layout(original).convolutions]


def _replaced(path, changes):
    """The state dict at `path` with some tensors replaced (None: removed)."""
    found = state(path)
    for key, value in changes.items():
        if value is None:
            del found[key]
        else:
            found[key] = value
    return found


def test_a_sub_pixel_upsampling_is_refused_naming_it():
    # A PixelShuffle generator's first upsampling convolution makes 4x the output's channels.
    shuffled = _replaced(os.path.join(LAYOUTS, "upsample_conv.pth"), {
        "model.14.weight": np.zeros((32, 16, 3, 3), np.float32), "model.14.bias": np.zeros((32,), np.float32)})
    with pytest.raises(CheckpointError, match=r"4x the channels: a sub-pixel upsampling \(PixelShuffle\)"):
        layout(shuffled)


def test_an_upsampling_of_another_kernel_is_refused_naming_it():
    wide = _replaced(os.path.join(LAYOUTS, "upsample_conv.pth"), {
        "model.14.weight": np.zeros((8, 16, 5, 5), np.float32)})
    with pytest.raises(CheckpointError, match=r"upsampling by a 5x5 convolution after an upsampling.*ours are 3x3"):
        layout(wide)


def test_one_transposed_and_one_resize_upsampling_is_refused():
    generator = state(os.path.join(LAYOUTS, "upsample_conv.pth"))
    generator["model.14.weight"] = np.ascontiguousarray(generator["model.14.weight"].transpose(1, 0, 2, 3))
    with pytest.raises(CheckpointError, match="one upsampling a transposed convolution, the other a convolution"):
        layout(generator)


def test_cut_variants_without_both_anti_aliased_samplings_are_refused_naming_them():
    with pytest.raises(CheckpointError, match="--no_antialias_up"):
        layout(os.path.join(LAYOUTS, "cut_no_antialias_up.pth"))
    # --no_antialias alone: blurred upsampling after stride-2 convolutions.
    no_down_blur = _replaced(CUT_G, {"model.7.filt": None, "model.11.filt": None})
    with pytest.raises(CheckpointError, match="--no_antialias\\)"):
        layout(no_down_blur)


def test_a_blur_filter_that_is_not_the_official_one_is_refused():
    other = _replaced(CUT_G, {"model.7.filt": np.full((8, 1, 3, 3), 1 / 9, np.float32)})
    with pytest.raises(CheckpointError, match=r"3x3 blur of 8 channels \(model.7\) is not the official CUT's fixed"):
        layout(other)


def test_norms_after_some_convolutions_only_are_refused():
    partial = _replaced(os.path.join(LAYOUTS, "block_affine.pth"), {"model.2.weight": None, "model.2.bias": None})
    with pytest.raises(CheckpointError, match=r"norms after some convolutions and none after others \(model.1\)"):
        layout(partial)


def test_a_wrong_shape_in_the_middle_is_named():
    odd = _replaced(os.path.join(LAYOUTS, "block_affine.pth"), {"model.4.weight": np.zeros((8, 4, 5, 5), np.float32)})
    with pytest.raises(CheckpointError, match=r"5x5 conv 4->8 \(model.4\) is not the 3x3 4->8 convolution"):
        layout(odd)
