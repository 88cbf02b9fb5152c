"""The bundled synthetic dataset: a translation task with a known, exact answer.

Domain A: scenes of flat-coloured circles, rectangles and triangles in warm hues (red to
yellow) on cream paper. Domain B: the restyling T of the same scene distribution, where
T rotates every colour's hue by 120 degrees (exactly a cyclic permutation of R, G, B)
and darkens each pixel that touches a differently coloured pixel (an outline along
every shape's boundary). T is a function of the pixels alone and looks only at a
3x3 neighbourhood, so it commutes with flipping and, up to the one-pixel crop border,
with cropping: it can be learned from random crops of unpaired images. Training
scenes of A and B are drawn independently; `testB_paired/` holds T of each testA image,
so translation error against ground truth can be measured.
"""

import colorsys
import os

import numpy as np

from tf_cyclegan.checks import check_image_size, check_int
from tf_cyclegan.files import OutputExists, refuse_existing

SPLITS = ("trainA", "trainB", "testA", "testB", "testB_paired")

OUTLINE_DARKNESS = 0.25


def _color(rng, hue, saturation, value):
    return np.array(colorsys.hsv_to_rgb(rng.uniform(*hue) / 360.0, rng.uniform(*saturation), rng.uniform(*value)))


def make_scene(rng, size):
    """One domain-A scene, float32 RGB in [0, 1] of shape (size, size, 3)."""
    image = np.empty((size, size, 3), np.float32)
    image[:] = _color(rng, (40.0, 40.0), (0.15, 0.15), (0.88, 1.0))  # cream paper, brightness varies
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for _ in range(rng.integers(2, 7)):
        kind = rng.integers(3)
        cy, cx = rng.uniform(0, size, 2)
        radius = rng.uniform(0.08, 0.25) * size
        if kind == 0:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        elif kind == 1:
            half_h, half_w = radius * rng.uniform(0.5, 1.0, 2)
            mask = (np.abs(yy - cy) <= half_h) & (np.abs(xx - cx) <= half_w)
        else:  # a triangle pointing up: inside three half-planes
            mask = (yy <= cy + radius * 0.6) & (np.abs(xx - cx) <= (yy - (cy - radius)) * 0.7)
        image[mask] = _color(rng, (0.0, 60.0), (0.55, 1.0), (0.6, 1.0))  # red to yellow
    return np.round(image * 255) / 255


def restyle(image):
    """T: hue rotated by 120 degrees, and dark outlines where neighbouring colours differ.

    Works on float or uint8 arrays of shape (H, W, 3); edges are replicated, so an image
    border is never an outline.
    """
    image = np.asarray(image)
    rotated = image[..., [2, 0, 1]]  # (r, g, b) -> (b, r, g): red becomes green, hue +120
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
    height, width = image.shape[:2]
    boundary = np.zeros((height, width), bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            neighbour = padded[dy:dy + height, dx:dx + width]
            boundary |= np.any(neighbour != image, axis=-1)
    out = rotated.astype(np.float32)
    out[boundary] *= OUTLINE_DARKNESS
    return np.round(out).astype(image.dtype) if image.dtype == np.uint8 else out


def _write_png(path, image_uint8):
    import tensorflow as tf  # here, so that the command line checks its options before TensorFlow loads

    tf.io.write_file(path, tf.io.encode_png(image_uint8))


MAX_SIZE = 2048  # a scene is drawn in float64 grids: about 100 MB at this size
MAX_COUNT = 100_000  # images per split
# make_demo_data's numbers, by argument: the command line checks its options with these too.
DEMO_DATA_CHECKS = {
    "size": lambda key, value: check_image_size(key, value, maximum=MAX_SIZE),
    "num_train": lambda key, value: check_int(key, value, minimum=1, maximum=MAX_COUNT),
    "num_test": lambda key, value: check_int(key, value, minimum=0, maximum=MAX_COUNT),
    "seed": lambda key, value: check_int(key, value, minimum=0, maximum=2**32 - 1),
}


def make_demo_data(root, num_train=200, num_test=20, size=72, seed=0):
    """Writes trainA, trainB, testA, testB and testB_paired PNG folders under `root`.

    Every argument is checked before anything is written, and images are written one at a
    time, so memory holds one scene whatever the counts.

    Args:
        root: output folder (created).
        num_train: int, default 200. Training images per domain, at most MAX_COUNT.
        num_test: int, default 20. Test images per domain, at most MAX_COUNT.
        size: int, default 72. Square image size; a multiple of 4 (for full-image inference)
            from 8 to MAX_SIZE.
        seed: int, default 0. The same seed writes the same files.

    Returns:
        The dict of folder names to lists of written paths.
    """
    for name, value in (("size", size), ("num_train", num_train), ("num_test", num_test), ("seed", seed)):
        DEMO_DATA_CHECKS[name](name, value)
    root = os.fspath(root)
    if os.path.exists(root) and not os.path.isdir(root):
        raise OutputExists(f"{root!r} is a file, not a folder: give a folder for the dataset")
    refuse_existing([os.path.join(root, split) for split in SPLITS
                     if os.path.isdir(os.path.join(root, split)) and os.listdir(os.path.join(root, split))],
                    "the dataset folder holds images already; choose an empty or new folder")
    rng = np.random.default_rng(seed)
    written = {split: [] for split in SPLITS}

    def write(split, image):
        folder = os.path.join(root, split)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{len(written[split]):04d}.png")
        _write_png(path, image)
        written[split].append(path)

    # Each split's scenes are drawn independently (A and B are unpaired), in this order.
    for split, count in (("trainA", num_train), ("trainB", num_train), ("testA", num_test), ("testB", num_test)):
        for _ in range(count):
            scene = np.round(make_scene(rng, size) * 255).astype(np.uint8)
            write(split, restyle(scene) if split.endswith("B") else scene)
            if split == "testA":
                write("testB_paired", restyle(scene))
    for split in SPLITS:  # an empty split is still a folder
        os.makedirs(os.path.join(root, split), exist_ok=True)
    return written
