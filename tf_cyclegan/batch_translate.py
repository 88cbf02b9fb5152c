"""Translating image files and folders, keeping each file's name and size."""

import logging
import os

import keras
import tensorflow as tf

from tf_cyclegan.data import IMAGE_EXTENSIONS, decode_image, describe_error, to_minus_one_one, to_uint8

logger = logging.getLogger(__name__)


def collect_inputs(inputs):
    """Expands folders (one level) into their files, keeping the order given."""
    paths = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            paths += sorted(os.path.join(item, name) for name in os.listdir(item)
                            if not name.startswith(".") and os.path.isfile(os.path.join(item, name)))
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f"Input not found: {item!r}")
    return paths


def translate_paths(translator, inputs, out_dir, progress=True):
    """Translates every image among `inputs` into `out_dir` as PNG (`name.png`).

    A file that is not a readable image is reported by name and skipped.

    Returns:
        (written paths, skipped paths)
    """
    paths = collect_inputs(inputs)
    os.makedirs(out_dir, exist_ok=True)
    written, skipped = [], []
    bar = keras.utils.Progbar(len(paths), unit_name="image") if progress and len(paths) > 1 else None
    for i, path in enumerate(paths):
        try:
            if not path.lower().endswith(IMAGE_EXTENSIONS):
                raise ValueError("not a .jpg, .jpeg, .png, .bmp or .gif file")
            image = decode_image(tf.io.read_file(path))
        except (ValueError, tf.errors.OpError) as error:
            logger.warning("Skipping %s: %s", path, describe_error(error))
            skipped.append(path)
        else:
            fake = translator.translate(to_minus_one_one(image).numpy())
            stem = os.path.splitext(os.path.basename(path))[0]
            out_path = os.path.join(out_dir, f"{stem}.png")
            tf.io.write_file(out_path, tf.io.encode_png(to_uint8(fake)))
            written.append(out_path)
        if bar is not None:
            bar.update(i + 1)
    return written, skipped
