import os

import numpy as np
import pytest
from conftest import assert_computes_as_pytorch

from tf_cyclegan.models.resnet_generator import build_resnet_generator, generator_alignment, generator_upsampling
from tf_cyclegan.torch_import.checkpoint import CheckpointError, read_state_dict
from tf_cyclegan.torch_import.convert import discriminator_from_state_dict, generator_from_state_dict

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch")
OUTPUTS = np.load(os.path.join(FIXTURES, "outputs.npz"))
INPUTS = ("square", "oblong")  # 64x64 and 40x56, both kept in size by the generator


def state(name):
    return read_state_dict(os.path.join(FIXTURES, name))


@pytest.mark.onednn  # fidelity to PyTorch, on both kernel libraries
@pytest.mark.parametrize("file, reference", [
    ("gen.pth", "gen"), ("gen_legacy_format.pth", "gen"), ("gen_dataparallel_running_stats.pth", "gen"),
    ("gen_affine.pth", "gen_affine"),
])
def test_the_generator_computes_what_pytorch_computed(file, reference):
    generator = generator_from_state_dict(state(file))
    assert generator_alignment(generator) == "reference"
    assert_computes_as_pytorch(generator, OUTPUTS, reference, INPUTS, atol=1e-5)


@pytest.mark.onednn
@pytest.mark.parametrize("file, reference", [
    ("disc.pth", "disc"), ("disc_legacy_format.pth", "disc"), ("disc_affine.pth", "disc_affine"),
])
def test_the_discriminator_computes_what_pytorch_computed(file, reference):
    discriminator = discriminator_from_state_dict(state(file))
    assert_computes_as_pytorch(discriminator, OUTPUTS, reference, INPUTS, atol=1e-5)


def test_the_architecture_is_read_from_the_file():
    generator = generator_from_state_dict(state("gen_affine.pth"), name="gen_b2a")
    assert generator.name == "gen_b2a"
    assert generator.get_layer("stem_conv").filters == 8
    assert len([layer for layer in generator.layers if layer.name.endswith("_add")]) == 2
    assert generator.get_layer("stem_norm").affine
    assert not generator_from_state_dict(state("gen.pth")).get_layer("stem_norm").affine
    assert discriminator_from_state_dict(state("disc.pth")).get_layer("layer0_conv").filters == 8


def test_keras_same_alignment_with_the_same_weights_is_a_different_network():
    # What the test above guards: the generator versions up to 0.2.0 built has the same
    # parameters but samples one pixel off; with the reference's weights its output differs.
    converted = generator_from_state_dict(state("gen.pth"))
    shifted = build_resnet_generator(filters=8, num_residual_blocks=2, alignment="keras_same")
    shifted.set_weights(converted.get_weights())
    x = OUTPUTS["input_square"]
    assert np.abs(shifted(x).numpy() - OUTPUTS["gen_square"]).max() > 0.05


def test_a_unet_generator_is_refused_naming_it():
    unet = {"model.model.0.weight": np.zeros((8, 3, 4, 4), np.float32),
            "model.model.1.model.1.weight": np.zeros((16, 8, 4, 4), np.float32)}
    with pytest.raises(CheckpointError, match="U-Net generator.*supported: a ResNet generator"):
        generator_from_state_dict(unet)


def test_batch_norm_is_refused_naming_it():
    # The reference's --norm batch: convolutions before a norm without bias, every norm with a
    # learned scale and offset and running statistics.
    batch_norm = {key: value for key, value in state("gen.pth").items()
                  if not (key.endswith(".bias") and key != "model.19.bias")}
    norms = ["model.2", "model.5", "model.8", "model.13", "model.16"] + [
        f"model.{block}.conv_block.{index}" for block in (10, 11) for index in (2, 6)]
    for norm in norms:
        channels = 32 if "conv_block" in norm or norm == "model.8" else 16 if norm in ("model.5", "model.13") else 8
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            batch_norm[f"{norm}.{name}"] = np.full((channels,), value, np.float32)
    numbers = sorted(batch_norm, key=lambda key: [int(p) if p.isdigit() else -1 for p in key.split(".")[:-1]])
    with pytest.raises(CheckpointError, match="batch norm"):
        generator_from_state_dict({key: batch_norm[key] for key in numbers})


def test_a_discriminator_given_as_a_generator_says_what_the_file_holds():
    with pytest.raises(CheckpointError, match="holds a PatchGAN discriminator of 5 4x4 convolutions, not a ResNet "
                                              "generator"):
        generator_from_state_dict(state("disc.pth"))
    with pytest.raises(CheckpointError, match="not the reference's PatchGAN"):
        discriminator_from_state_dict(state("gen.pth"))


def test_a_network_of_another_architecture_is_refused_saying_what_it_holds():
    with pytest.raises(CheckpointError, match=r"1 tensor\(s\) in 1 layer\(s\): 1 convolution\(s\), the first a 3x3 "
                                              r"conv 3->8 \(encoder.0\), not a ResNet generator.*1 convolutions: not"):
        generator_from_state_dict({"encoder.0.weight": np.zeros((8, 3, 3, 3), np.float32)})


LAYOUTS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch_layouts")
LAYOUT_OUTPUTS = np.load(os.path.join(LAYOUTS, "outputs.npz"))


@pytest.mark.onednn  # fidelity to PyTorch, on both kernel libraries
@pytest.mark.parametrize("file, reference, affine, use_bias", [
    ("block_affine.pth", "block_affine", True, True),  # residual blocks naming their sequence `block`
    ("block_affine_legacy_format.pth", "block_affine", True, True),
    ("nested_dataparallel.pth", "nested_dataparallel", False, True),  # nested sequences, `module.`, older format
    ("flat_no_bias.pth", "flat_no_bias", True, False),  # one top-level list, `conv1`/`norm1` attributes
    ("cut_no_antialias.pth", "cut_no_antialias", False, True),  # the CUT code's --no_antialias --no_antialias_up
])
def test_a_generator_of_the_reference_architecture_under_any_names_computes_what_pytorch_computed(
        file, reference, affine, use_bias):
    generator = generator_from_state_dict(read_state_dict(os.path.join(LAYOUTS, file)))
    assert generator_alignment(generator) == "reference" and generator_upsampling(generator) == "transpose"
    assert generator.get_layer("stem_norm").affine is affine
    assert (len(generator.get_layer("stem_conv").weights) == 2) is use_bias
    assert_computes_as_pytorch(generator, LAYOUT_OUTPUTS, reference, ("square", "oblong"), atol=1e-5)


@pytest.mark.onednn
def test_an_upsample_and_conv_generator_becomes_a_resize_generator_computing_the_same(caplog):
    with caplog.at_level("INFO"):
        generator = generator_from_state_dict(read_state_dict(os.path.join(LAYOUTS, "upsample_conv.pth")),
                                              source="upsample_conv.pth")
    assert generator_upsampling(generator) == "resize"
    assert "upsample_conv.pth read as a ResNet generator of 4 filters, 2 residual block(s)" in caplog.text
    assert "mode='nearest'" in caplog.text
    for name in ("square", "oblong"):
        ours = generator(LAYOUT_OUTPUTS[f"input_{name}"]).numpy()
        assert np.abs(ours - LAYOUT_OUTPUTS[f"upsample_conv_{name}"]).max() <= 1e-5


def test_the_official_cut_generator_is_no_cyclegan_generator():
    with pytest.raises(CheckpointError, match="the official CUT generator.*builds it as our CUT generator"):
        generator_from_state_dict(read_state_dict(os.path.join(LAYOUTS, "cut_run", "latest_net_G.pth")))


def test_the_official_cut_discriminator_is_no_cyclegan_discriminator():
    with pytest.raises(CheckpointError, match="anti-aliased downsampling.*import its run folder as a CUT model"):
        discriminator_from_state_dict(read_state_dict(os.path.join(LAYOUTS, "cut_run", "latest_net_D.pth")))


def test_a_discriminator_under_other_names_computes_what_pytorch_computed():
    renamed = {key.replace("model.", "net.layers."): value for key, value in state("disc_affine.pth").items()}
    discriminator = discriminator_from_state_dict(renamed)
    ours = discriminator(OUTPUTS["input_oblong"]).numpy()
    assert np.abs(ours - OUTPUTS["disc_affine_oblong"]).max() <= 1e-5
