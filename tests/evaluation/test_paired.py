import keras
import numpy as np
import pytest

from tf_cyclegan.data.images import list_images, load_image
from tf_cyclegan.data.synthetic import OUTLINE_DARKNESS, restyle
from tf_cyclegan.evaluation.paired import mae_and_psnr, paired_translation_error


def test_mae_and_psnr_by_hand():
    a = np.zeros((2, 2, 3))
    b = np.full((2, 2, 3), 0.1)
    mae, psnr = mae_and_psnr(a, b)
    assert mae == pytest.approx(0.1) and psnr == pytest.approx(20.0)
    assert mae_and_psnr(a, a) == (0.0, 100.0)


def _generator(fn):
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, keras.layers.Lambda(fn)(inputs))


def test_do_nothing_generator_scores_the_baseline(demo_root):
    result = paired_translation_error(_generator(lambda x: x), demo_root / "testA", demo_root / "testB_paired")
    assert result["images"] == 3
    assert result["model"]["mae"] == pytest.approx(result["baseline"]["mae"], abs=1e-7)
    # The baseline computed directly.
    maes = []
    for path in list_images(demo_root / "testA"):
        real_a = np.round((load_image(path).numpy() + 1) * 127.5).astype(np.uint8)
        maes.append(np.abs(real_a.astype(float) - restyle(real_a).astype(float)).mean() / 255)
    assert result["baseline"]["mae"] == pytest.approx(np.mean(maes), rel=1e-6)
    assert result["error_ratio"] == pytest.approx(1.0)


def _restyle_in_tf(x):
    """T of the synthetic dataset, written with TF ops: a generator that is exactly right."""
    import tensorflow as tf

    pixels = tf.round((x + 1.0) * 127.5)
    padded = tf.pad(pixels, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")  # edge replicate
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    boundary = tf.zeros(tf.shape(x)[:3], bool)
    for dy in range(3):
        for dx in range(3):
            neighbour = padded[:, dy:dy + height, dx:dx + width]
            boundary |= tf.reduce_any(tf.not_equal(neighbour, pixels), axis=-1)
    rotated = tf.gather(pixels, [2, 0, 1], axis=-1)
    out = tf.where(boundary[..., None], tf.round(rotated * OUTLINE_DARKNESS), rotated)
    return out / 127.5 - 1.0


def test_perfect_translation_scores_zero_error(demo_root):
    result = paired_translation_error(_generator(_restyle_in_tf), demo_root / "testA", demo_root / "testB_paired")
    assert result["model"]["mae"] == 0.0 and result["model"]["psnr"] == 100.0
    assert result["model"]["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert result["baseline"]["mae"] > 0.05 and result["error_ratio"] == 0.0
