import keras
import numpy as np
import pytest

from tf_cyclegan import build_resnet_generator


def test_default_generator_has_the_reference_parameter_count():
    assert build_resnet_generator().count_params() == 11_378_179


def test_six_block_variant_parameter_count():
    # Three fewer residual blocks, each two 3x3 256->256 convolutions with bias.
    per_block = 2 * (3 * 3 * 256 * 256 + 256)
    assert build_resnet_generator(num_residual_blocks=6).count_params() == 11_378_179 - 3 * per_block


@pytest.mark.parametrize("height,width", [(32, 48), (20, 64), (8, 8)])
def test_output_has_input_size_for_non_square_inputs(height, width):
    gen = build_resnet_generator(filters=4, num_residual_blocks=1)
    out = keras.ops.convert_to_numpy(gen(np.zeros((2, height, width, 3), "float32")))
    assert out.shape == (2, height, width, 3)
    assert out.dtype == np.float32


def test_output_is_in_tanh_range_and_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    gen = build_resnet_generator(filters=4, num_residual_blocks=1)
    out = keras.ops.convert_to_numpy(gen(np.random.uniform(-1, 1, (1, 16, 16, 3)).astype("float32")))
    assert out.dtype == np.float32
    assert np.all(np.abs(out) <= 1)


def test_weights_follow_the_paper_initialisation():
    gen = build_resnet_generator(filters=16, num_residual_blocks=1)  # 3x3x64x64 kernels: enough draws
    kernel = gen.get_layer("res1_conv1").kernel.numpy()
    assert abs(kernel.std() - 0.02) < 0.001 and abs(kernel.mean()) < 0.001
    assert np.all(gen.get_layer("res1_conv1").bias.numpy() == 0)


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    gen = build_resnet_generator(filters=4, num_residual_blocks=2)
    x = np.random.uniform(-1, 1, (1, 24, 16, 3)).astype("float32")
    gen.save(tmp_path / "gen.keras")
    loaded = keras.saving.load_model(tmp_path / "gen.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(gen(x)))


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match="filters=0"):
        build_resnet_generator(filters=0)
