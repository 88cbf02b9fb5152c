"""Exporting one generator for serving and phones: SavedModel and TFLite, with metadata.

Each generator is exported on its own, never the training wrapper. The SavedModel
needs only TensorFlow to load; the TFLite files use built-in ops only, so they run on
a phone's interpreter (checked with LiteRT, `ai_edge_litert`).
"""

import importlib.util
import json
import logging
import os
import tempfile

import keras
import tensorflow as tf

from tf_cyclegan.choices import DIRECTIONS
from tf_cyclegan.data.images import to_minus_one_one, to_uint8
from tf_cyclegan.files import TMP_PREFIX, OutputExists, refuse_existing, remove, remove_stale_temporaries, replacing
from tf_cyclegan.inference.precision import computing_in, savedmodel_signature, with_precision
from tf_cyclegan.inference.translate import translate

logger = logging.getLogger(__name__)

TFLITE_VARIANTS = ("float32", "float16", "int8")
# Written besides those when calibration images are given: int8 weights and activations.
CALIBRATED_VARIANT = "int8_full"
FORMATS = ("savedmodel", "tflite", "onnx")
DEFAULT_FORMATS = ("savedmodel", "tflite")


def computing_in_float32(generator):
    """`generator` itself if every layer computes in float32, else a copy that does, with the
    same weights. A generator built under a mixed-precision policy (mixed_float16 on a GPU)
    keeps float32 weights but computes in float16 or bfloat16, which TFLite's built-in
    kernels and most CPUs do not run; exports are made from the float32 computation.
    """
    return with_precision(generator, "float32")


# The reduced precisions a SavedModel of ours carries a float signature for.
SAVEDMODEL_PRECISIONS = ("bfloat16", "float16")


def export_savedmodel(generator, path):
    """Writes a SavedModel for images of any size, with these signatures:

    `serving_default`: uint8 images [N, H, W, 3] -> uint8 images of the same size.
    `translate_float`: float32 images in [-1, 1] -> float32 in [-1, 1].
    `translate_float_bfloat16`, `translate_float_float16`: the same, computed in bfloat16 or
    float16 (see `tf_cyclegan.inference.precision`); they read the same weights, stored once.
    """
    archive = keras.export.ExportArchive()
    archive.track(generator)

    def translate_uint8(images):
        return {"images": to_uint8(translate(generator, to_minus_one_one(images)))}

    def translate_float(images):
        return {"images": translate(generator, images)}

    archive.add_endpoint("serving_default", translate_uint8,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    archive.add_endpoint("translate_float", translate_float,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    for precision in SAVEDMODEL_PRECISIONS:
        reduced = tf.function(translate_float, autograph=False,
                              input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
        with computing_in(generator, precision):
            reduced.get_concrete_function()  # traced here, so the graph holds the reduced computation
        archive.add_endpoint(savedmodel_signature(precision), reduced)
    archive.write_out(os.fspath(path), verbose=False)
    return path


def calibration_images(folder, size, count=64):
    """Up to `count` images of `folder` as (1, size, size, 3) float32 batches in [-1, 1], for
    full-integer quantisation: each resized so that its shorter side is `size`, centre-cropped.
    Unreadable files are skipped with a warning; a folder without images raises, naming it."""
    from tf_cyclegan.data.images import list_images, load_image

    batches = []
    for path in list_images(folder)[:count]:
        image = load_image(path)
        scale = size / min(int(image.shape[0]), int(image.shape[1]))
        height, width = max(size, round(image.shape[0] * scale)), max(size, round(image.shape[1] * scale))
        image = tf.image.resize(image, (height, width), method="area" if scale < 1 else "bilinear")
        top, left = (height - size) // 2, (width - size) // 2
        batches.append(tf.clip_by_value(image[top:top + size, left:left + size], -1.0, 1.0)[None].numpy())
    return batches


def calibration_folder(root, direction, directions=1):
    """The folder of `direction`'s input images under `root`: `testA/`, `trainA/` or `A/` for
    a2b (B for b2a) where `root` has one, else `root` itself when only one direction is exported."""
    domain = direction[0].upper()
    for name in (f"test{domain}", f"train{domain}", domain):
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    if directions > 1:
        raise ValueError(f"--calibration {os.fspath(root)!r} has no testA/, trainA/ or A/ (and B) folders: with both "
                         "directions, each needs its own inputs. Give a dataset root, or export one direction")
    return os.fspath(root)


def fixed_size_savedmodel(generator, size, path):
    """Writes `generator` at a fixed [1, size, size, 3] float input as a SavedModel in the folder
    `path`: what `tflite_bytes` converts. Through a SavedModel, as Keras' own LiteRT export
    does: converting from there freezes the variables into constants (no READ_VARIABLE ops in
    the file). One such folder serves every TFLite variant of the generator at that size."""
    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint(
        "serving_default",
        lambda images: tf.cast(generator(images, training=False), tf.float32),
        input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name="images")],
    )
    archive.write_out(os.fspath(path), verbose=False)


def tflite_bytes(generator, size, variant="float32", calibration=None, saved_model=None):
    """Converts the generator at a fixed [1, size, size, 3] float input to a TFLite flatbuffer.

    `float32`: as trained. `float16`: weights stored in float16 (half the file).
    `int8`: dynamic-range quantisation, int8 weights (about a quarter of the file).
    `int8_full`: weights and activations in int8, their ranges calibrated on `calibration`
    (a list of (1, size, size, 3) batches, `calibration_images`); input and output stay float32.
    Built-in ops only: no Flex/SELECT_TF_OPS, so the file runs on a phone.
    `saved_model`: the folder `fixed_size_savedmodel` wrote for this generator and size, so that
    several variants convert from one (without it, one is written here and removed).
    """
    if variant not in TFLITE_VARIANTS + (CALIBRATED_VARIANT,):
        raise ValueError(f"variant must be one of {TFLITE_VARIANTS + (CALIBRATED_VARIANT,)}. "
                         f"Received: variant={variant!r}")
    if (variant == CALIBRATED_VARIANT) != bool(calibration):
        raise ValueError(f"calibration images are for variant {CALIBRATED_VARIANT!r}, and it needs some")
    check_export_arguments(("tflite",), size)
    if saved_model is None:
        with tempfile.TemporaryDirectory() as tmp:
            fixed_size_savedmodel(generator, size, tmp)
            return tflite_bytes(generator, size, variant, calibration, saved_model=tmp)
    converter = tf.lite.TFLiteConverter.from_saved_model(os.fspath(saved_model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == CALIBRATED_VARIANT:
        converter.representative_dataset = lambda: ([batch] for batch in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def export_onnx(generator, path):
    """Writes an ONNX file with dynamic batch, height and width (H and W multiples of 4),
    through Keras' own export (tf2onnx underneath: `pip install tf_cyclegan[onnx]`)."""
    generator.export(
        os.fspath(path), format="onnx", verbose=False,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")],
    )
    return path


def check_export_arguments(formats, tflite_size=None, directions=None, calibration=None):
    """Raises `ValueError` naming the first bad argument; checked before anything is written."""
    formats = tuple(formats)
    if calibration is not None:
        if "tflite" not in formats:
            raise ValueError("--calibration calibrates the full-integer TFLite file: add tflite to the formats")
        if not os.path.isdir(calibration):
            raise FileNotFoundError(f"--calibration {os.fspath(calibration)!r}: no such folder")
    if not formats:
        raise ValueError(f"No export format given: choose from {', '.join(FORMATS)}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"Unknown export format(s) {unknown}: choose from {', '.join(FORMATS)}")
    if "onnx" in formats and importlib.util.find_spec("tf2onnx") is None:
        raise ValueError("The onnx format needs tf2onnx: pip install 'tf_cyclegan[onnx]'")
    if "tflite" in formats and tflite_size is not None:
        from tf_cyclegan.checks import check_image_size

        check_image_size("The TFLite input size (--tflite-size)", tflite_size)
    if directions is not None:
        directions = tuple(directions)
        bad = [d for d in directions if d not in DIRECTIONS]
        if not directions or bad or len(set(directions)) != len(directions):
            raise ValueError(f"Directions must be a2b and/or b2a, each once. Received: {','.join(directions)!r}")


def _check_target(out_dir, overwrite):
    """Raises unless `out_dir` is new, an empty folder, or (with `overwrite`) an earlier export."""
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise OutputExists(f"{out_dir!r} is a file, not an export folder: choose another --out")
    if not (os.path.isdir(out_dir) and os.listdir(out_dir)):
        return
    if not overwrite:
        refuse_existing([out_dir], "use --overwrite to replace the earlier export, or another --out")
    if not os.path.isfile(os.path.join(out_dir, "metadata.json")):
        raise OutputExists(f"{out_dir!r} holds files that are not an export of ours (no metadata.json): "
                           "--overwrite replaces only an earlier export; choose another --out")


def export_generator(generator, out_dir, formats=DEFAULT_FORMATS, tflite_size=256, metadata=None, overwrite=False,
                     calibration=None):
    """Exports one generator into the folder `out_dir` in each of `formats`, with `metadata.json`.

    With `calibration` (a folder of the user's images) and the tflite format, also
    `generator_int8_full.tflite`: full-integer int8 calibrated on those images.

    The exports compute in float32, whatever precision the generator was trained in
    (`computing_in_float32`). A new folder is written complete under a temporary name and then
    renamed into place, so a failed conversion or a kill leaves no partial export. An earlier
    export in `out_dir` is touched only with `overwrite=True`, and then only what this export
    writes is replaced, each file or folder in one rename once all are written; the user's own
    files and the formats not written this time stay, and metadata.json lists what is there.

    Returns:
        dict of written file or folder paths by name.
    """
    check_export_arguments(formats, tflite_size, calibration=calibration)
    out_dir = os.fspath(out_dir)
    _check_target(out_dir, overwrite)
    batches = calibration_images(calibration, tflite_size) if calibration and "tflite" in formats else None
    generator = computing_in_float32(generator)
    remove_stale_temporaries(os.path.dirname(os.path.abspath(out_dir)))
    variants = TFLITE_VARIANTS + ((CALIBRATED_VARIANT,) if batches else ())
    names = {"savedmodel": "savedmodel", "onnx": "generator.onnx",
             **{f"tflite_{v}": f"generator_{v}.tflite" for v in variants}}
    if os.path.isdir(out_dir):  # an empty folder, or an earlier export (with overwrite)
        tmp = os.path.join(os.path.dirname(os.path.abspath(out_dir)),
                           f"{TMP_PREFIX}{os.getpid()}-new-{os.path.basename(os.path.abspath(out_dir))}")
        remove(tmp)
        try:
            os.makedirs(tmp)
            written, meta = _write_formats(generator, tmp, names, formats, variants, tflite_size, batches, metadata)
            _merge_into(tmp, out_dir, meta)
        finally:
            remove(tmp)
    else:
        with replacing(out_dir) as tmp:
            os.makedirs(tmp)
            written, meta = _write_formats(generator, tmp, names, formats, variants, tflite_size, batches, metadata)
            with open(os.path.join(tmp, "metadata.json"), "w") as f:
                json.dump(meta, f, indent=2)
    paths = {name: os.path.join(out_dir, names[name]) for name in written}
    paths["metadata"] = os.path.join(out_dir, "metadata.json")
    return paths


def _write_formats(generator, folder, names, formats, variants, tflite_size, batches, metadata):
    """Writes each of `formats` into `folder`; returns (the names written, the metadata)."""
    written = []
    if "savedmodel" in formats:
        export_savedmodel(generator, os.path.join(folder, names["savedmodel"]))
        written.append("savedmodel")
    if "onnx" in formats:
        export_onnx(generator, os.path.join(folder, names["onnx"]))
        written.append("onnx")
    if "tflite" in formats:
        with tempfile.TemporaryDirectory() as fixed_size:  # one SavedModel for every variant
            fixed_size_savedmodel(generator, tflite_size, fixed_size)
            for variant in variants:
                with open(os.path.join(folder, names[f"tflite_{variant}"]), "wb") as f:
                    f.write(tflite_bytes(generator, tflite_size, variant, saved_model=fixed_size,
                                         calibration=batches if variant == CALIBRATED_VARIANT else None))
                written.append(f"tflite_{variant}")
    meta = {
        **(metadata or {}),
        "normalisation": "images in [-1, 1] = uint8 / 127.5 - 1; SavedModel serving_default takes uint8",
        "onnx_input": "float32 [N, H, W, 3] in [-1, 1], H and W multiples of 4" if "onnx" in formats else None,
        "tflite_input_shape": [1, tflite_size, tflite_size, 3] if "tflite" in formats else None,
        "files": {name: names[name] for name in written},
    }
    return written, meta


def _merge_into(new_dir, out_dir, meta):
    """Moves each file and folder of the export in `new_dir` into the earlier export `out_dir`,
    each replacing its namesake in one rename (`replacing`), and leaves the rest of `out_dir`
    alone: the user's own files, and the formats this export did not write. `meta` (this
    export's metadata) gains the earlier formats still there under "files", and their names
    under "kept_from_an_earlier_export"; it is written last, so until then the old metadata.json
    describes the folder."""
    try:
        with open(os.path.join(out_dir, "metadata.json")) as f:
            earlier = json.load(f).get("files") or {}
    except (OSError, ValueError, AttributeError):
        earlier = {}
    for name in sorted(os.listdir(new_dir)):
        with replacing(os.path.join(out_dir, name)) as tmp:
            os.rename(os.path.join(new_dir, name), tmp)
    kept = {key: name for key, name in earlier.items()
            if key not in meta["files"] and isinstance(name, str) and os.path.exists(os.path.join(out_dir, name))}
    if kept:
        logger.warning("%s: kept %s from an earlier export (not written this time)", out_dir, ", ".join(kept.values()))
        meta["files"] = {**meta["files"], **kept}
        meta["kept_from_an_earlier_export"] = sorted(kept.values())
    with replacing(os.path.join(out_dir, "metadata.json")) as tmp, open(tmp, "w") as f:
        json.dump(meta, f, indent=2)


def _run_config(run_dir):
    """The resolved config that training wrote into `run_dir` (config.yaml), as a dict for the
    metadata, or None (none there, or a file that is not a run's config: ignored with a
    warning). Read as plain YAML: an export records the config as the run wrote it, it does not
    check it (that is training's business, and inference does not reach up into training), so a
    run of version 0.2.0 is recorded with its keys of then, which `load_config` still reads."""
    import yaml

    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        logger.warning("Ignoring %s (not a training run's config: %s)", path, error)
        return None
    if not isinstance(config, dict) or not isinstance(config.get("data"), dict):
        logger.warning("Ignoring %s (not a training run's config: no data section)", path)
        return None
    return config


def export_model(model_path, out_dir, formats=DEFAULT_FORMATS, directions=DIRECTIONS, tflite_size=None,
                 overwrite=False, calibration=None, weights="auto"):
    """Exports the generators of a trained CycleGAN, or a single generator, from a `.keras`
    file or a run directory.

    Writes `out_dir/<direction>/` for each direction, each with its own metadata.json:
    direction, training config (where the run directory has one), training crop size,
    generator alignment, normalisation, package version and steps trained. `calibration`: see
    `calibration_folder` (full-integer int8 TFLite, calibrated on each direction's inputs). A single
    generator (`import-torch` of one `.pth`) is one direction: the one `directions` names,
    "a2b" when it names both. Every argument, the model and the output folders are checked
    before anything is written; an earlier export there is replaced only with `overwrite=True`.
    `weights` picks a CycleGAN's generators (`CycleGAN.get_generator`): by default the averaged
    ones where it keeps them (`ema_decay`); metadata.json records which were exported.
    """
    from tf_cyclegan import __version__
    from tf_cyclegan.models.resnet_generator import generator_alignment, generator_upsampling

    check_export_arguments(formats, tflite_size, directions, calibration=calibration)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise OutputExists(f"--out {os.fspath(out_dir)!r} is a file, not a folder")
    from tf_cyclegan.inference.loading import load_keras_file, pick_generator, resolve_model_path

    try:
        found = resolve_model_path(model_path)
    except ValueError:  # a path that is no model at all (a missing one raises FileNotFoundError)
        found = None
    if found is None or found.kind != "keras":
        raise ValueError(f"Cannot export from {os.fspath(model_path)!r}: expected a .keras file or a run directory "
                         "holding model.keras")
    keras_file, run_dir = found.path, found.run_dir
    model = load_keras_file(keras_file)
    if hasattr(model, "get_generator"):  # a CycleGAN (both directions) or a CUT model (a2b)
        exported = [direction for direction in directions if direction in model.directions]
        if not exported:
            raise ValueError(f"{keras_file} holds a {type(model).__name__}, which translates "
                             f"{' and '.join(model.directions)} only: it has no {' or '.join(directions)} generator")
        if len(exported) < len(directions):
            logger.info("%s holds a %s, which translates %s only: exporting %s", keras_file, type(model).__name__,
                        " and ".join(model.directions), " and ".join(exported))
        generators = {direction: pick_generator(model, direction, weights, keras_file) for direction in exported}
        pool = getattr(model, "pool_a", None)  # CycleGAN's pools are built for the training crop
        crop_size = int(pool.images.shape[1]) if pool is not None and model.pool_size and pool.built else None
        steps = int(model.gen_optimizer.iterations.numpy()) if model.compiled else None
    else:
        direction = directions[0] if len(directions) == 1 else "a2b"
        generators = {direction: pick_generator(model, direction, weights, keras_file)}
        logger.info("%s holds one generator: exported as the %s direction", keras_file, direction)
        crop_size = steps = None
    for direction in generators:
        _check_target(os.path.join(os.fspath(out_dir), direction), overwrite)
    config = _run_config(run_dir)
    crop_size = crop_size or (config["data"].get("crop_size") if config else None)
    tflite_size = tflite_size or crop_size or 256
    check_export_arguments(formats, tflite_size)
    written = {}
    calibrations = {direction: calibration_folder(calibration, direction, len(generators))
                    for direction in generators} if calibration else {}
    for direction, generator in generators.items():
        metadata = {
            "direction": direction, "training_config": config, "training_crop_size": crop_size,
            "alignment": generator_alignment(generator), "upsampling": generator_upsampling(generator),
            "package_version": __version__,
            "steps_trained": steps,
            # "averaged": the moving average of the trained weights (the model's ema_decay).
            "weights": "averaged" if generator.name.endswith("_ema") else "raw",
            "ema_decay": getattr(model, "ema_decay", None),
        }
        written[direction] = export_generator(
            generator, os.path.join(out_dir, direction),
            formats=formats, tflite_size=tflite_size, metadata=metadata, overwrite=overwrite,
            calibration=calibrations.get(direction),
        )
    return written
