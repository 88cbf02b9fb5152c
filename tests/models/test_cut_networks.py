"""CUT's generator and discriminator: shapes, parameters, initialisation, the PatchNCE taps,
and the same numbers as the official networks (tests/fixtures/cut/networks.npz)."""

import keras
import numpy as np
import pytest
from conftest import FIXTURES

from tf_cyclegan.models.cut_discriminator import build_cut_discriminator
from tf_cyclegan.models.cut_generator import (
    NCE_LAYERS,
    build_cut_generator,
    build_feature_extractor,
    default_nce_layers,
)
from tf_cyclegan.torch_import.cut import load_official_discriminator, load_official_generator


@pytest.fixture(scope="module")
def official():
    return dict(np.load(f"{FIXTURES}/cut/networks.npz"))


def test_the_default_networks_have_the_official_parameter_counts():
    assert build_cut_generator().count_params() == 11_378_179
    assert build_cut_discriminator().count_params() == 2_764_737


def test_generator_keeps_the_image_size_and_discriminator_gives_patch_logits():
    generator = build_cut_generator(filters=4, num_residual_blocks=1)
    assert generator(np.zeros((1, 32, 48, 3), "float32")).shape == (1, 32, 48, 3)
    discriminator = build_cut_discriminator(filters=4)
    assert discriminator(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 2, 2, 1)


def test_weights_start_xavier_normal_with_gain_0_02_and_zero_biases():
    generator = build_cut_generator(filters=16, num_residual_blocks=1)
    kernel = generator.get_layer("res1_conv1").kernel.numpy()
    fan_in = fan_out = 3 * 3 * 64
    assert np.std(kernel) == pytest.approx(0.02 * np.sqrt(2 / (fan_in + fan_out)), rel=0.05)
    assert not generator.get_layer("res1_conv1").bias.numpy().any()


def test_feature_extractor_gives_the_official_taps_and_shares_the_weights():
    generator = build_cut_generator(filters=4, num_residual_blocks=5)
    extractor = build_feature_extractor(generator, default_nce_layers(5))
    features = extractor(np.zeros((1, 16, 16, 3), "float32"))
    assert [tuple(f.shape) for f in features] == [(1, 22, 22, 3), (1, 16, 16, 8), (1, 8, 8, 16), (1, 4, 4, 16),
                                                  (1, 4, 4, 16)]
    assert {v.path for v in extractor.weights} <= {v.path for v in generator.weights}
    assert "head_conv" not in [layer.name for layer in extractor.layers]  # the encoder only


def test_nce_layers_are_checked():
    with pytest.raises(ValueError, match="num_residual_blocks=2"):
        default_nce_layers(2)
    with pytest.raises(ValueError, match="res7_add"):
        build_feature_extractor(build_cut_generator(filters=4, num_residual_blocks=2), ("stem_pad", "res7_add"))


def assert_close_to_scale(actual, desired, tolerance=1e-5, err_msg=""):
    """Within `tolerance` times the largest magnitude of `desired`: the residual blocks' sums
    reach 7 and differ from PyTorch's by float32 rounding (1.3e-5 there, 1.8e-6 of the scale);
    the discriminator's initial logits are below 1e-3, where 1e-5 absolute would test nothing."""
    np.testing.assert_allclose(actual, desired, rtol=0, atol=tolerance * np.abs(desired).max(), err_msg=err_msg)


@pytest.mark.onednn  # fidelity to the official code, on both kernel libraries
def test_networks_compute_what_the_official_networks_compute(official):
    generator = load_official_generator(build_cut_generator(filters=4, num_residual_blocks=9), official,
                                        prefix="generator/")
    discriminator = load_official_discriminator(build_cut_discriminator(filters=4), official, prefix="discriminator/")
    image = official["image"]
    assert_close_to_scale(generator(image).numpy(), official["generator_output"])
    assert_close_to_scale(discriminator(image).numpy(), official["discriminator_output"])
    for i, feature in enumerate(build_feature_extractor(generator, NCE_LAYERS)(image)):
        assert_close_to_scale(feature.numpy(), official[f"feature_{i}"], err_msg=NCE_LAYERS[i])


def test_networks_save_and_load(tmp_path):
    for network in (build_cut_generator(filters=4, num_residual_blocks=1), build_cut_discriminator(filters=4)):
        path = str(tmp_path / f"{network.name}.keras")
        network.save(path)
        x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
        np.testing.assert_array_equal(keras.saving.load_model(path)(x).numpy(), network(x).numpy())
