"""Loading a generator from any of the forms we write, behind one `translate(image)` call.

Accepted: a `.keras` file (a CycleGAN or a single generator), a run directory holding
`model.keras`, a SavedModel directory (or an export folder with one per direction), a
`.tflite` file (run with LiteRT) and an `.onnx` file (run with onnxruntime). Full images
go through in one pass up to `max_pixels`; larger images, and every image for the fixed-size
TFLite model, are tiled.

Each model knows the directions it has (`model_directions`): a lone generator translates
one way only, and asking it for the other is an error, never its one translation passed off
as the other.
"""

import functools
import json
import logging
import os
import typing
import zipfile

import keras
import numpy as np
import tensorflow as tf

from tf_cyclegan.choices import DIRECTIONS, GENERATOR_WEIGHTS
from tf_cyclegan.inference.translate import MIN_SIZE, grow_to, pad_to_multiple, translate_tiled
from tf_cyclegan.inference.translate import translate as translate_full

logger = logging.getLogger(__name__)

EXPECTED = ("a .keras file, a run directory holding model.keras, a SavedModel directory, an export folder, "
            "a .tflite file or an .onnx file")


class Translator:
    """Translates (H, W, 3) float images in [-1, 1] of any size."""

    fixed_size = None

    def __init__(self, max_pixels=2048 * 2048, tile=512, overlap=64):
        from tf_cyclegan.checks import check_image_size, check_int

        # Checked here, not at the first large image: `translate --tile` shares the rule.
        check_image_size("tile", tile)
        check_int("overlap", overlap, minimum=0)
        check_int("max_pixels", max_pixels, minimum=1)
        self.max_pixels = max_pixels
        self.tile = tile
        self.overlap = overlap

    def run(self, batch):
        raise NotImplementedError

    def translate(self, image):
        image = np.asarray(image, np.float32)
        height, width = image.shape[:2]
        if not height or not width:
            raise ValueError(f"Cannot translate an image of size {height}x{width}")
        if min(height, width) < MIN_SIZE:  # below what the generator's padding allows
            grown = grow_to(tf.constant(image[None]))[0].numpy()
            return self.translate(grown)[:height, :width]
        if self.fixed_size is None and height * width <= self.max_pixels:
            return self.run(image[None])[0]
        tile = self.fixed_size or self.tile
        overlap = min(self.overlap, tile // 4)
        return translate_tiled(lambda piece: self.run(piece[None])[0], image, tile, overlap)


class KerasTranslator(Translator):
    """A Keras generator, computing in `precision` (see `tf_cyclegan.inference.precision`)."""

    def __init__(self, generator, precision="float32", **kwargs):
        super().__init__(**kwargs)
        from tf_cyclegan.inference.precision import with_precision

        self.generator = with_precision(generator, precision)
        # One graph for every size (after the second, shapes are traced as unknown): eager
        # execution would pay Python's per-layer overhead on every image.
        self._run = tf.function(lambda batch: translate_full(self.generator, batch), reduce_retracing=True)

    def run(self, batch):
        return keras.ops.convert_to_numpy(self._run(tf.constant(batch, tf.float32)))


class SavedModelTranslator(Translator):
    """A SavedModel of ours, through its float signature of `precision` (`translate_float`
    for float32, `translate_float_bfloat16`, `translate_float_float16`)."""

    def __init__(self, path, precision="float32", **kwargs):
        super().__init__(**kwargs)
        from tf_cyclegan.inference.precision import savedmodel_signature
        from tf_cyclegan.precision import resolve_precision

        signatures = tf.saved_model.load(os.fspath(path)).signatures
        name = savedmodel_signature(resolve_precision(precision))
        if name not in signatures:
            raise ValueError(f"{os.fspath(path)!r} has no {name!r} signature for precision {precision!r} (it has "
                             f"{', '.join(sorted(signatures))}): export it again with this version, or use float32")
        self.function = signatures[name]

    def run(self, batch):
        return self.function(images=tf.constant(batch, tf.float32))["images"].numpy()


class TFLiteTranslator(Translator):
    def __init__(self, path, **kwargs):
        super().__init__(**kwargs)
        from ai_edge_litert.interpreter import Interpreter

        # LiteRT runs on one thread unless told; XNNPACK (its default CPU delegate) scales.
        try:
            self.interpreter = Interpreter(model_path=os.fspath(path), num_threads=os.cpu_count())
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"Cannot load {os.fspath(path)!r} as a TFLite model: {_first_line(error)}") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.fixed_size = int(self.input["shape"][1])

    def run(self, batch):
        self.interpreter.set_tensor(self.input["index"], np.asarray(batch, np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()


class OnnxTranslator(Translator):
    def __init__(self, path, **kwargs):
        super().__init__(**kwargs)
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime's own exception types (InvalidProtobuf, ...)
            raise ValueError(f"Cannot load {os.fspath(path)!r} as an ONNX model: {_first_line(error)}") from None
        self.input_name = self.session.get_inputs()[0].name

    def run(self, batch):
        padded, height, width = pad_to_multiple(tf.constant(batch, tf.float32))  # the graph takes multiples of 4
        return self.session.run(None, {self.input_name: padded.numpy()})[0][:, :int(height), :int(width)]


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_keras_file(path):
    """`keras.saving.load_model(path)`, with one line naming the file when it cannot be loaded
    (a truncated download, a text file, a model whose classes are unknown)."""
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not a readable .keras file (not a zip archive: truncated, or another format)")
    try:
        return keras.saving.load_model(path)
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"Cannot load {path!r}: {_first_line(error)}") from None


def check_generator(model, where):
    """Raises `ValueError` unless `model` translates (N, H, W, 3) images to (N, H, W, 3) images."""
    try:
        inputs, outputs = tuple(model.input_shape), tuple(model.output_shape)
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not (inputs and outputs and len(inputs) == 4 and len(outputs) == 4 and inputs[-1] == 3 and outputs[-1] == 3):
        raise ValueError(f"{where} holds a {type(model).__name__} taking {inputs} to {outputs}, not an "
                         "image-to-image generator (RGB images in, RGB images of the same size out)")
    return model


@functools.lru_cache(maxsize=2)
def _load_keras(path, modified):
    """One load per file version: evaluating both directions of a CycleGAN reads it once;
    `modified` (the file's mtime) keys the cache, so a re-saved file is read again."""
    return load_keras_file(path)


def pick_generator(model, direction, weights, where):
    """The generator of `model` (a CycleGAN, a CUT model or a lone generator) for `direction`
    and `weights` (see `CycleGAN.get_generator`), saying in the log when the averaged one is
    taken by default."""
    if not hasattr(model, "get_generator"):
        if weights == "averaged":
            raise ValueError(f"{where} holds one generator, with no averaged copy: use --weights raw or auto")
        return check_generator(model, where)
    generator = model.get_generator(direction, weights)
    if generator is not model.get_generator(direction, "raw") and weights == "auto":
        logger.info("%s: translating %s with the averaged generator %s (ema_decay %s); --weights raw takes "
                    "the trained one", where, direction, generator.name, model.ema_decay)
    return check_generator(generator, f"{where} ({generator.name})")


def _generator_from_keras(path, direction, weights="auto"):
    path = os.path.abspath(os.fspath(path))
    return pick_generator(_load_keras(path, os.stat(path).st_mtime_ns), direction, weights, path)


class ModelPath(typing.NamedTuple):
    """Where a model given by the user is, and in which form (`resolve_model_path`)."""

    kind: str  # "keras", "savedmodel", "tflite" or "onnx"
    path: str  # the file, or the SavedModel directory
    run_dir: typing.Optional[str]  # the run directory a .keras model is in (its config.yaml beside it)


# What an export direction's folder (`OUT/a2b/`) may hold that translates, best first: the
# SavedModel (any size in one pass, every precision), then TFLite float32 (exact, but tiled at
# its fixed size), ONNX, and the reduced TFLite files last (they lose accuracy).
EXPORT_CHOICES = (("savedmodel", "savedmodel"), ("tflite", "generator_float32.tflite"), ("onnx", "generator.onnx"),
                  ("tflite", "generator_float16.tflite"), ("tflite", "generator_int8.tflite"),
                  ("tflite", "generator_int8_full.tflite"))


def _in_export_folder(folder):
    """The best runnable model in an export direction's `folder` (`EXPORT_CHOICES`), or None."""
    for kind, name in EXPORT_CHOICES:
        candidate = os.path.join(folder, name)
        if os.path.isfile(os.path.join(candidate, "saved_model.pb") if kind == "savedmodel" else candidate):
            return ModelPath(kind, candidate, None)
    return None


def _export_directions(path):
    """The direction folders (`a2b/`, `b2a/`) of an export folder at `path`, if it is one."""
    if not os.path.isdir(path) or os.path.isfile(os.path.join(path, "model.keras")):
        return ()
    return tuple(d for d in DIRECTIONS if os.path.isdir(os.path.join(path, d)))


def resolve_model_path(path, direction=None):
    """Finds the model at `path`: a `.keras` file, a run directory holding `model.keras`, a
    SavedModel directory, an export folder (`a2b/`, `b2a/`: `direction` picks one, else the
    first), an export direction's folder (its SavedModel, else TFLite float32, else ONNX: see
    `EXPORT_CHOICES`), a `.tflite` or an `.onnx` file.

    The one place that reads a user's model path: `translate`, `evaluate` and `export` all
    accept what this accepts. Which directions the model has is `model_directions`'s answer.
    Raises `FileNotFoundError` or `ValueError` naming the path.
    """
    path = os.fspath(path)
    in_export = _export_directions(path)
    if in_export:
        path = os.path.join(path, direction if direction in in_export else in_export[0])
    suffix = os.path.splitext(path)[1]
    if os.path.isfile(path) and suffix in (".keras", ".tflite", ".onnx"):
        run_dir = os.path.dirname(os.path.abspath(path)) if suffix == ".keras" else None
        return ModelPath(suffix[1:], path, run_dir)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "model.keras")):
            return ModelPath("keras", os.path.join(path, "model.keras"), path)
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return ModelPath("savedmodel", path, None)
        found = _in_export_folder(path)
        if found is not None:
            return found
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model not found: {path!r}; expected {EXPECTED}")
    raise ValueError(f"Cannot load a model from {path!r}: expected {EXPECTED}")


def _recorded_direction(model):
    """The direction a one-generator model (SavedModel, .tflite, .onnx) was exported as: the
    one the `metadata.json` that `export` writes beside it names, else the name of its
    export's `a2b/` or `b2a/` folder, else "a2b", the name `export` and `import-torch` give a
    lone generator."""
    folder = model.path if os.path.isdir(model.path) else os.path.dirname(os.path.abspath(model.path))
    for candidate in (folder, os.path.dirname(os.path.abspath(folder))):
        meta = os.path.join(candidate, "metadata.json")
        if not os.path.isfile(meta):
            continue
        try:
            with open(meta) as f:
                direction = json.load(f).get("direction")
        except (OSError, ValueError, AttributeError) as error:
            raise ValueError(f"Cannot read {meta!r}, which says which way {model.path!r} translates: "
                             f"{_first_line(error)}") from None
        if direction in DIRECTIONS:
            return direction
    for candidate in (folder, os.path.dirname(os.path.abspath(folder))):
        if os.path.basename(candidate) in DIRECTIONS:  # an export's OUT/<direction>/ folder
            return os.path.basename(candidate)
    logger.warning("%s says nothing of its direction (no metadata.json beside it, not in an a2b/ or b2a/ "
                   "folder): taken as a2b", model.path)
    return "a2b"


def model_directions(path):
    """The directions the model at `path` translates, as a tuple: both for a CycleGAN (a
    `.keras` file or a run directory) and for an export folder holding both; one for a single
    generator: "a2b" for a `.keras` generator (as `import-torch` names it), the exported
    direction (its `metadata.json`) for a SavedModel, `.tflite` or `.onnx`.

    A model cannot translate, nor cycle back through, a direction it does not have.
    """
    path = os.fspath(path)
    in_export = _export_directions(path)
    if in_export:
        found = tuple(d for d in in_export if _in_export_folder(os.path.join(path, d)) is not None)
        if not found:
            raise ValueError(f"Cannot load a model from the export folder {path!r}: its "
                             f"{' and '.join(d + '/' for d in in_export)} hold no savedmodel/, .tflite or .onnx")
        return found
    model = resolve_model_path(path)
    if model.kind == "keras":
        keras_path = os.path.abspath(model.path)
        # A CycleGAN has both, a CUT model a2b (their `directions`); a lone generator is a2b.
        return tuple(getattr(_load_keras(keras_path, os.stat(keras_path).st_mtime_ns), "directions", ("a2b",)))
    return (_recorded_direction(model),)


def _check_direction(path, direction, available):
    if direction not in available:
        other = " and ".join(available)
        raise ValueError(f"{os.fspath(path)!r} has no {direction} generator: it translates {other} only "
                         f"(use --direction {available[0]})")


def load_translator(path, direction=None, precision="float32", weights="auto", **kwargs):
    """Opens `path` (see `resolve_model_path`) as a `Translator` for `direction`.

    `direction`: "a2b" or "b2a"; None takes the model's only direction, or a2b. A direction the
    model does not have (`model_directions`) is refused, naming the model and what it has.
    `precision` ("float32", "bfloat16", "float16" or "auto", see
    `tf_cyclegan.inference.precision`) applies to `.keras` models and SavedModels; a TFLite or
    ONNX file computes in the precision it was exported with, so it takes "float32" or "auto".
    `weights` ("auto", "averaged" or "raw", see `CycleGAN.get_generator`) picks a `.keras` model's
    generator: by default the averaged one where the model keeps one (`ema_decay`). An export
    holds the generator it was exported with (its metadata.json says which), so it takes "auto".
    """
    from tf_cyclegan.precision import check_precision

    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}. Received: direction={direction!r}")
    precision = check_precision(precision)
    if weights not in GENERATOR_WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(GENERATOR_WEIGHTS)}. Received: weights={weights!r}")
    Translator(**{k: v for k, v in kwargs.items() if k in ("max_pixels", "tile", "overlap")})  # checks, no work
    available = model_directions(path)
    direction = direction or available[0]
    _check_direction(path, direction, available)
    model = resolve_model_path(path, direction)
    if os.path.isdir(path) and model.kind in ("tflite", "onnx"):
        logger.info("%s: using %s (an export folder's best format there: SavedModel, TFLite float32, ONNX, "
                    "in that order)", os.fspath(path), model.path)
    if model.kind == "keras":
        return KerasTranslator(_generator_from_keras(model.path, direction, weights), precision=precision, **kwargs)
    if weights != "auto":
        raise ValueError(f"{model.path!r} is an export, which holds the generator it was exported with (its "
                         f"metadata.json says which): --weights {weights} applies to .keras models and run directories")
    if model.kind == "savedmodel":
        return SavedModelTranslator(model.path, precision=precision, **kwargs)
    if precision not in ("float32", "auto"):
        raise ValueError(f"{model.path!r} is a .{model.kind} file, whose precision was fixed when it was exported: "
                         f"precision {precision!r} applies to .keras models and SavedModels")
    return {"tflite": TFLiteTranslator, "onnx": OnnxTranslator}[model.kind](model.path, **kwargs)


def load_translators(path, directions=DIRECTIONS, **kwargs):
    """A `Translator` for every direction the model at `path` has (`model_directions`): those
    of `directions`, and the reverse ones, which evaluation cycles back through.

    Raises `ValueError` naming the model and what it has when it lacks one of `directions`.
    """
    available = model_directions(path)
    for direction in directions:
        _check_direction(path, direction, available)
    return {direction: load_translator(path, direction, **kwargs) for direction in available}
