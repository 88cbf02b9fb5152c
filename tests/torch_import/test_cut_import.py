import os

import numpy as np
import pytest
from conftest import assert_computes_as_pytorch

from tf_cyclegan.torch_import.checkpoint import CheckpointError, read_state_dict
from tf_cyclegan.torch_import.convert import read_generator_layout
from tf_cyclegan.torch_import.cut import (
    cut_discriminator_from_state_dict,
    cut_generator_from_layout,
    feature_head_from_state_dict,
)

LAYOUTS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch_layouts")
RUN = os.path.join(LAYOUTS, "cut_run")
OUTPUTS = np.load(os.path.join(LAYOUTS, "outputs.npz"))


def state(*path):
    return read_state_dict(os.path.join(*path))


@pytest.mark.onednn  # fidelity to the official code, on both kernel libraries
@pytest.mark.parametrize("path", [(RUN, "latest_net_G.pth"), (LAYOUTS, "cut_G_legacy_format.pth")])
def test_the_official_cut_generator_computes_what_pytorch_computed(path):
    generator = cut_generator_from_layout(read_generator_layout(state(*path)))
    assert generator.get_layer("down1_blur") and generator.get_layer("up1_blur")
    assert len([layer for layer in generator.layers if layer.name.endswith("_add")]) == 5
    assert_computes_as_pytorch(generator, OUTPUTS, "cut_G", ("square", "oblong"), atol=1e-4)


@pytest.mark.onednn
def test_the_official_cut_discriminator_computes_what_pytorch_computed():
    discriminator = cut_discriminator_from_state_dict(state(RUN, "latest_net_D.pth"))
    assert_computes_as_pytorch(discriminator, OUTPUTS, "cut_D", ("square", "oblong"), atol=1e-4)


@pytest.mark.onednn
def test_the_official_feature_head_projects_what_pytorch_projected():
    from tf_cyclegan.models.cut_generator import build_feature_extractor

    head = feature_head_from_state_dict(state(RUN, "latest_net_F.pth"))
    assert head.channels == [3, 8, 16, 16, 16] and head.units == 16
    generator = cut_generator_from_layout(read_generator_layout(state(RUN, "latest_net_G.pth")))
    features = build_feature_extractor(generator)(OUTPUTS["input_square"])
    sampled = head(features, [OUTPUTS[f"cut_F_ids_{i}"] for i in range(5)])
    for i, ours in enumerate(sampled):
        assert np.abs(ours.numpy() - OUTPUTS[f"cut_F_{i}"]).max() <= 1e-4, i


def test_a_cut_generator_with_affine_norms_is_refused_naming_them():
    generator = state(RUN, "latest_net_G.pth")
    for conv in ("model.1", "model.4", "model.8", "model.18", "model.22") + tuple(
            f"model.{12 + b}.conv_block.{c}" for b in range(5) for c in (1, 5)):
        channels = generator[f"{conv}.weight"].shape[0]
        index = conv.rsplit(".", 1)
        generator[f"{index[0]}.{int(index[1]) + 1}.weight"] = np.ones((channels,), np.float32)
        generator[f"{index[0]}.{int(index[1]) + 1}.bias"] = np.zeros((channels,), np.float32)
    numbers = sorted(generator, key=lambda key: [int(p) if p.isdigit() else -1 for p in key.split(".")[:-1]])
    layout = read_generator_layout({key: generator[key] for key in numbers})
    assert layout.affine and layout.sampling == "antialiased"
    with pytest.raises(CheckpointError, match="affine instance norm"):
        cut_generator_from_layout(layout)


def test_a_cyclegan_discriminator_is_no_cut_discriminator():
    reference = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch", "disc.pth")
    with pytest.raises(CheckpointError, match=r"no anti-aliased downsampling \(--no_antialias\), not the official CUT"):
        cut_discriminator_from_state_dict(read_state_dict(reference))


def test_a_generator_is_no_feature_head():
    with pytest.raises(CheckpointError, match="holds .* not the official CUT's feature head"):
        feature_head_from_state_dict(state(RUN, "latest_net_G.pth"))
