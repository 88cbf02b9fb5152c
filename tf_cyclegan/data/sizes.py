"""The checks on a training pipeline's sizes, in one place: `make_unpaired_dataset` and
`make_tfds_dataset` check their arguments with them, and the config its `data.load_size`,
`data.crop_size` and `data.batch_size`, so both refuse the same values in the same words,
before any work. No TensorFlow here: the config is checked before TensorFlow starts.
"""

import numbers


def check_positive_int(name, value, optional=False):
    """Raises ValueError, naming `name` and repeating `value`, unless it is an int > 0 (or,
    with `optional`, None). A bool is not an int here, nor is "36"."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "a positive int or None" if optional else "a positive int"
        raise ValueError(f"{name} must be {kind}. Received: {name}={value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive. Received: {name}={value!r}")


def check_pipeline_sizes(load_size, crop_size, batch_size, prefix=""):
    """Raises ValueError naming the first bad size: each must be a positive int (`load_size`
    and `crop_size` may be None: no resize, no crop), `crop_size` a multiple of 4 (the
    generators downsample twice, so a crop of 30 would come back as 28 or 32) and at most
    `load_size` (a crop cannot be larger than the image it is cut from).

    Args:
        prefix: str, default "". Put before each name in the message, e.g. "data." for the config.
    """
    load_name, crop_name = f"{prefix}load_size", f"{prefix}crop_size"
    check_positive_int(load_name, load_size, optional=True)
    check_positive_int(crop_name, crop_size, optional=True)
    check_positive_int(f"{prefix}batch_size", batch_size)
    if crop_size is not None and crop_size % 4:
        raise ValueError(f"{crop_name} must be a multiple of 4 (the generator downsamples twice). "
                         f"Received: {crop_name}={crop_size!r}")
    if crop_size is not None and load_size is not None and crop_size > load_size:
        raise ValueError(f"{crop_name} must not exceed {load_name}. Received: {crop_name}={crop_size!r}, "
                         f"{load_name}={load_size!r}")
