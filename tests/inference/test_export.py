import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_SIZE, random_pairs, saved_tiny_cyclegan, tiny_cyclegan

from tf_cyclegan import build_resnet_generator
from tf_cyclegan.inference.export import computing_in_float32, export_generator, export_model, tflite_bytes
from tf_cyclegan.inference.translate import translate


def _psnr(output, reference):
    mse = np.mean(((output - reference) / 2.0) ** 2)  # in [0, 1] units
    return 10 * np.log10(1.0 / mse)


@pytest.fixture
def exported(exported_cyclegan):
    """The generator of the run's one export (conftest) and its folder: SavedModel, TFLite, ONNX."""
    model, root = exported_cyclegan
    return model.gen_b2a, root / "export" / "b2a"


def _run_tflite(path, image):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), ops


@pytest.mark.slow
def test_savedmodel_float_signature_matches_keras_at_an_odd_size(exported):
    generator, out = exported
    loaded = tf.saved_model.load(str(out / "savedmodel"))
    assert set(loaded.signatures) == {"serving_default", "translate_float", "translate_float_bfloat16",
                                      "translate_float_float16"}
    image = np.random.default_rng(0).uniform(-1, 1, (1, 67, 131, 3)).astype(np.float32)
    result = loaded.signatures["translate_float"](images=tf.constant(image))["images"].numpy()
    assert result.shape == (1, 67, 131, 3)
    assert np.abs(result - translate(generator, image).numpy()).max() <= 1e-4


@pytest.mark.slow
def test_savedmodel_uint8_signature_keeps_size(exported):
    _, out = exported
    loaded = tf.saved_model.load(str(out / "savedmodel"))
    images = np.random.default_rng(1).integers(0, 256, (2, 67, 131, 3), dtype=np.uint8)
    result = loaded.signatures["serving_default"](images=tf.constant(images))["images"]
    assert result.shape == (2, 67, 131, 3) and result.dtype == tf.uint8


@pytest.mark.slow
def test_tflite_variants_against_keras(exported):
    generator, out = exported
    image = np.random.default_rng(2).uniform(-1, 1, (1, TINY_SIZE, TINY_SIZE, 3)).astype(np.float32)
    reference = generator(image).numpy()
    outputs = {}
    for variant in ("float32", "float16", "int8"):
        outputs[variant], ops = _run_tflite(out / f"generator_{variant}.tflite", image)
        assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
    assert np.abs(outputs["float32"] - reference).max() <= 1e-3
    assert _psnr(outputs["float16"], reference) >= 40.0
    assert _psnr(outputs["int8"], reference) >= 30.0  # floor stated in the README
    sizes = {v: os.path.getsize(out / f"generator_{v}.tflite") for v in outputs}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]


@pytest.mark.slow
def test_savedmodel_loads_without_tf_cyclegan(exported, tmp_path):
    _, out = exported
    script = textwrap.dedent(f"""
        import sys
        sys.modules["tf_cyclegan"] = None  # any import of the package now fails
        import numpy as np, tensorflow as tf
        model = tf.saved_model.load({str(out / "savedmodel")!r})
        image = np.zeros((1, 30, 50, 3), np.uint8)
        print(model.signatures["serving_default"](images=tf.constant(image))["images"].shape)
        odd = np.random.default_rng(0).uniform(-1, 1, (1, 30, 50, 3)).astype(np.float32)
        full = model.signatures["translate_float"](images=tf.constant(odd))["images"].numpy()
        for precision in ("bfloat16", "float16"):
            reduced = model.signatures["translate_float_" + precision](images=tf.constant(odd))["images"].numpy()
            mse = np.mean(((reduced - full) / 2) ** 2)
            print(precision, reduced.shape, reduced.dtype, 10 * np.log10(1 / mse), np.abs(reduced - full).max() > 0)
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(1, 30, 50, 3)" in result.stdout
    # The reduced-precision signatures: any size, float32 out, really reduced, close to float32.
    for precision, floor in (("bfloat16", 35.0), ("float16", 40.0)):
        line = next(line for line in result.stdout.splitlines() if line.startswith(precision))
        _, shape, dtype, psnr, differs = line.split(" ", 1)[0], *line.split(" ", 1)[1].rsplit(" ", 3)
        assert (shape, dtype, differs) == ("(1, 30, 50, 3)", "float32", "True") and float(psnr) >= floor, line


def test_tflite_size_must_suit_the_generator():
    with pytest.raises(ValueError, match="multiple of 4"):
        tflite_bytes(build_resnet_generator(filters=4, num_residual_blocks=1), 30)


@pytest.mark.slow
def test_export_model_writes_both_directions_with_metadata(tmp_path):
    saved_tiny_cyclegan(tmp_path / "model.keras")
    written = export_model(tmp_path / "model.keras", tmp_path / "out", formats=("savedmodel",))
    assert set(written) == {"a2b", "b2a"}
    meta = json.loads((tmp_path / "out" / "b2a" / "metadata.json").read_text())
    assert meta["direction"] == "b2a" and meta["training_crop_size"] == 32
    assert meta["steps_trained"] == 0 and meta["package_version"] and meta["upsampling"] == "transpose"
    assert os.path.isfile(tmp_path / "out" / "a2b" / "savedmodel" / "saved_model.pb")
    with pytest.raises(ValueError, match="expected a .keras file or a run directory"):
        export_model(tmp_path / "out", tmp_path / "again")


@pytest.mark.slow
def test_onnx_matches_keras_with_dynamic_height_and_width(exported):
    import onnxruntime

    generator, out = exported
    session = onnxruntime.InferenceSession(str(out / "generator.onnx"), providers=["CPUExecutionProvider"])
    dims = session.get_inputs()[0].shape
    assert not isinstance(dims[1], int) and not isinstance(dims[2], int)  # symbolic H and W
    for shape in [(1, 68, 132, 3), (2, 40, 24, 3)]:
        image = np.random.default_rng(3).uniform(-1, 1, shape).astype(np.float32)
        result = session.run(None, {session.get_inputs()[0].name: image})[0]
        assert np.abs(result - generator(image).numpy()).max() <= 1e-4


@pytest.mark.slow
def test_a_model_trained_under_mixed_float16_saves_reloads_and_exports_float32(tmp_path):
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    model = tiny_cyclegan()
    model.compile()
    for batch in random_pairs(count=2):  # two steps, eagerly (the step's graph is not what is tested here)
        model.train_step(batch)
    model.save(tmp_path / "model.keras")
    keras.mixed_precision.set_global_policy("float32")  # as a fresh process that loads it
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(reloaded.gen_optimizer, keras.optimizers.LossScaleOptimizer)
    image = np.random.default_rng(4).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    expected = reloaded.gen_a2b(image)
    assert expected.dtype == tf.float32
    np.testing.assert_allclose(expected.numpy(), model.gen_a2b(image).numpy(), atol=1e-6)

    # The exports compute in float32 (the weights are float32): against the reloaded weights
    # computed in float32 they agree to float rounding, against the float16 computation to
    # float16's (about 1.3e-3 here: float16 keeps 11 bits).
    in_float32 = computing_in_float32(reloaded.gen_a2b)
    assert in_float32 is not reloaded.gen_a2b and in_float32.layers[1].compute_dtype == "float32"
    expected32 = in_float32(image).numpy()
    assert np.abs(expected32 - expected.numpy()).max() <= 5e-3

    export_model(tmp_path / "model.keras", tmp_path / "out", formats=("savedmodel", "tflite"), directions=("a2b",),
                 tflite_size=32)
    saved = tf.saved_model.load(str(tmp_path / "out" / "a2b" / "savedmodel"))
    result = saved.signatures["translate_float"](images=tf.constant(image))["images"]
    assert result.dtype == tf.float32
    assert np.abs(result.numpy() - expected32).max() <= 1e-5
    tflite, _ = _run_tflite(tmp_path / "out" / "a2b" / "generator_float32.tflite", image)
    assert tflite.dtype == np.float32
    assert np.abs(tflite - expected32).max() <= 1e-3
    print("largest difference from the reloaded float16 computation: "
          f"SavedModel {np.abs(result.numpy() - expected.numpy()).max():.2e}, "
          f"TFLite {np.abs(tflite - expected.numpy()).max():.2e}")


_KILLED_EXPORT = textwrap.dedent("""
    import os, signal, sys
    from tf_cyclegan.inference import export

    def killed(*args, **kwargs):  # the process dies in the middle of the first TFLite conversion
        os.kill(os.getpid(), signal.SIGKILL)

    export.tflite_bytes = killed
    export.export_model(sys.argv[1], sys.argv[2], formats=("savedmodel", "tflite"), directions=("a2b",))
""")


@pytest.fixture(scope="module")
def saved_cyclegan(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    saved_tiny_cyclegan(path)
    return path


@pytest.mark.slow
def test_a_killed_export_leaves_nothing_that_looks_real(saved_cyclegan, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", _KILLED_EXPORT, str(saved_cyclegan), str(out)],
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr[-2000:]
    assert not [name for name in os.listdir(out) if not name.startswith(".tmp-")]  # no a2b/, no 0-byte .tflite
    # The next export (a new process) clears what the killed one left and writes the folder whole.
    export_model(saved_cyclegan, out, formats=("savedmodel",), directions=("a2b",))
    assert os.listdir(out) == ["a2b"]


@pytest.mark.slow
def test_a_failed_conversion_writes_nothing(saved_cyclegan, tmp_path, monkeypatch):
    from tf_cyclegan.inference import export

    def fails(*args, **kwargs):
        raise ValueError("conversion failed")

    monkeypatch.setattr(export, "tflite_bytes", fails)
    with pytest.raises(ValueError, match="conversion failed"):
        export_model(saved_cyclegan, tmp_path / "out", formats=("savedmodel", "tflite"), directions=("a2b",))
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.slow
def test_a_resize_upsampling_generator_exports_to_every_format_with_parity(tmp_path):
    import onnxruntime

    generator = build_resnet_generator(filters=8, num_residual_blocks=1, upsampling="resize")
    export_generator(generator, tmp_path, formats=("savedmodel", "tflite", "onnx"), tflite_size=32)
    odd = np.random.default_rng(4).uniform(-1, 1, (1, 37, 51, 3)).astype(np.float32)
    expected = translate(generator, odd).numpy()
    loaded = tf.saved_model.load(str(tmp_path / "savedmodel"))
    result = loaded.signatures["translate_float"](images=tf.constant(odd))["images"].numpy()
    assert np.abs(result - expected).max() <= 1e-4

    square = np.random.default_rng(5).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    reference = generator(square).numpy()
    output, ops = _run_tflite(tmp_path / "generator_float32.tflite", square)
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
    assert np.abs(output - reference).max() <= 1e-3

    session = onnxruntime.InferenceSession(str(tmp_path / "generator.onnx"), providers=["CPUExecutionProvider"])
    padded = np.random.default_rng(6).uniform(-1, 1, (1, 36, 52, 3)).astype(np.float32)
    result = session.run(None, {session.get_inputs()[0].name: padded})[0]
    assert np.abs(result - generator(padded).numpy()).max() <= 1e-4


def _write_photos(folder, count, size=(40, 56), seed=0):
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size[0], :size[1]] / max(size)
    for i in range(count):
        smooth = np.stack([np.sin(rng.uniform(2, 9) * x + rng.uniform(0, 6)) * np.cos(rng.uniform(2, 9) * y)
                           for _ in range(3)], axis=-1)
        image = np.clip(127.5 * (1 + 0.8 * smooth + 0.1 * rng.normal(size=smooth.shape)), 0, 255)
        Image.fromarray(image.astype(np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.slow
def test_full_integer_tflite_is_calibrated_on_the_users_images(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    generator = build_resnet_generator(filters=8, num_residual_blocks=1)
    photos = _write_photos(tmp_path / "photos", 6)
    written = export_generator(generator, tmp_path / "out", formats=("tflite",), tflite_size=32, calibration=photos)
    assert "tflite_int8_full" in written
    path = tmp_path / "out" / "generator_int8_full.tflite"
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    kinds = {detail["dtype"] for detail in interpreter.get_tensor_details()}
    assert np.int8 in kinds and interpreter.get_input_details()[0]["dtype"] == np.float32  # int8 inside, float I/O
    image = _write_photos(tmp_path / "test", 1, size=(32, 32), seed=9)
    from tf_cyclegan.inference.export import calibration_images

    test = calibration_images(image, 32)[0]
    output, ops = _run_tflite(path, test)
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
    assert _psnr(output, generator(test).numpy()) >= 20.0
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert meta["files"]["tflite_int8_full"] == "generator_int8_full.tflite"


def test_calibration_arguments_are_checked_before_any_work(tmp_path):
    from tf_cyclegan.inference.export import calibration_folder, check_export_arguments

    with pytest.raises(ValueError, match="add tflite to the formats"):
        check_export_arguments(("savedmodel",), calibration=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        check_export_arguments(("tflite",), 32, calibration=str(tmp_path / "missing"))
    (tmp_path / "trainA").mkdir()
    (tmp_path / "testB").mkdir()
    assert calibration_folder(str(tmp_path), "a2b", 2) == str(tmp_path / "trainA")
    assert calibration_folder(str(tmp_path), "b2a", 2) == str(tmp_path / "testB")
    flat = tmp_path / "flat"
    flat.mkdir()
    assert calibration_folder(str(flat), "b2a", 1) == str(flat)
    with pytest.raises(ValueError, match="each needs its own inputs"):
        calibration_folder(str(flat), "a2b", 2)
    empty_photos = tmp_path / "none"
    empty_photos.mkdir()
    with pytest.raises(ValueError, match="none"):
        export_generator(build_resnet_generator(filters=4, num_residual_blocks=1), tmp_path / "out",
                         formats=("tflite",), tflite_size=16, calibration=empty_photos)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def fake_writers(monkeypatch):
    """Makes the format writers write small marker files saying which export made them: the
    tests of what --overwrite keeps are about files, not conversions."""
    from tf_cyclegan.inference import export

    state = {"round": "first"}

    def savedmodel(generator, path):
        os.makedirs(path)
        with open(os.path.join(path, "saved_model.pb"), "w") as f:
            f.write(state["round"])

    def onnx(generator, path):
        with open(path, "w") as f:
            f.write(state["round"])

    monkeypatch.setattr(export, "export_savedmodel", savedmodel)
    monkeypatch.setattr(export, "export_onnx", onnx)
    monkeypatch.setattr(export, "fixed_size_savedmodel", lambda generator, size, path: None)
    monkeypatch.setattr(export, "tflite_bytes", lambda *args, **kwargs: state["round"].encode())
    monkeypatch.setattr(export, "computing_in_float32", lambda generator: generator)
    return state


def test_every_tflite_variant_converts_from_one_fixed_size_savedmodel(fake_writers, tmp_path, monkeypatch):
    from tf_cyclegan.inference import export

    written, converted = [], []
    monkeypatch.setattr(export, "fixed_size_savedmodel", lambda generator, size, path: written.append((size, path)))

    def tflite_bytes(generator, size, variant, calibration=None, saved_model=None):
        converted.append((variant, saved_model))
        return b"tflite"

    monkeypatch.setattr(export, "tflite_bytes", tflite_bytes)
    export_generator(None, tmp_path / "a2b", formats=("tflite",), tflite_size=32)
    [(size, folder)] = written
    assert size == 32 and [variant for variant, _ in converted] == list(export.TFLITE_VARIANTS)
    assert all(saved_model == folder for _, saved_model in converted) and not os.path.exists(folder)


def test_overwrite_replaces_only_what_this_export_writes(fake_writers, tmp_path):
    out = tmp_path / "a2b"
    export_generator(None, out, formats=("savedmodel", "onnx"), metadata={"direction": "a2b"})
    (out / "notes.txt").write_text("mine")
    (out / "mine").mkdir()
    fake_writers["round"] = "second"
    written = export_generator(None, out, formats=("savedmodel", "tflite"), tflite_size=32,
                               metadata={"direction": "a2b"}, overwrite=True)
    assert sorted(os.listdir(out)) == ["generator.onnx", "generator_float16.tflite", "generator_float32.tflite",
                                       "generator_int8.tflite", "metadata.json", "mine", "notes.txt", "savedmodel"]
    assert (out / "savedmodel" / "saved_model.pb").read_text() == "second"  # replaced, as a whole folder
    assert (out / "generator_float32.tflite").read_text() == "second"
    assert (out / "generator.onnx").read_text() == "first"  # not exported this time: kept
    assert (out / "notes.txt").read_text() == "mine" and (out / "mine").is_dir()  # the user's: untouched
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["files"] == {"savedmodel": "savedmodel", "tflite_float32": "generator_float32.tflite",
                             "tflite_float16": "generator_float16.tflite", "tflite_int8": "generator_int8.tflite",
                             "onnx": "generator.onnx"}
    assert meta["kept_from_an_earlier_export"] == ["generator.onnx"]
    assert set(written) == {"savedmodel", "tflite_float32", "tflite_float16", "tflite_int8", "metadata"}
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp")]  # no temporary left


def test_a_failed_overwrite_leaves_the_earlier_export_as_it_was(fake_writers, monkeypatch, tmp_path):
    from tf_cyclegan.inference import export

    out = tmp_path / "a2b"
    export_generator(None, out, formats=("savedmodel",), metadata={"direction": "a2b"})
    before = {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)}

    def fails(*args, **kwargs):
        raise RuntimeError("conversion failed")

    monkeypatch.setattr(export, "tflite_bytes", fails)
    fake_writers["round"] = "second"
    with pytest.raises(RuntimeError, match="conversion failed"):
        export_generator(None, out, formats=("savedmodel", "tflite"), tflite_size=32, overwrite=True)
    assert {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)} == before
    assert (out / "savedmodel" / "saved_model.pb").read_text() == "first"
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp")]
