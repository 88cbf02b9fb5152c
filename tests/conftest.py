"""Shared fixtures: tiny networks, a tiny synthetic dataset, one export, and a clean dtype policy."""

import contextlib
import os
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The XLA tests check that a step compiles and what it computes, not how fast the compiled
# code runs: LLVM's optimisation of XLA's CPU code, off, changes that code's speed and at most
# its rounding (whether multiply-adds are fused), and takes a third to a half off each compile
# here. Child processes inherit it; benchmarks run outside the tests keep XLA's default. A
# level the caller set is kept.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_cyclegan.data.synthetic import make_demo_data  # noqa: E402

TINY_SIZE = 32
TESTS = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(os.path.dirname(TESTS), "configs")
FIXTURES = os.path.join(TESTS, "fixtures")


def tiny_cyclegan(**kwargs):
    """Four 4-filter networks: a CycleGAN that traces and steps in seconds (`kwargs` go to
    `build_cyclegan` and win over these sizes)."""
    from tf_cyclegan.models.cyclegan import build_cyclegan

    return build_cyclegan(**{"filters": 4, "num_residual_blocks": 1, "disc_filters": 4, "pool_size": 3,
                             "pool_seed": 0, **kwargs})


def built_tiny_cyclegan():
    """A compiled `tiny_cyclegan()` with its pools built for TINY_SIZE images (nothing trained)."""
    model = tiny_cyclegan()
    model.compile()
    model.build((1, TINY_SIZE, TINY_SIZE, 3))
    return model


def saved_tiny_cyclegan(path, **kwargs):
    """A compiled, built `tiny_cyclegan(**kwargs)` saved to `path` (.keras); returns the model."""
    model = tiny_cyclegan(**kwargs)
    model.compile()
    model.build((None, TINY_SIZE, TINY_SIZE, 3))
    model.save(path)
    return model


def subprocess_env(**extra):
    """Environment for a child Python that imports what this test process imports."""
    import sys

    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TF_CPP_MIN_LOG_LEVEL="2", **extra)


def random_pairs(count=4, size=TINY_SIZE, seed=0):
    rng = np.random.default_rng(seed)
    real_a = rng.uniform(-1, 1, (count, size, size, 3)).astype("float32")
    real_b = rng.uniform(-1, 1, (count, size, size, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((real_a, real_b)).batch(1)


class RecordWeights(keras.callbacks.Callback):
    """The weights of the model's networks `names` after every training step, in `seen`."""

    def __init__(self, *names):
        super().__init__()
        self.names, self.seen = names, []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append([np.asarray(w) for name in self.names for w in getattr(self.model, name).weights])


def hand_average(history, decay):
    """The bias-corrected moving average of weights seen at steps 1..t: the i-th weighted by
    decay ** (t - i), normalised (what `tf_cyclegan.models.averaging` keeps)."""
    t = len(history)
    factors = np.array([decay ** (t - i) for i in range(1, t + 1)], np.float64)
    return [sum(f * step[k].astype(np.float64) for f, step in zip(factors, history)) / factors.sum()
            for k in range(len(history[0]))]


def image_folder(root, name, count, size=(40, 50), seed=0):
    """`root/name/` holding `count` random RGB PNGs (`0.png`, `1.png`, ...) of `size` (H, W)."""
    folder = root / name
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, size + (3,), dtype=np.uint8)
        tf.io.write_file(str(folder / f"{i}.png"), tf.io.encode_png(pixels))
    return folder


def conv_path(monkeypatch, lean):
    """Makes `LeanConv2D` take its lean gradients (`lean=True`: what a CPU running TensorFlow's
    own kernels takes) or Keras' (what a GPU, or a CPU running oneDNN, takes), on any machine."""
    from tf_cyclegan import runtime

    monkeypatch.setattr(runtime, "has_gpu", lambda: not lean)
    monkeypatch.setattr(runtime, "onednn_enabled", lambda: False)


def group_norm_then(activation):
    """Keras' own layers for what `InstanceNormalization(activation=...)` computes, op by op."""
    norm = keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, center=False, scale=False)
    act = {
        None: lambda t: t,
        "relu": keras.layers.ReLU(),
        "leaky_relu": keras.layers.LeakyReLU(0.2),
    }[activation]
    return lambda t: act(norm(t))


def images_that_crashed_or_misread(folder, prefix=""):
    """Writes into `folder` an animated WebP (it crashed TensorFlow's decoder) and an 8-bit
    palette BMP (TensorFlow decoded it as grey indices), named `<prefix>animated.webp` and
    `<prefix>palette.bmp`; returns {"animated": ..., "palette": ...}, the pixels Pillow shows."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(os.path.join(folder, f"{prefix}animated.webp"), save_all=True, append_images=frames[1:],
                   lossless=True)
    red_and_blue = np.zeros((16, 16, 3), np.uint8)
    red_and_blue[:, :8, 0] = 255
    red_and_blue[:, 8:, 2] = 255
    Image.fromarray(red_and_blue).quantize(4).save(os.path.join(folder, f"{prefix}palette.bmp"))
    return {"animated": np.asarray(frames[0]), "palette": red_and_blue}


@contextlib.contextmanager
def fifo_nobody_may_read(path):
    """Makes a FIFO at `path`; fails the test, instead of hanging it, if anything opens it to read.

    Opening a FIFO to read blocks until a writer comes: a watcher plays that writer (opening
    it to write succeeds only while a reader waits), which lets the reader go on, and records it.
    """
    os.mkfifo(path)
    readers = []
    stop = threading.Event()

    def watch():
        while not stop.wait(0.05):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody waits to read
                continue
            readers.append(path)
            os.close(fd)  # the reader sees an empty file

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield path
    finally:
        stop.set()
        watcher.join()
    assert not readers, f"{path} (a FIFO) was opened to be read"


def run_layer_test(layer_class, init_kwargs, input_shape, expected_output_shape, tmp_path, reference=None,
                   seed=0):
    """Every layer's tests in one call (keras-hub's `run_layer_test`, for this package's layers):

    - config round trip: `from_config(get_config())` gives the same config, and the layer
      survives `serialize_keras_object` / `deserialize_keras_object`;
    - output shape and dtype (float32) on random input, weights perturbed from their initial
      values so that a scale of ones or an offset of zeros cannot hide a mistake;
    - a mixed-precision call (mixed_bfloat16: the output in bfloat16, the weights float32);
    - a `.keras` save and load, whose output equals the original's;
    - with `reference(x, *weights)`, the same computation written with plain TensorFlow ops:
      the output, and the gradient with respect to the input and to every weight against
      autodiff of the reference, so a layer's own gradient is checked against autodiff.

    Returns the layer that was tested (built, with its perturbed weights).
    """
    rng = np.random.default_rng(seed)
    layer = layer_class(**init_kwargs)
    config = layer.get_config()
    assert layer_class.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is layer_class and restored.get_config() == config

    x = tf.constant((rng.normal(size=input_shape) * 3 + 1).astype("float32"))
    y = layer(x)
    assert tuple(y.shape) == tuple(expected_output_shape) and y.dtype == tf.float32
    for weight in layer.weights:
        weight.assign(weight.numpy() + rng.normal(size=weight.shape).astype("float32") * 0.5)
    y = layer(x)

    mixed = layer_class(**init_kwargs, dtype="mixed_bfloat16")
    y16 = mixed(x)
    assert y16.dtype == tf.bfloat16 and tuple(y16.shape) == tuple(expected_output_shape)
    assert all(weight.dtype == "float32" for weight in mixed.weights)

    path = os.path.join(os.fspath(tmp_path), f"{layer_class.__name__}.keras")
    model = keras.Sequential([keras.Input(input_shape[1:]), layer])
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x).numpy(), y.numpy(), rtol=0, atol=0)

    if reference is not None:
        weights = list(layer.trainable_weights)
        upstream = tf.constant(rng.normal(size=expected_output_shape).astype("float32"))
        results = []
        for fn in (lambda t, *_: layer(t), reference):
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = fn(x, *weights)
                loss = tf.reduce_sum(tf.sin(out) * upstream)
            results.append((out.numpy(), [g.numpy() for g in tape.gradient(loss, [x, *weights])]))
        (out, grads), (out_ref, grads_ref) = results
        np.testing.assert_allclose(out, out_ref, atol=1e-5 * max(1.0, np.abs(out_ref).max()))
        for name, grad, grad_ref in zip(["input", *(w.name for w in weights)], grads, grads_ref):
            assert np.abs(grad_ref).max() > 0, name  # a gradient that is there to compare
            np.testing.assert_allclose(grad, grad_ref, atol=1e-4 * np.abs(grad_ref).max(), err_msg=name)
    return layer


def pytest_configure(config):
    """Imports every module of the package once, before any test runs. A test that patches a
    module's attribute must not be the first to import a module that takes that attribute by
    `from ... import`: that module would keep the patched object after the test. (Seen: the
    benchmark's argument test was the first to import `models.kinds` on one worker, and every
    later benchmark there failed on the patched builder.) Deprecated modules' warnings are
    their own tests' (tests/test_deprecated_modules.py imports them afresh)."""
    import importlib
    import pkgutil
    import warnings

    import tf_cyclegan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module in pkgutil.walk_packages(tf_cyclegan.__path__, "tf_cyclegan."):
            importlib.import_module(module.name)


def pytest_collection_modifyitems(config, items):
    """The tests marked slow first (a stable sort), so that the workers end on short tests
    together. `make test` also lets an idle pytest-xdist worker take tests queued for the other
    (`--dist worksteal`): the default hands each worker a block of tests in advance, and one
    worker was seen running its block of slow tests for minutes while the other waited."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test starts and ends under float32, whatever a test set."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A tiny synthetic dataset: 6 training images per domain, 3 test images, 36 px."""
    root = tmp_path_factory.mktemp("demo")
    make_demo_data(root, num_train=6, num_test=3, size=36, seed=1)
    return root


@pytest.fixture
def gpu_branches(monkeypatch):
    """Makes every "is there a GPU" branch of the package take its GPU side on this CPU:
    Keras' own convolution gradients, Grappler's default passes, mixed_float16 for `auto`."""
    from tf_cyclegan import runtime

    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    monkeypatch.setattr(runtime, "gpu_count", lambda: 1)


@pytest.fixture
def small_disk(tmp_path):
    """Makes folders on a small tmpfs, a real full disk: `small_disk(kilobytes)` returns one.

    Mounting needs root (as on this project's machines and CI); where it is refused the test
    is skipped and the tests that patch a writer to raise ENOSPC cover the logic.
    """
    import subprocess

    mounts = []

    def make(kilobytes):
        mount_point = tmp_path / f"disk{len(mounts)}"
        mount_point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k", "tmpfs", str(mount_point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounts.append(mount_point)
        return mount_point

    yield make
    for mount_point in mounts:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def shared_folder(tmp_path_factory, name):
    """The folder `name` of this test run, one for all its xdist workers (without xdist, one of
    this process's own): where `once_a_run` keeps what it made."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    folder = base / name
    folder.mkdir(exist_ok=True)
    return folder


def once_a_run(folder, key, make):
    """What `make()` returned (JSON), made once in this test run: the first xdist worker to ask
    runs it while the others wait on a lock, then all read its result from `folder`. For training
    runs and conversions several tests read, so that they cost their seconds once, not once a
    worker. A failed `make()` leaves no result: the next worker to ask tries again."""
    import fcntl
    import json

    result = folder / f".{key}.json"
    with open(folder / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not result.exists():
            result.write_text(json.dumps(make()))
    return json.loads(result.read_text())


@pytest.fixture(scope="session")
def exported_cyclegan(tmp_path_factory):
    """A CycleGAN saved as `model.keras`, and its b2a generator exported into `export/b2a/` in every
    format (SavedModel; TFLite float32, float16 and int8 at TINY_SIZE; ONNX), once a run
    (`once_a_run`): each conversion costs seconds, so the tests that read an export share this one.
    The generators have 8 filters and 2 residual blocks (the export tests' PSNR floors were
    checked on that size). No metadata beyond what every export writes: the `b2a/` folder is what
    says the direction. Returns (model, root), the model as read back from `model.keras`."""
    import shutil

    from tf_cyclegan.inference.export import FORMATS, export_generator

    root = shared_folder(tmp_path_factory, "exported_cyclegan")

    def make():
        shutil.rmtree(root / "export", ignore_errors=True)  # what a failed attempt may have left
        model = saved_tiny_cyclegan(root / "model.keras", filters=8, num_residual_blocks=2)
        export_generator(model.gen_b2a, root / "export" / "b2a", formats=FORMATS, tflite_size=TINY_SIZE)

    once_a_run(root, "made", make)
    return keras.saving.load_model(root / "model.keras"), root


# The CLI's arguments of `trained_run` after `train --run-dir <folder>`: configs/demo.yaml at
# test sizes, 1 constant epoch and 1 decaying one of 6 steps each (6 images a domain), averaged
# generators (on by default), evaluation at the second epoch's end, scalars every 2 steps and
# images every 4.
TRAINED_RUN_ARGS = [
    "--config", os.path.join(CONFIGS, "demo.yaml"),
    "--set", "data.load_size=36", "data.crop_size=32", "model.filters=4", "model.num_residual_blocks=1",
    "model.disc_filters=4", "train.epochs=1", "train.epochs_decay=1", "train.verbose=0", "data.num_samples=2",
    "eval.every_n_epochs=2", "monitor.scalars_every_n_steps=2", "monitor.images_every_n_steps=4",
]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished tiny run, trained once a run (`once_a_run`) by `tf-cyclegan train --run-dir
    <run> --set data.root=<data> TRAINED_RUN_ARGS` on its own synthetic dataset (6 training and
    3 test images a domain, 36 px, as `demo_root`). For the tests that read a run: each that
    changes one works on `copy_run`'s copy. Returns {"run_dir", "argv" (the command's arguments
    after "train", the run directory included), "printed" (its standard output)}."""
    import io
    import shutil

    from tf_cyclegan.cli import main

    root = shared_folder(tmp_path_factory, "trained_run")
    run_dir, data = root / "run", root / "data"
    argv = ["--run-dir", str(run_dir), "--set", f"data.root={data}", *TRAINED_RUN_ARGS]

    def make():
        shutil.rmtree(run_dir, ignore_errors=True)  # what a failed attempt may have left
        shutil.rmtree(data, ignore_errors=True)
        make_demo_data(data, num_train=6, num_test=3, size=36, seed=1)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(["train", *argv])
        assert code == 0, printed.getvalue()
        return printed.getvalue()

    return {"run_dir": run_dir, "argv": argv, "printed": once_a_run(root, "trained", make)}


def copy_run(trained_run, destination):
    """A copy of `trained_run`'s run directory at `destination`, and the CLI arguments that train
    it there (the run's own, with `--run-dir destination`)."""
    import shutil

    shutil.copytree(trained_run["run_dir"], destination)
    argv = list(trained_run["argv"])
    argv[argv.index("--run-dir") + 1] = str(destination)
    return argv


def assert_computes_as_pytorch(network, outputs, key, names, atol):
    """`network` on each fixture input `outputs["input_<name>"]` gives `outputs["<key>_<name>"]`
    (what the PyTorch network computed) within `atol`, at the same shape."""
    for name in names:
        ours = np.asarray(network(outputs[f"input_{name}"]))
        theirs = outputs[f"{key}_{name}"]
        assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
        assert np.abs(ours - theirs).max() <= atol, (name, np.abs(ours - theirs).max())
