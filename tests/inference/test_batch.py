import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import saved_tiny_cyclegan

from tf_cyclegan.data.images import IMAGE_EXTENSIONS
from tf_cyclegan.files import OutputExists
from tf_cyclegan.inference.batch import collect_inputs, plan_outputs, translate_paths
from tf_cyclegan.inference.loading import load_translator


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A folder holding a tiny CycleGAN's model.keras (a run directory, as far as loading goes)."""
    root = tmp_path_factory.mktemp("models")
    saved_tiny_cyclegan(root / "model.keras")
    return root


def test_translate_paths_keeps_names_and_sizes_and_skips_non_images(saved_model, tmp_path, caplog):
    root = saved_model
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


def test_an_out_folder_inside_the_input_folder_is_not_read_as_input_on_a_rerun(tmp_path, caplog):
    _png(tmp_path / "pics" / "a.png")
    out = tmp_path / "pics" / "out"
    for overwrite in (False, True):  # the first run, then the same command again
        with caplog.at_level(logging.WARNING):
            written, skipped = translate_paths(_Identity(), [tmp_path / "pics"], out, progress=False,
                                               overwrite=overwrite)
        assert written == [str(out / "a.png")]
    assert sorted(os.listdir(out)) == ["a.png"]
    assert skipped == [str(out)]  # said once, for the folder, on the rerun
    assert "its 1 file(s) are taken for earlier results" in caplog.text


def test_an_input_file_inside_out_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    _png(tmp_path / "out" / "old.png")
    _png(tmp_path / "new.png")
    with caplog.at_level(logging.WARNING):
        written, skipped = translate_paths(_Identity(), [tmp_path / "out" / "old.png", tmp_path / "new.png"],
                                           tmp_path / "out", progress=False)
    assert written == [str(tmp_path / "out" / "new.png")] and skipped == [str(tmp_path / "out" / "old.png")]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "old.png: it is inside --out" in warning and "where the outputs go" in warning


@pytest.mark.parametrize("layout, inputs, why", [
    (["out/old.png"], ["out/old.png"], "old.png' skipped, it is inside --out"),
    (["in/notes.txt", "in/more.txt"], ["in"], r"more.txt' skipped, not a .jpg.* \(and 1 more skipped\)"),
    ([], ["in"], r"/in'$"),  # an empty folder: nothing else to say
])
def test_nothing_to_translate_is_one_error_before_any_work(tmp_path, layout, inputs, why):
    (tmp_path / "in").mkdir()
    for rel in layout:
        os.makedirs(os.path.dirname(tmp_path / rel), exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    with pytest.raises(ValueError, match=f"No image to translate in .*{why}"):
        plan_outputs([tmp_path / rel for rel in inputs], tmp_path / "out")


def test_the_plan_is_made_before_anything_is_written(tmp_path):
    _png(tmp_path / "in" / "b.png")
    _png(tmp_path / "in" / "sub" / "a.jpg")
    (tmp_path / "in" / "notes.txt").write_text("hello")
    (tmp_path / "in" / ".hidden.png").write_text("left out")
    plan, others = plan_outputs([tmp_path / "in"], tmp_path / "out")
    assert plan == [(str(tmp_path / "in" / "b.png"), str(tmp_path / "out" / "b.png")),
                    (str(tmp_path / "in" / "sub" / "a.jpg"), str(tmp_path / "out" / "sub" / "a.png"))]
    assert others == [(str(tmp_path / "in" / "notes.txt"), f"not a {', '.join(IMAGE_EXTENSIONS)} file")]
    assert not (tmp_path / "out").exists()
    assert collect_inputs([tmp_path / "in" / "b.png"]) == [(str(tmp_path / "in" / "b.png"), "b")]


def test_missing_inputs_and_an_out_path_that_is_a_file_are_refused(tmp_path):
    _png(tmp_path / "in" / "x.png")
    with pytest.raises(FileNotFoundError, match="Input not found: .*nothing.png"):
        plan_outputs([tmp_path / "in", tmp_path / "nothing.png"], tmp_path / "out")
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(OutputExists, match="a_file' is a file, not a folder"):
        translate_paths(_Identity(), [tmp_path / "in"], tmp_path / "a_file")
    assert (tmp_path / "a_file").read_text() == "mine"


def test_every_existing_output_is_counted_when_refusing(tmp_path):
    for name in ("x.png", "y.png", "z.png"):
        _png(tmp_path / "in" / name)
        _png(tmp_path / "out" / name, size=(2, 2))
    with pytest.raises(OutputExists, match=r"x\.png' exists already \(and 2 more\)"):
        plan_outputs([tmp_path / "in"], tmp_path / "out")


def test_a_corrupt_image_is_skipped_with_a_warning_and_the_others_are_translated(tmp_path, caplog):
    _png(tmp_path / "in" / "a.png")
    _png(tmp_path / "in" / "c.png")
    good = (tmp_path / "in" / "a.png").read_bytes()
    (tmp_path / "in" / "b.png").write_bytes(good[: len(good) // 2])  # a PNG cut short
    with caplog.at_level(logging.WARNING):
        written, skipped = translate_paths(_Identity(), [tmp_path / "in"], tmp_path / "out")
    assert [os.path.basename(p) for p in written] == ["a.png", "c.png"]
    assert skipped == [str(tmp_path / "in" / "b.png")]
    assert "Skipping" in caplog.text and "b.png" in caplog.text
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "c.png"]  # no partial b.png, no temporary
    np.testing.assert_array_equal(tf.io.decode_png(tf.io.read_file(written[0])).numpy(),
                                  tf.io.decode_png(good).numpy())  # the identity: pixels kept exactly


@pytest.mark.parametrize("kind", ["fifo", "socket", "link to a fifo"])
def test_an_input_named_directly_that_is_not_a_regular_file_is_one_error_naming_it(tmp_path, kind):
    """Reading a FIFO blocks for ever: it is refused from its metadata, never opened."""
    import socket

    path = tmp_path / "in.png"
    if kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    else:
        os.mkfifo(tmp_path / "pipe.png")
        if kind == "fifo":
            path = tmp_path / "pipe.png"
        else:
            os.symlink(tmp_path / "pipe.png", path)
    what = "a socket" if kind == "socket" else "a FIFO"
    with pytest.raises(ValueError, match=f"Input '{path}' is not a regular file \\({what}\\), not an image file"):
        collect_inputs([str(path)])
