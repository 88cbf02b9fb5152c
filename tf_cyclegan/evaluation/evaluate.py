"""`evaluate`: how good is a trained translation, in numbers rather than samples.

Per direction (a2b translates testA and compares with testB; b2a the reverse):
- FID and KID between translated test images and the real test images of the target
  domain, from InceptionV3 pool features of every test image;
- cycle consistency: mean L1 between each test image and its round trip, in [-1, 1] units;
- where ROOT has `testB_paired/` (the synthetic dataset), a2b's MAE, PSNR and SSIM against
  the ground truth, next to the same figures for the untranslated input (the baseline).
"""

import logging
import os

import keras
import numpy as np

from tf_cyclegan.choices import DIRECTIONS
from tf_cyclegan.data.images import list_images, load_image
from tf_cyclegan.evaluation.fid import fid_from_features, kid_from_features
from tf_cyclegan.evaluation.paired import check_paired_test_set, paired_scores

logger = logging.getLogger(__name__)

SPLITS = {"a2b": ("testA", "testB"), "b2a": ("testB", "testA")}


def _load(paths):
    return [load_image(path).numpy() for path in paths]


def _translate_all(translator, images, label, progress):
    bar = keras.utils.Progbar(len(images), unit_name="image") if progress else None
    if bar is not None:
        logger.info(label)
    outputs = []
    for i, image in enumerate(images):
        outputs.append(np.clip(translator.translate(image), -1, 1))
        if bar is not None:
            bar.update(i + 1)
    return outputs


def evaluate(translators, root, directions=DIRECTIONS, features=None, kid_subsets=100, progress=False,
             max_images=None):
    """Evaluates translators {"a2b": Translator, "b2a": Translator} on ROOT's test folders.

    Args:
        translators: a Translator per direction the model has (`load_translators`); a
            direction's cycle error needs the reverse one, so a lone generator has none.
        root: folder with testA/ and testB/ (and optionally testB_paired/).
        directions: which directions to report.
        features: an `InceptionFeatures` (or any images -> (N, D) callable); None skips FID/KID.
        max_images: use only the first N test images per folder (None: all of them).
    """
    report = {}
    real_features = {}
    paired_truths = check_paired_test_set(root) if "a2b" in directions else None  # before translating anything
    for direction in directions:
        if direction not in translators:
            raise ValueError(f"No {direction} generator in the model given: it has {', '.join(translators) or 'none'}")
        source_split, target_split = SPLITS[direction]
        source_paths = list_images(os.path.join(root, source_split))[:max_images]
        sources = _load(source_paths)
        fakes = _translate_all(translators[direction], sources, f"Translating {source_split} ({direction})",
                               progress)
        result = {"images": len(sources)}
        if features is not None:
            if target_split not in real_features:
                real_features[target_split] = features(
                    _load(list_images(os.path.join(root, target_split))[:max_images]))
            fake_features = features(fakes)
            result["fid"] = fid_from_features(fake_features, real_features[target_split])
            kid_mean, kid_std = kid_from_features(fake_features, real_features[target_split], kid_subsets)
            result["kid"] = {"mean": kid_mean, "std": kid_std}
        reverse = "b2a" if direction == "a2b" else "a2b"
        if reverse in translators:
            cycled = _translate_all(translators[reverse], fakes, f"Cycling back ({reverse})", progress)
            result["cycle_l1"] = float(np.mean([np.abs(c - s).mean() for c, s in zip(cycled, sources)]))
        if direction == "a2b" and paired_truths is not None:
            paired = [paired_truths.get(os.path.basename(path)) for path in source_paths]
            result["paired"], result["baseline"] = paired_scores(fakes, sources, paired)
        report[direction] = result
    return report


def format_report(report):
    lines = [f"{'':5s}{'images':>7s}{'FID':>9s}{'KID x1e3':>16s}{'cycle L1':>10s}"]
    for direction, r in report.items():
        fid = f"{r['fid']:9.2f}" if "fid" in r else f"{'-':>9s}"
        kid = (f"{r['kid']['mean'] * 1e3:8.2f} ± {r['kid']['std'] * 1e3:5.2f}" if "kid" in r else f"{'-':>16s}")
        cycle = f"{r['cycle_l1']:10.4f}" if "cycle_l1" in r else f"{'-':>10s}"
        lines.append(f"{direction:5s}{r['images']:7d}{fid}{kid}{cycle}")
        if "paired" in r:
            for name in ("paired", "baseline"):
                s = r[name]
                label = "model" if name == "paired" else "baseline (untranslated)"
                lines.append(f"     vs ground truth, {label}: MAE {s['mae']:.4f}  PSNR {s['psnr']:.2f} dB  "
                             f"SSIM {s['ssim']:.4f}")
    return "\n".join(lines)
