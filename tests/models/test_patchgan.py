import keras
import numpy as np
import pytest

from tf_cyclegan import build_patchgan_discriminator


def test_default_discriminator_has_the_reference_parameter_count():
    assert build_patchgan_discriminator().count_params() == 2_764_737


def test_70x70_patchgan_gives_30x30_logits_for_256_pixels():
    disc = build_patchgan_discriminator(filters=8)
    assert disc(np.zeros((1, 256, 256, 3), "float32")).shape == (1, 30, 30, 1)


def test_non_square_input_and_float32_logits_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    disc = build_patchgan_discriminator(filters=4)
    logits = keras.ops.convert_to_numpy(disc(np.zeros((2, 64, 96, 3), "float32")))
    assert logits.shape == (2, 6, 10, 1)
    assert logits.dtype == np.float32


def test_first_layer_has_no_normalisation():
    names = [layer.name for layer in build_patchgan_discriminator(filters=4).layers]
    assert "layer0_norm" not in names and "layer1_norm" in names


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match="num_layers=0"):
        build_patchgan_discriminator(num_layers=0)
