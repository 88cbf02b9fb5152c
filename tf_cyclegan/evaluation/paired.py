"""Translation error against ground truth, where a paired test set exists.

The synthetic dataset's `testB_paired/` holds the exact B-domain rendering of each
testA image; comparing the translation with it, and the untranslated input with it
(the do-nothing baseline), says how much of the mapping the model has learned.
"""

import os

import numpy as np
import tensorflow as tf

from tf_cyclegan.data.images import list_images, load_image, read_image, to_uint8
from tf_cyclegan.inference.translate import translate


def mae_and_psnr(prediction, target):
    """Mean absolute error and PSNR (dB) of images in [0, 1]; PSNR capped at 100 dB."""
    prediction = np.asarray(prediction, np.float64)
    target = np.asarray(target, np.float64)
    mae = float(np.mean(np.abs(prediction - target)))
    mse = float(np.mean((prediction - target) ** 2))
    psnr = 100.0 if mse <= 1e-10 else float(min(100.0, 10 * np.log10(1.0 / mse)))
    return mae, psnr


def _read_unit(path):
    return read_image(path).numpy().astype(np.float64) / 255.0


def _quantise(image):
    """A [-1, 1] image as a saved 8-bit image would be, in [0, 1]."""
    return to_uint8(image).numpy().astype(np.float64) / 255.0


def paired_scores(fakes, sources, paired_paths):
    """Mean MAE, PSNR and SSIM ([0, 1] pixel units) of translations and of the untranslated
    inputs (the do-nothing baseline) against ground truth. Translations are rounded to 8
    bits first, as a saved image would be.

    Returns:
        (model scores, baseline scores), each {"mae", "psnr", "ssim"}.
    """
    model, baseline = [], []
    for fake, source, path in zip(fakes, sources, paired_paths):
        target = _read_unit(path)
        for scores, image in ((model, _quantise(fake)), (baseline, _quantise(source))):
            mae, psnr = mae_and_psnr(image, target)
            ssim = float(tf.image.ssim(tf.constant(image, tf.float32), tf.constant(target, tf.float32), 1.0))
            scores.append((mae, psnr, ssim))
    keys = ("mae", "psnr", "ssim")
    return ({k: float(v) for k, v in zip(keys, np.mean(model, axis=0))},
            {k: float(v) for k, v in zip(keys, np.mean(baseline, axis=0))})


def paired_paths_for(source_paths, paired_dir):
    """The ground-truth file of each source image (same name in `paired_dir`); all must exist."""
    paired = [os.path.join(os.fspath(paired_dir), os.path.basename(p)) for p in source_paths]
    missing = [p for p in paired if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"No ground truth for {len(missing)} test image(s), e.g. {missing[0]}")
    return paired


def paired_translation_error(gen_a2b, test_a_dir, paired_dir):
    """The error of `gen_a2b` on every testA image against ground truth, next to the baseline's."""
    paths_a = list_images(test_a_dir)
    sources = [load_image(path).numpy() for path in paths_a]
    fakes = [translate(gen_a2b, source).numpy() for source in sources]
    model, baseline = paired_scores(fakes, sources, paired_paths_for(paths_a, paired_dir))
    return {
        "images": len(paths_a), "model": model, "baseline": baseline,
        "error_ratio": model["mae"] / baseline["mae"] if baseline["mae"] > 0 else float("nan"),
    }
