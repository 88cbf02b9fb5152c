"""Every command README.md shows is run here, or skipped with a reason; so is its Python.

The commands are read from README's ```bash, ```sh and ```console blocks. `COMMANDS` maps each
to the tests that run it and `SKIPPED` says why a command is not run; a README command in
neither fails `test_every_readme_command_is_run_or_skipped`, so a new command comes with its
test. A test runs a command as README shows it, in a scratch folder holding a copy of
`configs/`, through `tf_cyclegan.cli.main` in this process, adding only the arguments in
`TINY` (sizes that take seconds instead of minutes; argparse lets a later flag win). Output
that a ```console block shows is checked against what the command printed, any number
standing for any number.
"""

import contextlib
import io
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import once_a_run, shared_folder, subprocess_env

from tf_cyclegan.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")

# README command -> the tests that run it.
COMMANDS = {
    "pip install -e .": ("test_install",),
    'pip install -e ".[onnx]"': ("test_install",),
    "make demo": ("test_make_demo",),
    "tf-cyclegan make-demo-data data/demo": ("test_make_demo_data", "test_make_demo"),
    "tf-cyclegan train --config configs/demo.yaml --run-dir runs/demo": ("test_train", "test_make_demo",
                                                                         "test_resume"),
    "tf-cyclegan train --config configs/demo.yaml --set model.lamda_cycle=5": ("test_an_unknown_key",),
    "tensorboard --logdir runs/": ("test_tensorboard",),
    "tf-cyclegan export runs/demo --formats savedmodel,tflite,onnx --out saved_models/demo": ("test_export",),
    "tf-cyclegan translate --model saved_models/demo --direction a2b data/demo/testA --out translated":
        ("test_translate",),
    "tf-cyclegan evaluate --model runs/demo --data data/demo --out report.json": ("test_evaluate",),
    "tf-cyclegan bench --size 128 --filters 64 --num-residual-blocks 9 --steps 10": ("test_bench",),
    "tf-cyclegan import-torch checkpoints/horse2zebra_pretrained/latest_net_G.pth --out horse2zebra.keras":
        ("test_import_torch",),
}

# README command -> why no test runs it.
SKIPPED = {
    'pip install -e ".[gpu]"': "downloads TensorFlow's CUDA libraries, for a GPU that a CPU machine does not have",
    "make test": "runs this very suite (.ci/run runs it)",
    "tf-cyclegan train --config configs/horse2zebra.yaml --run-dir runs/h2z":
        "downloads cycle_gan/horse2zebra from TFDS and trains the paper's networks for 200 epochs (GPU work); "
        "test_train runs the same command on the demo config",
}

# Added to a command's arguments, by subcommand: seconds instead of minutes.
TINY = {
    "make-demo-data": ["--num-train", "4", "--num-test", "2", "--size", "36"],
    "train": ["--set", "data.load_size=36", "data.crop_size=32", "model.filters=4", "model.num_residual_blocks=1",
              "model.disc_filters=4", "train.epochs=1", "train.epochs_decay=1", "train.steps_per_epoch=2",
              "data.num_samples=2", "monitor.scalars_every_n_steps=1"],
    "bench": ["--size", "32", "--filters", "4", "--num-residual-blocks", "1", "--steps", "2", "--warmup", "1"],
}

# First line of a README ```python block -> (text in it, what the test runs instead).
PYTHON_SNIPPETS = {
    "import tf_cyclegan as tc": [
        ("load_size=72, crop_size=64", "load_size=36, crop_size=32"),
        ("filters=16, num_residual_blocks=3", "filters=4, num_residual_blocks=1"),
        ("build_patchgan_discriminator(filters=16)", "build_patchgan_discriminator(filters=4)"),
        ("epochs=9", "epochs=1"),
    ],
}


# ---------------------------------------------------------------- reading README


def readme_blocks(languages):
    """[(language, [lines])] of README's fenced blocks in `languages`, in order."""
    blocks, language, lines = [], None, None
    with open(README, encoding="utf-8") as f:
        for line in f:
            fence = re.match(r"^```\s*(\w*)", line)
            if fence and lines is None:
                language, lines = fence.group(1), []
            elif fence:
                if language in languages:
                    blocks.append((language, lines))
                lines = None
            elif lines is not None:
                lines.append(line.rstrip("\n"))
    return blocks


def _shell_lines(lines):
    """Commands of a shell block: comments dropped, backslash continuations joined."""
    commands, pending = [], ""
    for line in lines:
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            commands.append(" ".join(shlex.split(line, posix=False)))
    return commands


def console_sessions():
    """[[(command, [lines it printed])]], one list per ```console block."""
    sessions = []
    for _, lines in readme_blocks({"console"}):
        session = []
        for line in lines:
            if line.startswith("$ "):
                session.append((_shell_lines([line[2:]])[0], []))
            elif session:
                session[-1][1].append(line)
        sessions.append(session)
    return sessions


def readme_commands():
    """Every command README shows, once each, in order."""
    commands = []
    for _, lines in readme_blocks({"bash", "sh", "shell"}):
        commands += _shell_lines(lines)
    for session in console_sessions():
        commands += [command for command, _ in session]
    return list(dict.fromkeys(commands))


def readme_command(command):
    """`command` as an argument list, after checking that README still shows it."""
    assert command in readme_commands(), f"README no longer shows {command!r}: update COMMANDS"
    return shlex.split(command)


def session_starting_with(command, printed=None):
    """The ```console session whose first command is `command` (and that prints `printed`)."""
    for session in console_sessions():
        if session[0][0] == command and (printed is None or any(printed in "\n".join(out) for _, out in session)):
            return session
    raise AssertionError(f"README has no console block starting with $ {command}")


def assert_printed(shown, printed):
    """Each line README shows (`...` and `^C` aside) is in what the command printed; any number
    in README stands for any number."""
    for line in shown:
        if line.strip() in ("...", "…", "^C", ""):
            continue
        pattern = "".join(r"\d+(?:\.\d+)?" if re.fullmatch(r"\d+(?:\.\d+)?", part) else re.escape(part)
                          for part in re.split(r"(\d+(?:\.\d+)?)", line.strip()))
        assert re.search(pattern, printed), f"README shows {line!r}, the command printed:\n{printed[-3000:]}"


# ---------------------------------------------------------------- running commands


def workspace(path):
    """A scratch folder like a clone's top: README's relative paths (configs/demo.yaml) work in it."""
    shutil.copytree(os.path.join(ROOT, "configs"), os.path.join(path, "configs"), dirs_exist_ok=True)
    return path


def run_cli(where, argv):
    """`tf-cyclegan argv` run in-process in the folder `where`: (exit code, everything it printed),
    its log lines included, formatted by the command's own logging set-up."""
    assert argv[0] == "tf-cyclegan", argv
    root_logger = logging.getLogger()
    handlers, level = root_logger.handlers[:], root_logger.level
    printed = io.StringIO()
    cwd = os.getcwd()
    os.chdir(where)
    try:
        for handler in handlers:  # so that the command's logging.basicConfig takes effect, as in a shell
            root_logger.removeHandler(handler)
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            code = main(argv[1:])
    finally:
        os.chdir(cwd)
        for handler in root_logger.handlers[:]:
            root_logger.removeHandler(handler)
        for handler in handlers:
            root_logger.addHandler(handler)
        root_logger.setLevel(level)
    return code, printed.getvalue()


def tiny(argv):
    return argv + TINY.get(argv[1], [])


def run_readme_command(where, command, extra=()):
    """Runs README's `command` in `where` with TINY's arguments and `extra`; (exit code, printed)."""
    return run_cli(where, tiny(readme_command(command)) + list(extra))


MAKE_DEMO_DATA = "tf-cyclegan make-demo-data data/demo"
TRAIN_DEMO = "tf-cyclegan train --config configs/demo.yaml --run-dir runs/demo"


@pytest.fixture(scope="module")
def readme_demo(tmp_path_factory):
    """README's make-demo-data and train commands run in one scratch folder: what `make demo` does.
    Once a run (conftest's `once_a_run`), whichever xdist workers run the tests that read it."""
    where = shared_folder(tmp_path_factory, "readme")

    def make_demo():
        workspace(where)
        code, data_printed = run_readme_command(where, MAKE_DEMO_DATA)
        assert code == 0, data_printed
        code, train_printed = run_readme_command(where, TRAIN_DEMO)
        assert code == 0, train_printed
        return data_printed + train_printed

    return where, once_a_run(where, "demo", make_demo)


@pytest.fixture(scope="module")
def exported(readme_demo):
    """README's export command on the demo run, once a run: (exit code, printed)."""
    where, _ = readme_demo
    return where, tuple(once_a_run(where, "export", lambda: run_readme_command(
        where, "tf-cyclegan export runs/demo --formats savedmodel,tflite,onnx --out saved_models/demo")))


# ---------------------------------------------------------------- the table itself


def test_every_readme_command_is_run_or_skipped():
    commands = readme_commands()
    assert commands, "no commands found in README.md"
    unlisted = [command for command in commands if command not in COMMANDS and command not in SKIPPED]
    assert not unlisted, f"README commands with no test in COMMANDS and no reason in SKIPPED: {unlisted}"
    gone = [command for command in list(COMMANDS) + list(SKIPPED) if command not in commands]
    assert not gone, f"commands listed here that README no longer shows: {gone}"
    assert not set(COMMANDS) & set(SKIPPED)
    for command, tests in COMMANDS.items():
        for name in tests:
            assert callable(globals().get(name)), f"{command!r} names {name}, which is not a test here"
    assert all(reason.strip() for reason in SKIPPED.values())


def test_every_python_block_is_run():
    first_lines = [lines[0] for _, lines in readme_blocks({"python", "py"})]
    assert first_lines, "no ```python block in README.md"
    unlisted = [line for line in first_lines if line not in PYTHON_SNIPPETS]
    assert not unlisted, f"README ```python blocks that no test runs (add them to PYTHON_SNIPPETS): {unlisted}"


def test_the_command_reader():
    assert _shell_lines(["make demo    # creates .venv", "# a comment", "", 'pip install -e ".[gpu]"  # GPU',
                         "tf-cyclegan train --config a.yaml \\", "    --set x.y=1"]) == [
        "make demo", 'pip install -e ".[gpu]"', "tf-cyclegan train --config a.yaml --set x.y=1"]
    assert_printed(["  model     MAE 0.0802  PSNR 16.07 dB", "..."], "x\n  model     MAE 0.3762  PSNR 8.10 dB\n")
    with pytest.raises(AssertionError):
        assert_printed(["model MAE 0.0802"], "baseline MAE 0.3762")


# ---------------------------------------------------------------- install


def test_install():
    """`pip install .` (editable or not) and the `[onnx]` extra: what they install is here. (Running pip again
    needs the network for the build and would change this environment.)"""
    import importlib.metadata
    import importlib.util

    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["name"] == "tf_cyclegan"
    assert project["scripts"]["tf-cyclegan"] == "tf_cyclegan.cli:main"
    installed = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert installed.get("tf-cyclegan") == "tf_cyclegan.cli:main"
    assert os.path.exists(os.path.join(os.path.dirname(sys.executable), "tf-cyclegan"))
    # The installed distribution is this project's, whether installed editable or not.
    assert importlib.metadata.version("tf_cyclegan") == project["version"]
    extras = project["optional-dependencies"]
    assert {"gpu", "onnx"} <= set(extras)
    for requirement in extras["onnx"]:
        name = re.split(r"[<>=~!\[ ;]", requirement)[0]
        assert importlib.util.find_spec(name) is not None, f"the [onnx] extra's {name} is not importable"


# ---------------------------------------------------------------- the two commands


def _make_recipe(target):
    """The shell lines `make target` runs, prerequisites first, from the Makefile (no make needed)."""
    rules, current = {}, None
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("\t") and current is not None:
                rules[current][1].append(line.strip())
            elif re.match(r"^[^\s#=][^=]*:(?!=)", line):
                name, _, prerequisites = line.partition(":")
                current = name.strip()
                rules[current] = (prerequisites.replace("|", " ").split(), [])
            elif line.strip() and not line.startswith("#"):
                current = None
    done, lines = set(), []

    def visit(name):
        if name in done or name not in rules:
            return
        done.add(name)
        for prerequisite in rules[name][0]:
            visit(prerequisite)
        lines.extend(rules[name][1])

    visit(target)
    return lines


@pytest.mark.slow
def test_make_demo(readme_demo):
    """`make demo` runs README's make-demo-data and train commands (after installing), and prints
    what README shows."""
    commands = [line.replace("$(BIN)/", "") for line in _make_recipe("demo") if "tf-cyclegan" in line]
    assert commands == [MAKE_DEMO_DATA, TRAIN_DEMO]
    _, printed = readme_demo
    session = session_starting_with("make demo")
    assert_printed(session[0][1], printed)
    assert "Translation error on the 2 paired test images" in printed  # the tiny test set's count


def test_make_demo_data(tmp_path):
    where = workspace(tmp_path)
    code, printed = run_readme_command(where, MAKE_DEMO_DATA)
    assert code == 0, printed
    assert "Wrote the synthetic dataset to data/demo/ (trainA: 4, trainB: 4, testA: 2, testB: 2, testB_paired: 2)" \
        in printed
    root = tmp_path / "data" / "demo"
    assert sorted(os.listdir(root)) == ["testA", "testB", "testB_paired", "trainA", "trainB"]
    assert sorted(os.listdir(root / "testA")) == sorted(os.listdir(root / "testB_paired")) == ["0000.png", "0001.png"]
    image = tf.io.decode_png(tf.io.read_file(str(root / "trainB" / "0003.png")))
    assert image.shape == (36, 36, 3)


# ---------------------------------------------------------------- train, resume, watch


def _run_directory_listing():
    """The names README's run-directory block lists (`config.yaml`, `backup/`, ...)."""
    for _, lines in readme_blocks({"text"}):
        if lines and lines[0] == "runs/demo/":
            return [line.split()[0] for line in lines[1:] if line.strip()]
    raise AssertionError("README has no run-directory block starting with runs/demo/")


@pytest.mark.slow
def test_train(readme_demo):
    where, printed = readme_demo
    run_dir = where / "runs" / "demo"
    listed = _run_directory_listing()
    on_disk = sorted(name + "/" if (run_dir / name).is_dir() else name for name in os.listdir(run_dir))
    assert sorted(listed) == on_disk, "README's run-directory block and a run's files differ"
    assert "Results are in runs/demo/" in printed
    assert {"train", "steps", "samples"} <= set(os.listdir(run_dir / "logs"))
    assert sorted(os.listdir(run_dir / "samples")) == ["epoch_001.png", "epoch_002.png"]  # one grid an epoch
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["epoch_0001.keras", "epoch_0002.keras"]
    results = json.loads((run_dir / "results.json").read_text())
    assert {"final_losses", "paired_test"} <= set(results)
    assert results["paired_test"]["images"] == 2
    model = keras.saving.load_model(run_dir / "model.keras")
    assert model.gen_a2b(np.zeros((1, 32, 32, 3), "float32")).shape == (1, 32, 32, 3)


def test_an_unknown_key(tmp_path):
    command = "tf-cyclegan train --config configs/demo.yaml --set model.lamda_cycle=5"
    code, printed = run_cli(workspace(tmp_path), readme_command(command))
    assert code == 2
    [(_, shown)] = session_starting_with(command)
    assert_printed(shown, printed)
    assert not (tmp_path / "runs").exists()


class _CtrlCAfter(keras.callbacks.Callback):
    """Sends this process SIGINT, as Ctrl-C does, at the start of the `steps`-th batch."""

    def __init__(self, steps):
        super().__init__()
        self.steps, self.seen = steps, 0

    def on_train_batch_begin(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.steps:
            signal.raise_signal(signal.SIGINT)


@pytest.mark.slow
def test_resume(tmp_path, monkeypatch):
    """README's Ctrl-C and the same command again: it resumes from the newest backup."""
    import tf_cyclegan.training.train as train_module

    where = workspace(tmp_path)
    assert run_readme_command(where, MAKE_DEMO_DATA)[0] == 0
    session = session_starting_with(TRAIN_DEMO, printed="^C")
    assert [command for command, _ in session] == [TRAIN_DEMO, TRAIN_DEMO]
    # 4 pairs an epoch, 2 epochs, a backup at each epoch's end: Ctrl-C in epoch 2, after its 2nd batch.
    argv = readme_command(TRAIN_DEMO) + TINY["train"] + ["train.epochs=2", "train.epochs_decay=0",
                                                          "train.steps_per_epoch=4"]
    train_and_evaluate = train_module.train_and_evaluate

    def interrupted_at_step_6(config, run_dir, restart=False, callbacks=()):
        return train_and_evaluate(config, run_dir, restart=restart, callbacks=[*callbacks, _CtrlCAfter(6)])

    monkeypatch.setattr(train_module, "train_and_evaluate", interrupted_at_step_6)
    code, printed = run_cli(where, argv)
    assert code == 130, printed
    assert_printed(session[0][1], printed)
    assert "interrupted at step 6 (epoch 2, batch 2); the newest backup, step-0000000004, is kept" in printed

    monkeypatch.setattr(train_module, "train_and_evaluate", train_and_evaluate)
    code, printed = run_cli(where, argv)
    assert code == 0, printed
    assert_printed(session[1][1], printed)
    assert "Resuming runs/demo at epoch 2, batch 1 (step 4)" in printed
    assert (tmp_path / "runs" / "demo" / "model.keras").exists()


@pytest.mark.slow
def test_tensorboard(readme_demo):
    """`tensorboard --logdir runs/` (on a free port) serves the run's losses, steps and samples."""
    where, _ = readme_demo
    argv = readme_command("tensorboard --logdir runs/")
    executable = os.path.join(os.path.dirname(sys.executable), argv[0])
    server = subprocess.Popen([executable, *argv[1:], "--port", "0"], cwd=where, env=subprocess_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port, seen = None, []
        for line in server.stdout:  # TensorBoard names its address once it serves
            seen.append(line)
            found = re.search(r"http://localhost:(\d+)/", line)
            if found:
                port = found.group(1)
                break
        assert port, "".join(seen)

        def get(path):
            with urllib.request.urlopen(f"http://localhost:{port}{path}", timeout=30) as response:
                return json.load(response)

        deadline = time.time() + 60
        while not {"demo/logs/train", "demo/logs/steps", "demo/logs/samples"} <= set(get("/data/runs")):
            assert time.time() < deadline, get("/data/runs")
            time.sleep(0.5)
        scalars = get("/data/plugin/scalars/tags")
        assert {"epoch_gen_total", "epoch_cycle_a", "epoch_disc_b", "epoch_learning_rate"} <= set(
            scalars["demo/logs/train"])
        assert {"loss/gen_total", "images_per_second", "learning_rate"} <= set(scalars["demo/logs/steps"])
        assert get("/data/plugin/images/tags")["demo/logs/samples"]
    finally:
        server.terminate()
        server.wait(timeout=30)


# ---------------------------------------------------------------- export, translate, evaluate, bench


@pytest.mark.slow
def test_export(exported):
    where, (code, printed) = exported
    assert code == 0, printed
    for direction in ("a2b", "b2a"):
        folder = where / "saved_models" / "demo" / direction
        assert sorted(os.listdir(folder)) == ["generator.onnx", "generator_float16.tflite",
                                              "generator_float32.tflite", "generator_int8.tflite",
                                              "metadata.json", "savedmodel"]
        metadata = json.loads((folder / "metadata.json").read_text())
        assert metadata["direction"] == direction and metadata["training_crop_size"] == 32
        assert metadata["tflite_input_shape"] == [1, 32, 32, 3]
        assert f"{direction} savedmodel" in " ".join(printed.split())
    # The SavedModel: uint8 images of any size in and out.
    serve = tf.saved_model.load(str(where / "saved_models" / "demo" / "a2b" / "savedmodel"))
    out = serve.signatures["serving_default"](images=tf.zeros((1, 67, 131, 3), tf.uint8))["images"]
    assert out.dtype == tf.uint8 and out.shape == (1, 67, 131, 3)


@pytest.mark.slow
def test_translate(exported):
    where, (code, printed) = exported
    assert code == 0, printed
    command = "tf-cyclegan translate --model saved_models/demo --direction a2b data/demo/testA --out translated"
    code, printed = run_readme_command(where, command)
    assert code == 0, printed
    assert "Translated 2 image(s) into translated/" in printed
    assert sorted(os.listdir(where / "translated")) == ["0000.png", "0001.png"]
    for name in ("0000.png", "0001.png"):
        image = tf.io.decode_png(tf.io.read_file(str(where / "translated" / name)))
        assert image.shape == (36, 36, 3)


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """A local InceptionV3 weights file (random weights: the download is what cannot run offline)."""
    path = tmp_path_factory.mktemp("inception") / "inception_v3.weights.h5"
    keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg",
                                   input_shape=(299, 299, 3)).save_weights(path)
    return path


@pytest.mark.slow
def test_evaluate(readme_demo, inception_weights):
    """With a local weights file in place of the ImageNet download (README's --inception-weights)."""
    where, _ = readme_demo
    command = "tf-cyclegan evaluate --model runs/demo --data data/demo --out report.json"
    code, printed = run_readme_command(where, command, ["--inception-weights", str(inception_weights)])
    assert code == 0, printed
    assert "Wrote report.json" in printed and "FID" in printed and "cycle L1" in printed
    report = json.loads((where / "report.json").read_text())
    assert set(report) == {"a2b", "b2a"}
    for direction in ("a2b", "b2a"):
        assert {"fid", "kid", "cycle_l1"} <= set(report[direction]) and report[direction]["images"] == 2
    assert {"mae", "psnr", "ssim"} <= set(report["a2b"]["paired"]) and report["a2b"]["baseline"]


@pytest.mark.slow
def test_bench(tmp_path):
    code, printed = run_readme_command(
        workspace(tmp_path), "tf-cyclegan bench --size 128 --filters 64 --num-residual-blocks 9 --steps 10")
    assert code == 0, printed
    result = json.loads(printed.strip().splitlines()[-1])
    for key in ("images_per_s", "first_step_s", "peak_rss_mb", "gflop_per_s"):
        assert result[key] > 0, key
    assert result["size"] == 32


def test_import_torch(tmp_path):
    """With a small generator of the reference's own architecture, made in PyTorch, in place of
    the pretrained file (tests/fixtures/torch/make_torch_fixtures.py)."""
    where = workspace(tmp_path)
    fixtures = os.path.join(ROOT, "tests", "fixtures", "torch")
    checkpoints = tmp_path / "checkpoints" / "horse2zebra_pretrained"
    checkpoints.mkdir(parents=True)
    shutil.copy(os.path.join(fixtures, "gen.pth"), checkpoints / "latest_net_G.pth")
    command = "tf-cyclegan import-torch checkpoints/horse2zebra_pretrained/latest_net_G.pth --out horse2zebra.keras"
    code, printed = run_readme_command(where, command)
    assert code == 0, printed
    assert "Wrote horse2zebra.keras: a generator" in printed
    generator = keras.saving.load_model(tmp_path / "horse2zebra.keras")
    expected = np.load(os.path.join(fixtures, "outputs.npz"))
    assert np.abs(generator(expected["input_square"]).numpy() - expected["gen_square"]).max() <= 1e-5  # as in PyTorch


# ---------------------------------------------------------------- the library


@pytest.mark.slow
def test_python_snippets(tmp_path, monkeypatch):
    """README's Python, with the sizes PYTHON_SNIPPETS substitutes, on a tiny synthetic dataset."""
    from tf_cyclegan.data.synthetic import make_demo_data

    make_demo_data(tmp_path / "data" / "demo", num_train=2, num_test=1, size=36)
    monkeypatch.chdir(tmp_path)
    for _, lines in readme_blocks({"python", "py"}):
        code = "\n".join(lines)
        for text, replacement in PYTHON_SNIPPETS[lines[0]]:
            assert text in code, f"README's Python no longer has {text!r}: update PYTHON_SNIPPETS"
            code = code.replace(text, replacement)
        namespace = {}
        exec(compile(code, "README.md", "exec"), namespace)
        model = namespace["model"]
        assert model.history.epoch == [0] and np.isfinite(model.history.history["gen_total"]).all()
        assert namespace["fake_b"].shape == namespace["real_a"].shape == (1, 32, 32, 3)
        restored = keras.saving.load_model(tmp_path / "demo.keras")
        np.testing.assert_allclose(restored.gen_a2b(namespace["real_a"]), namespace["fake_b"], atol=1e-5)
