import json
import logging
import os
import shutil

import numpy as np
import pytest
from conftest import saved_tiny_cyclegan

from tf_cyclegan.inference.loading import (
    KerasTranslator,
    ModelPath,
    OnnxTranslator,
    SavedModelTranslator,
    TFLiteTranslator,
    Translator,
    load_translator,
    load_translators,
    model_directions,
    resolve_model_path,
)
from tf_cyclegan.inference.translate import translate


@pytest.mark.slow
def test_every_path_kind_loads_the_right_generator(exported_cyclegan):
    model, root = exported_cyclegan
    image = np.random.default_rng(0).uniform(-1, 1, (36, 52, 3)).astype(np.float32)
    expected = translate(model.gen_b2a, image).numpy()
    for path, kind in [
        (root / "model.keras", KerasTranslator),
        (root, KerasTranslator),  # a run directory
        (root / "export", SavedModelTranslator),  # export folder, direction subfolder picked
        (root / "export" / "b2a" / "savedmodel", SavedModelTranslator),
        (root / "export" / "b2a" / "generator.onnx", OnnxTranslator),  # odd sizes padded by reflection
    ]:
        translator = load_translator(path, "b2a")
        assert isinstance(translator, kind), path
        np.testing.assert_allclose(translator.translate(image), expected, atol=1e-4, err_msg=str(path))
    a2b = load_translator(root / "model.keras", "a2b").translate(image)
    np.testing.assert_allclose(a2b, translate(model.gen_a2b, image).numpy(), atol=1e-5)


@pytest.mark.slow
def test_tflite_translator_tiles_any_size(exported_cyclegan):
    _, root = exported_cyclegan
    translator = load_translator(root / "export" / "b2a" / "generator_float32.tflite")
    assert isinstance(translator, TFLiteTranslator) and translator.fixed_size == 32
    assert translator.translate(np.zeros((70, 45, 3), np.float32)).shape == (70, 45, 3)
    assert translator.translate(np.zeros((20, 12, 3), np.float32)).shape == (20, 12, 3)


def test_wrong_model_paths_say_what_was_expected(tmp_path):
    (tmp_path / "weights.h5").write_text("x")
    with pytest.raises(ValueError, match="expected a .keras file, a run directory"):
        load_translator(tmp_path / "weights.h5")
    with pytest.raises(FileNotFoundError, match="nothing.keras"):
        load_translator(tmp_path / "nothing.keras")
    with pytest.raises(ValueError, match="direction"):
        load_translator(tmp_path, "x2y")


@pytest.mark.slow
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (4, 4), (5, 7), (1, 9)])
def test_images_smaller_than_the_generators_padding_translate_at_their_size(exported_cyclegan, size):
    model, root = exported_cyclegan
    image = np.random.default_rng(5).uniform(-1, 1, (*size, 3)).astype(np.float32)
    for path in ("model.keras", "export/b2a/generator.onnx", "export/b2a/generator_float32.tflite", "export/b2a"):
        translator = load_translator(root / path, "b2a")
        out = translator.translate(image)
        assert out.shape == (*size, 3) and np.isfinite(out).all()
    direct = translate(model.gen_b2a, image).numpy()
    assert direct.shape == (*size, 3)


def test_model_files_that_are_not_models_are_named(tmp_path):
    for name in ("empty.onnx", "junk.onnx", "empty.tflite", "junk.tflite"):
        (tmp_path / name).write_bytes(b"" if name.startswith("empty") else b"junk")
        with pytest.raises(ValueError, match=f"Cannot load .*{name}' as an? (ONNX|TFLite) model"):
            load_translator(tmp_path / name)


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    """A folder holding a tiny CycleGAN's model.keras: a run directory, as far as loading goes."""
    root = tmp_path_factory.mktemp("run")
    return saved_tiny_cyclegan(root / "model.keras"), root


def test_model_paths_resolve_to_their_kind_and_direction(keras_run, tmp_path):
    _, root = keras_run
    assert resolve_model_path(root / "model.keras") == ModelPath("keras", str(root / "model.keras"), str(root))
    assert resolve_model_path(root) == ModelPath("keras", str(root / "model.keras"), str(root))
    # An export folder: a direction's own folder, its SavedModel in savedmodel/.
    for direction in ("a2b", "b2a"):
        (tmp_path / "export" / direction / "savedmodel").mkdir(parents=True)
        (tmp_path / "export" / direction / "savedmodel" / "saved_model.pb").write_bytes(b"")
        (tmp_path / "export" / direction / "metadata.json").write_text(json.dumps({"direction": direction}))
    (tmp_path / "export" / "b2a" / "generator.onnx").write_bytes(b"")
    found = resolve_model_path(tmp_path / "export", "b2a")
    assert found == ModelPath("savedmodel", str(tmp_path / "export" / "b2a" / "savedmodel"), None)
    assert resolve_model_path(tmp_path / "export" / "b2a" / "generator.onnx").kind == "onnx"
    assert model_directions(root) == model_directions(tmp_path / "export") == ("a2b", "b2a")
    for one in ("b2a", "b2a/savedmodel", "b2a/generator.onnx"):  # their metadata.json says which way
        assert model_directions(tmp_path / "export" / one) == ("b2a",), one


def test_a_keras_translator_tiles_images_above_max_pixels_and_refuses_empty_ones(keras_run):
    model, root = keras_run
    whole = load_translator(root, "a2b")
    tiled = load_translator(root, "a2b", max_pixels=32 * 32, tile=32, overlap=8)
    assert isinstance(tiled, KerasTranslator) and tiled.generator is whole.generator  # read once
    image = np.random.default_rng(1).uniform(-1, 1, (40, 72, 3)).astype(np.float32)
    out = tiled.translate(image)
    assert out.shape == (40, 72, 3) and np.all(np.abs(out) <= 1)
    np.testing.assert_allclose(whole.translate(image), translate(model.gen_a2b, image).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="Cannot translate an image of size 0x5"):
        whole.translate(np.zeros((0, 5, 3), np.float32))


def test_a_keras_file_that_holds_no_generator_is_named(tmp_path):
    import keras

    keras.Sequential([keras.Input((10,)), keras.layers.Dense(3)]).save(tmp_path / "dense.keras")
    with pytest.raises(ValueError, match="dense.keras holds a Sequential .* not an image-to-image generator"):
        load_translator(tmp_path / "dense.keras")
    (tmp_path / "cut.keras").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match="cut.keras' is not a readable .keras file"):
        load_translator(tmp_path / "cut.keras")


def test_load_translators_gives_the_directions_asked_and_the_reverse_ones_for_cycling(keras_run, tmp_path):
    model, root = keras_run
    translators = load_translators(root, directions=("b2a",))
    assert set(translators) == {"a2b", "b2a"}  # a CycleGAN: b2a asked, a2b too, to cycle back
    image = np.random.default_rng(2).uniform(-1, 1, (16, 24, 3)).astype(np.float32)
    for direction in ("a2b", "b2a"):
        assert isinstance(translators[direction], KerasTranslator)
        np.testing.assert_allclose(translators[direction].translate(image),
                                   translate(getattr(model, f"gen_{direction}"), image).numpy(), atol=1e-5)
    with pytest.raises(FileNotFoundError, match="nothing.keras"):
        load_translators(tmp_path / "nothing.keras")


@pytest.mark.slow
def test_precision_reaches_keras_and_savedmodel_translators_and_is_refused_for_fixed_files(exported_cyclegan, tmp_path):
    import keras
    import tensorflow as tf

    model, root = exported_cyclegan
    image = np.random.default_rng(1).uniform(-1, 1, (36, 52, 3)).astype(np.float32)
    full = translate(model.gen_b2a, image).numpy()
    for path in (root / "model.keras", root / "export" / "b2a" / "savedmodel"):
        reduced = load_translator(path, "b2a", precision="bfloat16").translate(image)
        assert 0 < np.abs(reduced - full).max() < 0.1, path
        np.testing.assert_allclose(load_translator(path, "b2a", precision="float32")
                                   .translate(image), full, atol=1e-4)
    for name in ("generator_float32.tflite", "generator.onnx"):
        with pytest.raises(ValueError, match=r"precision was fixed when it was exported.*'float16'"):
            load_translator(root / "export" / "b2a" / name, precision="float16")
    # A SavedModel exported before the reduced signatures existed: one line naming what it has.
    archive = keras.export.ExportArchive()
    archive.track(model.gen_b2a)
    archive.add_endpoint("translate_float", lambda images: model.gen_b2a(images),
                         input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32)])
    archive.write_out(str(tmp_path / "old"), verbose=False)
    with pytest.raises(ValueError,
                       match=r"no 'translate_float_bfloat16' signature.*it has serving_default, translate_float\)"):
        load_translator(tmp_path / "old", precision="bfloat16")


@pytest.mark.slow
def test_a_one_generator_model_of_any_kind_refuses_the_direction_it_lacks(exported_cyclegan, tmp_path):
    model, root = exported_cyclegan
    model.gen_a2b.save(tmp_path / "gen.keras")  # what import-torch writes of one .pth: the a2b direction
    export = root / "export"  # holds b2a only
    for path, has in [(tmp_path / "gen.keras", "a2b"), (export, "b2a"), (export / "b2a", "b2a"),
                      (export / "b2a" / "savedmodel", "b2a"), (export / "b2a" / "generator_float32.tflite", "b2a"),
                      (export / "b2a" / "generator.onnx", "b2a")]:
        lacks = "b2a" if has == "a2b" else "a2b"
        assert model_directions(path) == (has,), path
        with pytest.raises(ValueError, match=rf"{path.name}' has no {lacks} generator: it translates {has} only"):
            load_translator(path, lacks)
        with pytest.raises(ValueError, match=f"has no {lacks} generator"):
            load_translators(path, ("a2b", "b2a"))
        assert set(load_translators(path, (has,))) == {has}  # nothing to cycle back through
        assert load_translator(path) is not None  # no direction given: the one it has


@pytest.mark.slow
def test_an_export_folder_with_only_tflite_or_only_onnx_translates(exported_cyclegan, tmp_path, caplog):
    model, root = exported_cyclegan
    image = np.random.default_rng(3).uniform(-1, 1, (32, 32, 3)).astype(np.float32)
    expected = translate(model.gen_b2a, image).numpy()
    for name, kind in (("generator_float32.tflite", TFLiteTranslator), ("generator.onnx", OnnxTranslator)):
        folder = tmp_path / name / "b2a"
        folder.mkdir(parents=True)
        shutil.copy(root / "export" / "b2a" / name, folder / name)
        shutil.copy(root / "export" / "b2a" / "metadata.json", folder / "metadata.json")
        with caplog.at_level(logging.INFO, logger="tf_cyclegan.inference.loading"):
            translator = load_translator(tmp_path / name, "b2a")
        assert isinstance(translator, kind) and f"{name} (an export folder's best format" in caplog.text
        np.testing.assert_allclose(translator.translate(image), expected, atol=1e-3)


def test_an_export_direction_folder_picks_savedmodel_then_tflite_float32_then_onnx(tmp_path):
    folder = tmp_path / "a2b"
    folder.mkdir()
    with pytest.raises(ValueError, match="Cannot load a model from .*a2b'"):
        resolve_model_path(folder)
    for name in ("generator_int8.tflite", "generator.onnx", "generator_float32.tflite", "savedmodel"):
        if name == "savedmodel":
            (folder / name).mkdir()
            (folder / name / "saved_model.pb").write_bytes(b"")
        else:
            (folder / name).write_bytes(b"")
        found = resolve_model_path(folder)
        assert os.path.basename(found.path) == name, name  # each newcomer is better than what was there
        assert resolve_model_path(tmp_path, "a2b") == found  # the export folder above it
    with pytest.raises(ValueError, match="export folder .* hold no savedmodel"):
        (tmp_path / "empty" / "b2a").mkdir(parents=True)
        model_directions(tmp_path / "empty")


@pytest.mark.parametrize("tile", [0, -5, 30, 6, 512.0])
def test_a_translator_refuses_a_bad_tile_before_any_work(tile):
    with pytest.raises(ValueError, match=rf"tile must be .*Received: {tile!r}"):
        Translator(tile=tile)
    assert Translator(tile=8).tile == 8


def test_a_keras_generator_translates_a2b_only(keras_run, tmp_path):
    model, _ = keras_run
    model.gen_b2a.save(tmp_path / "gen.keras")
    assert model_directions(tmp_path / "gen.keras") == ("a2b",)
    with pytest.raises(ValueError, match=r"gen.keras' has no b2a generator: it translates a2b only"):
        load_translator(tmp_path / "gen.keras", "b2a", tile=32)
    image = np.random.default_rng(4).uniform(-1, 1, (16, 24, 3)).astype(np.float32)
    [(direction, translator)] = load_translators(tmp_path / "gen.keras", ("a2b",)).items()
    assert direction == "a2b"
    np.testing.assert_allclose(translator.translate(image), translate(model.gen_b2a, image).numpy(), atol=1e-5)


def test_a_lone_file_that_does_not_say_its_direction_is_taken_as_a2b_with_a_warning(tmp_path, caplog):
    from tf_cyclegan.inference.loading import ModelPath, _recorded_direction

    bare = tmp_path / "copied" / "generator_float32.tflite"  # copied out of its export folder
    bare.parent.mkdir()
    bare.write_bytes(b"not read here")
    with caplog.at_level("WARNING"):
        assert _recorded_direction(ModelPath("tflite", str(bare), None)) == "a2b"
    assert "says nothing of its direction" in caplog.text and "taken as a2b" in caplog.text
    (tmp_path / "copied" / "metadata.json").write_text('{"direction": "b2a"}')
    caplog.clear()
    assert _recorded_direction(ModelPath("tflite", str(bare), None)) == "b2a" and not caplog.text
