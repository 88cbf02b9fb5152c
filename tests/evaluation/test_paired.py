import keras
import numpy as np
import pytest

from tf_cyclegan.data.images import list_images, load_image
from tf_cyclegan.data.synthetic import OUTLINE_DARKNESS, restyle
from tf_cyclegan.evaluation.paired import check_paired_test_set, mae_and_psnr, paired_translation_error


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


def _paired_copy(demo_root, tmp_path):
    """A copy of the demo dataset's testA/ and testB_paired/ to spoil."""
    import shutil

    for split in ("testA", "testB_paired"):
        shutil.copytree(demo_root / split, tmp_path / split)
    return tmp_path


def _no_tensorflow_work(monkeypatch):
    """Makes every TensorFlow read or decode of an image fail the test."""
    import tensorflow as tf

    from tf_cyclegan.data import images

    def forbidden(*args, **kwargs):
        raise AssertionError("TensorFlow work in a check that must run before the strategy exists")

    monkeypatch.setattr(tf.io, "read_file", forbidden)
    monkeypatch.setattr(images, "decode_image", forbidden)


@pytest.mark.parametrize("spoil, message", [
    (lambda root: (root / "testB_paired" / "0001.png").unlink(),
     r"testA/0001\.png has no ground truth: .*testB_paired/0001\.png does not exist"),
    (lambda root: Image_save(np.zeros((20, 36, 3), np.uint8), root / "testB_paired" / "0002.png"),
     r"testA/0002\.png is 36x36 pixels, its ground truth .*testB_paired/0002\.png 36x20 pixels"),
])
def test_a_missing_or_differently_sized_ground_truth_is_one_error_naming_both_files(
        demo_root, tmp_path, monkeypatch, spoil, message):
    root = _paired_copy(demo_root, tmp_path)
    spoil(root)
    _no_tensorflow_work(monkeypatch)
    with pytest.raises(ValueError, match=message):
        check_paired_test_set(root)


def Image_save(pixels, path):  # noqa: N802 - reads as Pillow's own call
    from PIL import Image

    Image.fromarray(pixels).save(path)


def test_an_unreadable_ground_truth_is_skipped_with_a_warning_naming_it(demo_root, tmp_path, monkeypatch, caplog):
    import logging

    root = _paired_copy(demo_root, tmp_path)
    good = (root / "testB_paired" / "0000.png").read_bytes()
    (root / "testB_paired" / "0000.png").write_bytes(good[:100])  # "Invalid PNG data, size 100" once
    with monkeypatch.context() as patched, caplog.at_level(logging.WARNING):
        _no_tensorflow_work(patched)
        truths = check_paired_test_set(root)
    assert truths == {"0000.png": None, "0001.png": str(root / "testB_paired" / "0001.png"),
                      "0002.png": str(root / "testB_paired" / "0002.png")}
    assert "Skipping unreadable ground truth" in caplog.text and "testB_paired/0000.png" in caplog.text
    result = paired_translation_error(_generator(lambda x: x), root / "testA", root / "testB_paired")
    assert result["images"] == 2 and result["baseline"]["mae"] > 0


def test_nothing_to_check_without_a_paired_folder_and_an_error_without_test_images(demo_root, tmp_path):
    assert check_paired_test_set(None) is None
    assert check_paired_test_set(tmp_path) is None  # no testB_paired/
    (tmp_path / "testB_paired").mkdir()
    with pytest.raises(ValueError, match="testA does not exist"):
        check_paired_test_set(tmp_path)
    (tmp_path / "testA").mkdir()
    (tmp_path / "testA" / "0000.png").write_text("not an image")
    with pytest.raises(ValueError, match="No readable images in .*testA"):
        check_paired_test_set(tmp_path)
