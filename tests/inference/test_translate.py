import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_cyclegan import build_resnet_generator
from tf_cyclegan.inference.translate import (
    MIN_SIZE,
    blend_window,
    grow_to,
    pad_to_multiple,
    tile_starts,
    translate,
    translate_tiled,
)


def test_tiles_cover_the_image_and_end_at_its_edge():
    assert tile_starts(100, 100, 80) == [0]
    assert tile_starts(50, 64, 48) == [0]
    starts = tile_starts(300, 128, 96)
    assert starts[0] == 0 and starts[-1] == 300 - 128
    assert all(b - a <= 96 for a, b in zip(starts, starts[1:]))


def test_window_ramps_over_the_overlap():
    window = blend_window(16, 4)[..., 0]
    assert window.shape == (16, 16) and window[8, 8] == 1
    np.testing.assert_allclose(window[8, :4], [1e-3, 0.25, 0.5, 0.75])  # outer quarter ~0, then a ramp
    np.testing.assert_allclose(window[8, -4:], [0.75, 0.5, 0.25, 1e-3])
    assert np.all(window > 0)


@pytest.mark.parametrize("shape", [(200, 333, 3), (40, 90, 3), (64, 64, 3)])
def test_blending_reproduces_any_pointwise_function_exactly(shape):
    image = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    out = translate_tiled(np.tanh, image, tile=64, overlap=16)
    assert out.shape == shape
    np.testing.assert_allclose(out, np.tanh(image), atol=1e-6)


def test_tiled_generator_matches_the_full_image_without_seams():
    """On a statistically uniform image, per-tile instance-norm statistics match the whole
    image's, so tiling must reproduce the full pass; any seam would show at tile edges."""
    keras.utils.set_random_seed(0)
    gen = build_resnet_generator(filters=8, num_residual_blocks=2)
    rng = np.random.default_rng(1)
    image = np.tanh(rng.normal(size=(384, 640, 3)) + np.array([0.3, -0.2, 0.1])).astype(np.float32)
    full = translate(gen, image).numpy()
    tiled = translate_tiled(lambda piece: translate(gen, piece).numpy(), image, tile=256, overlap=64)
    difference = np.abs(tiled - full)[8:-8, 8:-8]
    # Tolerances stated in the README: max 0.08 and mean 0.01 in [-1, 1] units, with 256-pixel
    # tiles, 64 overlapping (random initialisations seeded 0-5 gave max 0.058-0.074, mean
    # 0.007-0.008; this one 0.058 / 0.007).
    assert difference.max() < 0.08 and difference.mean() < 0.01, (difference.max(), difference.mean())
    # Seams: across every line where tiles meet, the tiled output's jump between neighbouring
    # pixels is no bigger than the full output's there, beyond 0.06.
    for column in (192, 208, 240, 256, 384, 400, 432, 448):
        jump_tiled = np.abs(tiled[:, column] - tiled[:, column - 1]).max()
        jump_full = np.abs(full[:, column] - full[:, column - 1]).max()
        assert jump_tiled < jump_full + 0.06, column
    for row in (128, 144, 176, 192, 256):
        jump_tiled = np.abs(tiled[row] - tiled[row - 1]).max()
        jump_full = np.abs(full[row] - full[row - 1]).max()
        assert jump_tiled < jump_full + 0.06, row


def test_overlap_must_leave_a_core():
    with pytest.raises(ValueError, match="overlap"):
        translate_tiled(np.tanh, np.zeros((8, 8, 3)), tile=8, overlap=4)


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(0)
    return build_resnet_generator(filters=4, num_residual_blocks=1)


def test_pad_to_multiple_reflects_at_the_bottom_and_right_and_reports_the_size():
    image = tf.reshape(tf.range(9 * 10, dtype=tf.float32), (1, 9, 10, 1))
    padded, height, width = pad_to_multiple(image)
    assert padded.shape == (1, 12, 12, 1) and (int(height), int(width)) == (9, 10)
    np.testing.assert_array_equal(padded[0, :9, :10, 0], image[0, ..., 0])
    np.testing.assert_array_equal(padded[0, 9, :10, 0], image[0, 7, :, 0])  # reflected: the edge row not repeated
    already, _, _ = pad_to_multiple(tf.zeros((2, 8, 16, 3)))
    assert already.shape == (2, 8, 16, 3)


@pytest.mark.parametrize("size, grown", [((1, 1), (8, 8)), ((3, 20), (8, 20)), ((5, 7), (8, 8)), ((8, 9), (8, 9))])
def test_grow_to_mirrors_images_up_to_the_minimum_size(size, grown):
    image = tf.random.stateless_uniform((2, *size, 3), seed=(1, 2))
    out = grow_to(image)
    assert tuple(out.shape) == (2, *grown, 3) and MIN_SIZE == 8
    np.testing.assert_array_equal(out[:, :size[0], :size[1]], image)
    if size == (1, 1):  # a single pixel can only be repeated
        np.testing.assert_array_equal(out, tf.broadcast_to(image, out.shape))


@pytest.mark.parametrize("upsampling", ["transpose", "resize"])
@pytest.mark.parametrize("size", [(7, 9), (13, 21), (33, 18)])
def test_every_upsampling_translates_odd_sizes_to_their_own_size(upsampling, size):
    generator = build_resnet_generator(filters=4, num_residual_blocks=1, upsampling=upsampling)
    image = np.random.default_rng(5).uniform(-1, 1, (*size, 3)).astype(np.float32)
    out = translate(generator, image)
    assert out.shape == (*size, 3) and np.all(np.abs(out) <= 1)
    tiled = translate_tiled(lambda tile: translate(generator, tile).numpy(), image, tile=8, overlap=2)
    assert tiled.shape == (*size, 3)


@pytest.mark.parametrize("size", [(1, 1), (6, 10), (13, 21), (32, 32)])
def test_translate_keeps_the_size_and_matches_the_generator_where_no_padding_is_needed(generator, size):
    image = np.random.default_rng(2).uniform(-1, 1, (*size, 3)).astype(np.float32)
    out = translate(generator, image)  # one image (H, W, 3) in, one out
    assert out.shape == (*size, 3) and out.dtype == tf.float32
    batch = translate(generator, np.stack([image, -image]))
    assert batch.shape == (2, *size, 3)
    if size != (1, 1):  # (a 1x1 image grows to a constant one, whose instance norm only amplifies rounding)
        np.testing.assert_allclose(batch[0], out, atol=1e-5)
    if size == (32, 32):
        np.testing.assert_allclose(out, generator(image[None], training=False)[0], atol=1e-6)
