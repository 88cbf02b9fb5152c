"""The checks on numbers that the config, the command line and the library's functions share.

One definition each, so that `data.crop_size=30` in a config, `--size 30` on the command line
and `make_unpaired_dataset(crop_size=30)` are refused by the same rule in the same words, each
before any work. A failed check is a `ValueError` naming the key and repeating the value (the
config re-raises it as its `ConfigError`). Nothing here imports TensorFlow, so a command checks
its arguments before TensorFlow loads.
"""

import math
import numbers

# The generator reflection-pads by 3 at full size and by 1 at a quarter of it: 8 pixels at least.
MIN_IMAGE_SIZE = 8
# The largest side a training image is resized or cropped to: 4096 px is 256 times the
# paper's 256 px crop in area, past any memory a step at batch 1 has; a typo such as
# load_size=100000 is refused before any work instead of failing in the input pipeline.
MAX_TRAINING_SIZE = 4096
# The PatchGAN's stride-2 layers: each halves the patch grid (the paper's 70x70 PatchGAN has 3);
# past 8 no crop up to MAX_TRAINING_SIZE leaves the discriminator a patch to judge.
MAX_DISC_LAYERS = 8


def check_int(key, value, minimum=None, maximum=None, optional=False):
    """`value` if it is an int from `minimum` to `maximum` (or, with `optional`, None), else a
    ValueError naming `key` and the value. A bool is not an int here, nor is "36"."""
    if value is None and optional:
        return value
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        kind = "an integer or None" if optional else "an integer"
        raise ValueError(f"{key} must be {kind}. Received: {value!r}")
    if minimum is not None and value < minimum:
        rule = {0: "must not be negative", 1: "must be positive"}.get(minimum, f"must be at least {minimum}")
        raise ValueError(f"{key} {rule}. Received: {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{key} must be at most {maximum}. Received: {value!r}")
    return value


def check_decay(key, value):
    """`value` as a float if it is None or a number strictly between 0 and 1 (a moving
    average's decay: 1 would never move, 0 would average nothing), else a ValueError naming `key`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not 0 < value < 1:
        raise ValueError(f"{key} must be null or a number between 0 and 1, such as 0.999. Received: {value!r}")
    return float(value)


def min_training_size(disc_num_layers=3):
    """The smallest crop a training step runs at: the PatchGAN's `disc_num_layers` stride-2
    convolutions must leave 3 pixels for its two 4x4 stride-1 ones (24 for the paper's 3)."""
    return max(MIN_IMAGE_SIZE, 3 * 2**disc_num_layers)


def check_image_size(key, value, minimum=MIN_IMAGE_SIZE, maximum=None, why=""):
    """`value` if it is an image side the generator takes (a multiple of 4, as it downsamples
    twice, so 30 would come back as 28 or 32; from `minimum` to `maximum`), else a ValueError
    naming `key` and the value; `why` says where the minimum comes from."""
    check_int(key, value, maximum=maximum)
    if value < minimum or value % 4:
        raise ValueError(f"{key} must be a multiple of 4 (the generator downsamples twice) of at least {minimum}"
                         f"{why}. Received: {value!r}")
    return value


def check_pipeline_sizes(load_size, crop_size, batch_size, prefix=""):
    """Raises ValueError naming the first bad size of a training pipeline: `batch_size` a
    positive int; `load_size` a positive int and `crop_size` an image size (`check_image_size`),
    both at most MAX_TRAINING_SIZE, either None for no resize / no crop; the crop at most the
    image it is cut from.

    Args:
        prefix: str, default "". Put before each name in the message, e.g. "data." for the config.
    """
    load_key, crop_key = f"{prefix}load_size", f"{prefix}crop_size"
    check_int(load_key, load_size, minimum=1, maximum=MAX_TRAINING_SIZE, optional=True)
    if crop_size is not None:
        check_image_size(crop_key, crop_size, maximum=MAX_TRAINING_SIZE)
    check_int(f"{prefix}batch_size", batch_size, minimum=1)
    if crop_size is not None and load_size is not None and crop_size > load_size:
        raise ValueError(f"{crop_key} must not exceed {load_key}. Received: {crop_key}={crop_size!r}, "
                         f"{load_key}={load_size!r}")
