import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_cyclegan

from tf_cyclegan.batch_translate import translate_paths
from tf_cyclegan.export import export_generator
from tf_cyclegan.inference import translate
from tf_cyclegan.translators import (
    KerasTranslator,
    OnnxTranslator,
    SavedModelTranslator,
    TFLiteTranslator,
    load_translator,
)


@pytest.fixture(scope="module")
def trained_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    model = tiny_cyclegan()
    model.compile()
    model.build((None, 32, 32, 3))
    model.save(root / "model.keras")
    export_generator(model.gen_b2a, root / "export" / "b2a", formats=("savedmodel", "tflite", "onnx"),
                     tflite_size=32)
    return model, root


def test_every_path_kind_loads_the_right_generator(trained_files):
    model, root = trained_files
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


def test_tflite_translator_tiles_any_size(trained_files):
    _, root = trained_files
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


def test_translate_paths_keeps_names_and_sizes_and_skips_non_images(trained_files, tmp_path, caplog):
    _, root = trained_files
    inputs = tmp_path / "in"
    inputs.mkdir()
    tf.io.write_file(str(inputs / "wide.jpg"), tf.io.encode_jpeg(np.zeros((30, 70, 3), np.uint8)))
    tf.io.write_file(str(inputs / "odd.png"), tf.io.encode_png(np.zeros((33, 21, 3), np.uint8)))
    (inputs / "broken.png").write_text("not an image")
    (inputs / "notes.txt").write_text("hello")
    written, skipped = translate_paths(load_translator(root), [inputs], tmp_path / "out", progress=False)
    assert sorted(p.split("/")[-1] for p in written) == ["odd.png", "wide.png"]
    assert sorted(p.split("/")[-1] for p in skipped) == ["broken.png", "notes.txt"]
    assert "broken.png" in caplog.text and "notes.txt" in caplog.text
    wide = tf.io.decode_png(tf.io.read_file(str(tmp_path / "out" / "wide.png")))
    assert wide.shape == (30, 70, 3)
