import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import saved_tiny_cyclegan

from tf_cyclegan.files import OutputExists
from tf_cyclegan.inference.batch import translate_paths
from tf_cyclegan.inference.export import export_generator
from tf_cyclegan.inference.loading import (
    KerasTranslator,
    OnnxTranslator,
    SavedModelTranslator,
    TFLiteTranslator,
    load_translator,
)
from tf_cyclegan.inference.translate import translate


@pytest.fixture(scope="module")
def trained_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    model = saved_tiny_cyclegan(root / "model.keras")
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


class _Identity:
    """A translator that returns its input: the tests here are about files, not networks."""

    def translate(self, image):
        return image


def _png(path, size=(6, 5)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(str(path), tf.io.encode_png(np.full((*size, 3), 9, np.uint8)))


def test_outputs_keep_the_inputs_relative_paths_and_several_folders_get_their_own(tmp_path):
    for rel in ("a/x.png", "a/sub/x.png", "b/x.png", "y.jpg"):
        _png(tmp_path / "in" / rel)
    written, _ = translate_paths(_Identity(), [tmp_path / "in" / "a"], tmp_path / "one", progress=False)
    assert sorted(os.path.relpath(p, tmp_path / "one") for p in written) == ["sub/x.png", "x.png"]
    written, _ = translate_paths(_Identity(), [tmp_path / "in" / "a", tmp_path / "in" / "b", tmp_path / "in" / "y.jpg"],
                                 tmp_path / "several", progress=False)
    assert sorted(os.path.relpath(p, tmp_path / "several") for p in written) == [
        "a/sub/x.png", "a/x.png", "b/x.png", "y.png"]


@pytest.mark.parametrize("layout, clash", [
    (["x.png", "x.jpg"], "x.jpg' and '.*x.png"),  # one stem, two formats
    (["one/x.png", "two/x.png"], "x.png' and '.*x.png"),  # two folders of one name, given as files
])
def test_two_inputs_for_one_output_are_refused_before_any_work(tmp_path, layout, clash):
    for rel in layout:
        _png(tmp_path / "in" / rel)
    inputs = [tmp_path / "in"] if layout[0].count("/") == 0 else [tmp_path / "in" / rel for rel in layout]
    with pytest.raises(ValueError, match=f"same output file: .*{clash}"):
        translate_paths(_Identity(), inputs, tmp_path / "out", progress=False)
    assert not os.path.exists(tmp_path / "out")


def test_an_input_is_never_overwritten_and_an_output_only_with_overwrite(tmp_path):
    _png(tmp_path / "in" / "x.png", size=(6, 5))
    before = (tmp_path / "in" / "x.png").read_bytes()
    with pytest.raises(ValueError, match="would replace an input"):
        translate_paths(_Identity(), [tmp_path / "in"], tmp_path / "in", progress=False, overwrite=True)
    assert (tmp_path / "in" / "x.png").read_bytes() == before
    _png(tmp_path / "out" / "x.png", size=(2, 2))  # an earlier result
    with pytest.raises(OutputExists, match="x.png' exists already: use --overwrite"):
        translate_paths(_Identity(), [tmp_path / "in"], tmp_path / "out", progress=False)
    assert tf.io.decode_png(tf.io.read_file(str(tmp_path / "out" / "x.png"))).shape == (2, 2, 3)
    translate_paths(_Identity(), [tmp_path / "in"], tmp_path / "out", progress=False, overwrite=True)
    assert tf.io.decode_png(tf.io.read_file(str(tmp_path / "out" / "x.png"))).shape == (6, 5, 3)
    assert sorted(os.listdir(tmp_path / "out")) == ["x.png"]  # no temporary left


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (4, 4), (5, 7), (1, 9)])
def test_images_smaller_than_the_generators_padding_translate_at_their_size(trained_files, size):
    model, root = trained_files
    image = np.random.default_rng(5).uniform(-1, 1, (*size, 3)).astype(np.float32)
    for path in ("model.keras", "export/b2a/generator.onnx", "export/b2a/generator_float32.tflite", "export/b2a"):
        translator = load_translator(root / path, "b2a")
        out = translator.translate(image)
        assert out.shape == (*size, 3) and np.isfinite(out).all()
    direct = translate(model.gen_b2a, image).numpy()
    assert direct.shape == (*size, 3)


def test_an_out_folder_inside_the_input_folder_is_not_read_as_input_on_a_rerun(tmp_path):
    _png(tmp_path / "pics" / "a.png")
    out = tmp_path / "pics" / "out"
    for overwrite in (False, True):  # the first run, then the same command again
        written, _ = translate_paths(_Identity(), [tmp_path / "pics"], out, progress=False, overwrite=overwrite)
        assert written == [str(out / "a.png")]
    assert sorted(os.listdir(out)) == ["a.png"]


def test_model_files_that_are_not_models_are_named(tmp_path):
    for name in ("empty.onnx", "junk.onnx", "empty.tflite", "junk.tflite"):
        (tmp_path / name).write_bytes(b"" if name.startswith("empty") else b"junk")
        with pytest.raises(ValueError, match=f"Cannot load .*{name}' as an? (ONNX|TFLite) model"):
            load_translator(tmp_path / name)
