"""Translating image files and folders, keeping each file's name, place and size.

Every output path is worked out before any image is translated (`plan_outputs`): a file
given by itself goes to `out_dir/<stem>.png`; the images in a folder go to the same path
relative to that folder, under `out_dir/`, or, when several arguments are given, under
`out_dir/<the folder's name>/`. Nothing is translated if two inputs would be written to one
file, if an output would replace one of the inputs, if an output file exists already
(unless `overwrite=True`), or if no image is left to translate. Every file passed over (not
an image, or inside `out_dir`) is said, with why.
"""

import logging
import os

import keras
import tensorflow as tf

from tf_cyclegan.data.images import (
    IMAGE_EXTENSIONS,
    describe_error,
    not_a_regular_file,
    read_image,
    to_minus_one_one,
    to_uint8,
)
from tf_cyclegan.files import OutputExists, refuse_existing, write_bytes

logger = logging.getLogger(__name__)


def _folder_files(folder):
    """Every file below `folder` (hidden files and folders left out), sorted, relative to it."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.relpath(os.path.join(root, name), folder) for name in files if not name.startswith(".")]
    return sorted(found)


def collect_inputs(inputs):
    """(input file, its output path relative to the output folder, without extension), in the order given.

    Raises:
        FileNotFoundError: naming an input that does not exist.
    """
    several = len(inputs) > 1
    pairs = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            prefix = os.path.basename(os.path.abspath(item)) if several else ""
            pairs += [(os.path.join(item, rel), os.path.join(prefix, os.path.splitext(rel)[0]))
                      for rel in _folder_files(item)]
        elif os.path.isfile(item):
            pairs.append((item, os.path.splitext(os.path.basename(item))[0]))
        elif os.path.exists(item):  # a FIFO, socket or device: reading it could block for ever
            raise ValueError(f"Input {item!r} is {not_a_regular_file(item)}, not an image file")
        else:
            raise FileNotFoundError(f"Input not found: {item!r}")
    return pairs


def plan_outputs(inputs, out_dir, overwrite=False):
    """([(input image, output PNG path)], [(skipped file, why)]) for the files among `inputs`
    (see the module docstring). Skipped, and said so: files without an image extension, a
    file given by name that lies inside `out_dir` (where outputs go), and, as one entry naming
    `out_dir`, the earlier results there when `out_dir` is inside an input folder.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: nothing to translate; two inputs map to one output; an output would be an input.
        OutputExists: an output file exists (without `overwrite`).
    """
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise OutputExists(f"--out {os.fspath(out_dir)!r} is a file, not a folder")
    # An --out folder *inside* an input folder holds earlier results, not inputs. (--out equal
    # to an input folder is refused below: its outputs would sit among, or replace, the inputs.)
    out_real = os.path.join(os.path.realpath(out_dir), "")
    folders = {os.path.join(os.path.realpath(item), "") for item in inputs if os.path.isdir(item)}
    named = {os.path.realpath(item) for item in inputs if os.path.isfile(item)}
    files, skipped, earlier_results = [], [], 0
    for path, rel in collect_inputs(inputs):
        if out_real in folders or not os.path.realpath(path).startswith(out_real):
            files.append((path, rel))
        elif os.path.realpath(path) in named:
            skipped.append((path, f"it is inside --out {os.fspath(out_dir)!r}, where the outputs go: move it "
                                  "out, or translate into another --out folder"))
        else:
            earlier_results += 1
    if earlier_results:
        skipped.append((os.fspath(out_dir), f"--out is inside an input folder: its {earlier_results} file(s) "
                                            "are taken for earlier results, not inputs"))
    skipped += [(path, f"not a {', '.join(IMAGE_EXTENSIONS)} file") for path, _ in files
                if not path.lower().endswith(IMAGE_EXTENSIONS)]
    plan = [(path, os.path.join(os.fspath(out_dir), f"{rel}.png")) for path, rel in files
            if path.lower().endswith(IMAGE_EXTENSIONS)]
    if not plan:
        given = ", ".join(repr(os.fspath(item)) for item in inputs[:3]) + (" ..." if len(inputs) > 3 else "")
        why = (f": {skipped[0][0]!r} skipped, {skipped[0][1]}"
               + (f" (and {len(skipped) - 1} more skipped)" if len(skipped) > 1 else "")) if skipped else ""
        raise ValueError(f"No image to translate in {given}{why}")
    by_output = {}
    for path, out_path in plan:
        by_output.setdefault(os.path.realpath(out_path), []).append(path)
    clashes = [paths for paths in by_output.values() if len(paths) > 1]
    if clashes:
        shown = "; ".join(" and ".join(repr(p) for p in paths) for paths in clashes[:3])
        raise ValueError(f"These inputs would be written to the same output file: {shown}"
                          + (f" (and {len(clashes) - 3} more)" if len(clashes) > 3 else "")
                          + ". Translate them into different --out folders.")
    inputs_real = {os.path.realpath(path) for path, _ in plan}
    replaced = [out_path for path, out_path in plan if os.path.realpath(out_path) in inputs_real]
    if replaced:
        raise ValueError(f"The output {replaced[0]!r} would replace an input image"
                          + (f" (and {len(replaced) - 1} more)" if len(replaced) > 1 else "")
                          + ": choose an --out folder outside the inputs.")
    folders = [out_path for _, out_path in plan if os.path.isdir(out_path)]
    if folders:
        raise OutputExists(f"The output {folders[0]!r} is a folder: translate into another --out folder")
    if not overwrite:
        refuse_existing([out_path for _, out_path in plan], "use --overwrite to replace, or another --out folder")
    return plan, skipped


def translate_paths(translator, inputs, out_dir, progress=False, overwrite=False):
    """Translates every image among `inputs` into `out_dir` as PNG (see the module docstring).

    The plan is checked before any work (`plan_outputs`). A file that is not a readable image,
    or that lies inside `out_dir`, is reported by name and skipped; each output is written under a temporary name and
    renamed when complete, so a stopped run leaves no partial PNG.

    Returns:
        (written paths, skipped paths)
    """
    plan, passed_over = plan_outputs(inputs, out_dir, overwrite=overwrite)
    for path, why in passed_over:
        logger.warning("Skipping %s: %s", path, why)
    skipped = [path for path, _ in passed_over]
    written = []
    bar = keras.utils.Progbar(len(plan), unit_name="image") if progress and len(plan) > 1 else None
    for i, (path, out_path) in enumerate(plan):
        try:
            image = read_image(path)
        except (ValueError, tf.errors.OpError) as error:
            logger.warning("Skipping %s: %s", path, describe_error(error))
            skipped.append(path)
        else:
            fake = translator.translate(to_minus_one_one(image).numpy())
            write_bytes(out_path, tf.io.encode_png(to_uint8(fake)).numpy())
            written.append(out_path)
        if bar is not None:
            bar.update(i + 1)
    return written, skipped

