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


@pytest.mark.parametrize("num_residual_blocks", [9, 6])
def test_resize_upsampling_has_as_many_parameters_as_the_transposed_convolutions(num_residual_blocks):
    transpose = build_resnet_generator(num_residual_blocks=num_residual_blocks)
    resize = build_resnet_generator(num_residual_blocks=num_residual_blocks, upsampling="resize")
    assert resize.count_params() == transpose.count_params()
    assert resize.get_layer("up1_conv").kernel.shape == (3, 3, 256, 128)  # a convolution's, in -> out
    assert transpose.get_layer("up1_conv").kernel.shape == (3, 3, 128, 256)  # a transposed one's, out <- in


def test_the_upsampling_is_read_back_from_a_built_or_reloaded_generator(tmp_path):
    from tf_cyclegan.models.resnet_generator import generator_upsampling

    resize = build_resnet_generator(filters=4, num_residual_blocks=1, upsampling="resize")
    resize.save(tmp_path / "gen.keras")
    loaded = keras.saving.load_model(tmp_path / "gen.keras")
    assert generator_upsampling(loaded) == "resize"
    assert generator_upsampling(build_resnet_generator(filters=4, num_residual_blocks=1)) == "transpose"
    x = np.random.default_rng(0).uniform(-1, 1, (1, 20, 12, 3)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(resize(x)))
    with pytest.raises(ValueError, match="upsampling='bilinear'"):
        build_resnet_generator(upsampling="bilinear")


@pytest.mark.parametrize("seed", [0, 1])
def test_only_the_transposed_convolutions_print_a_grid_before_any_training(seed):
    # Uneven overlap (a 3x3 kernel at stride 2) makes a period-2 pattern even from random
    # weights; a resize then a convolution covers every pixel alike (Odena et al. 2016).
    from tf_cyclegan.evaluation.checkerboard import checkerboard_score

    y, x = np.mgrid[:64, :64]
    smooth = 0.8 * np.stack([np.sin(x / 9) * np.cos(y / 7), np.sin((x + y) / 11), np.cos(x / 13)], -1)[None]
    scores = {}
    for upsampling in ("transpose", "resize"):
        keras.utils.set_random_seed(seed)
        generator = build_resnet_generator(filters=8, num_residual_blocks=1, upsampling=upsampling)
        scores[upsampling] = checkerboard_score(keras.ops.convert_to_numpy(generator(smooth.astype("float32"))))
    assert scores["transpose"] > 3.0 and scores["resize"] < 1.5, scores
