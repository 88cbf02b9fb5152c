"""Translation error against ground truth, where a paired test set exists.

The synthetic dataset's `testB_paired/` holds the exact B-domain rendering of each
testA image; comparing the translation with it, and the untranslated input with it
(the do-nothing baseline), says how much of the mapping the model has learned.
"""

import os

import numpy as np

import tensorflow as tf

from tf_cyclegan.data import decode_image, list_images, to_minus_one_one, to_uint8
from tf_cyclegan.inference import translate


def mae_and_psnr(prediction, target):
    """Mean absolute error and PSNR (dB) of images in [0, 1]; PSNR capped at 100 dB."""
    prediction = np.asarray(prediction, np.float64)
    target = np.asarray(target, np.float64)
    mae = float(np.mean(np.abs(prediction - target)))
    mse = float(np.mean((prediction - target) ** 2))
    psnr = 100.0 if mse <= 1e-10 else float(min(100.0, 10 * np.log10(1.0 / mse)))
    return mae, psnr


def _read_uint8(path):
    return decode_image(tf.io.read_file(os.fspath(path)))


def _unit(image_uint8):
    return np.asarray(image_uint8, np.float64) / 255.0


def paired_translation_error(gen_a2b, test_a_dir, paired_dir):
    """Mean MAE and PSNR over the test set, in [0, 1] pixel units, for model and baseline.

    Translated images are rounded to 8 bits first, as a saved image would be.
    """
    paths_a = list_images(test_a_dir)
    model_scores, baseline_scores = [], []
    for path_a in paths_a:
        path_paired = os.path.join(os.fspath(paired_dir), os.path.basename(path_a))
        if not os.path.exists(path_paired):
            raise FileNotFoundError(f"No ground truth for {path_a}: expected {path_paired}")
        real_a = _read_uint8(path_a)
        target = _unit(_read_uint8(path_paired))
        fake_b = _unit(to_uint8(translate(gen_a2b, to_minus_one_one(real_a))))
        model_scores.append(mae_and_psnr(fake_b, target))
        baseline_scores.append(mae_and_psnr(_unit(real_a), target))
    model_mae, model_psnr = np.mean(model_scores, axis=0)
    base_mae, base_psnr = np.mean(baseline_scores, axis=0)
    return {
        "images": len(paths_a),
        "model": {"mae": float(model_mae), "psnr": float(model_psnr)},
        "baseline": {"mae": float(base_mae), "psnr": float(base_psnr)},
        "error_ratio": float(model_mae / base_mae) if base_mae > 0 else float("nan"),
    }
