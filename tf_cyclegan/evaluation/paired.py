"""Translation error against ground truth, where a paired test set exists.

The synthetic dataset's `testB_paired/` holds the exact B-domain rendering of each
testA image; comparing the translation with it, and the untranslated input with it
(the do-nothing baseline), says how much of the mapping the model has learned.

The pairing is checked before any work (`check_paired_test_set`, at the start of training
and of `evaluate`), not after it: a testA image without its counterpart, or with one of
another size, stops everything with one error naming both files; an unreadable
ground-truth image is skipped with a warning naming it.
"""

import logging
import os

import numpy as np
import tensorflow as tf

from tf_cyclegan.data.images import (
    describe_error,
    image_names,
    list_images,
    load_image,
    read_image,
    to_uint8,
    viewed_size,
)
from tf_cyclegan.inference.translate import translate

logger = logging.getLogger(__name__)


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

    A None in `paired_paths` (an unreadable ground truth, see `paired_paths_for`) leaves that
    image out, as does a ground truth that cannot be read now (a warning names it).

    Returns:
        (model scores, baseline scores), each {"mae", "psnr", "ssim"}.

    Raises:
        ValueError: no image has a readable ground truth.
    """
    model, baseline = [], []
    for fake, source, path in zip(fakes, sources, paired_paths):
        if path is None:
            continue
        try:
            target = _read_unit(path)
        except (ValueError, tf.errors.OpError) as error:
            logger.warning("Skipping unreadable ground truth %s: %s", path, describe_error(error))
            continue
        if target.shape != source.shape:
            raise ValueError(f"The ground truth {path} is {_size(target.shape)}, its test image "
                             f"{_size(source.shape)}")
        for scores, image in ((model, _quantise(fake)), (baseline, _quantise(source))):
            mae, psnr = mae_and_psnr(image, target)
            ssim = float(tf.image.ssim(tf.constant(image, tf.float32), tf.constant(target, tf.float32), 1.0))
            scores.append((mae, psnr, ssim))
    if not model:
        raise ValueError(f"No readable ground truth for any of the {len(paired_paths)} test image(s) "
                         "(see the warnings)")
    keys = ("mae", "psnr", "ssim")
    return ({k: float(v) for k, v in zip(keys, np.mean(model, axis=0))},
            {k: float(v) for k, v in zip(keys, np.mean(baseline, axis=0))})


def _size(shape):
    return f"{shape[1]}x{shape[0]} pixels"


def paired_paths_for(source_paths, paired_dir):
    """The ground-truth file of each source image (the same name in `paired_dir`), checked
    with Pillow alone (no TensorFlow work); None where that file is unreadable, with a
    warning naming it.

    Raises:
        ValueError: naming both files, for a source image whose counterpart is missing or
            of another size.
    """
    paired = []
    for source in source_paths:
        truth = os.path.join(os.fspath(paired_dir), os.path.basename(source))
        if not os.path.lexists(truth):
            raise ValueError(f"The test image {source} has no ground truth: {truth} does not exist")
        try:
            truth_size = viewed_size(truth)
        except ValueError as error:
            logger.warning("Skipping unreadable ground truth %s: %s", truth, error)
            paired.append(None)
            continue
        try:
            source_size = viewed_size(source)
        except ValueError:  # an unreadable test image is skipped, and named, where it is listed
            source_size = truth_size
        if source_size != truth_size:
            raise ValueError(f"The test image {source} is {_size(source_size)}, its ground truth {truth} "
                             f"{_size(truth_size)}: they must be the same size")
        paired.append(truth)
    return paired


def check_paired_test_set(root):
    """Checks `root/testB_paired/` against `root/testA/` before any work, with Pillow alone
    (no TensorFlow work: training calls it before its `tf.distribute` strategy exists).

    Returns:
        None if `root` is None or has no `testB_paired/`; else {testA file name: its ground
        truth path, or None where that is unreadable (warned)}.

    Raises:
        ValueError: naming both files, for a testA image whose counterpart is missing or of
            another size; or testA/ is missing or holds no readable image; or no ground truth
            is readable.
    """
    paired_dir = os.path.join(os.fspath(root), "testB_paired") if root else None
    if paired_dir is None or not os.path.isdir(paired_dir):
        return None
    test_a = os.path.join(os.fspath(root), "testA")
    if not os.path.isdir(test_a):
        raise ValueError(f"{paired_dir} holds ground truth for testA/, but {test_a} does not exist")
    sources = []
    for path in image_names(test_a):
        try:
            viewed_size(path)
        except ValueError:  # skipped with a warning where testA is listed
            continue
        sources.append(path)
    if not sources:
        raise ValueError(f"No readable images in {test_a} to compare with the ground truth in {paired_dir}")
    truths = paired_paths_for(sources, paired_dir)
    if not any(truths):
        raise ValueError(f"No readable ground truth in {paired_dir} (every file was skipped, see the warnings)")
    return {os.path.basename(source): truth for source, truth in zip(sources, truths)}


def paired_translation_error(gen_a2b, test_a_dir, paired_dir):
    """The error of `gen_a2b` on every testA image against ground truth, next to the baseline's."""
    paths_a = list_images(test_a_dir)
    truths = paired_paths_for(paths_a, paired_dir)
    pairs = [(path, truth) for path, truth in zip(paths_a, truths) if truth is not None]
    sources = [load_image(path).numpy() for path, _ in pairs]
    fakes = [translate(gen_a2b, source).numpy() for source in sources]
    model, baseline = paired_scores(fakes, sources, [truth for _, truth in pairs])
    return {
        "images": len(pairs), "model": model, "baseline": baseline,
        "error_ratio": model["mae"] / baseline["mae"] if baseline["mae"] > 0 else float("nan"),
    }
