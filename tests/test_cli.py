import json
import os

import pytest
import tensorflow as tf
from conftest import copy_run, saved_tiny_cyclegan

from tf_cyclegan.benchmarking.flops import training_step_flops
from tf_cyclegan.cli import main
from tf_cyclegan.models.cyclegan import build_cyclegan
from tf_cyclegan.runtime import has_gpu, onednn_enabled
from tf_cyclegan.training.callbacks.samples import SampleGrid


def test_make_demo_data(tmp_path, capsys):
    assert main(["make-demo-data", str(tmp_path / "d"), "--num-train", "2", "--num-test", "1", "--size", "16"]) == 0
    assert sorted(os.listdir(tmp_path / "d")) == ["testA", "testB", "testB_paired", "trainA", "trainB"]
    assert "trainA: 2" in capsys.readouterr().out


def test_unknown_config_key_stops_before_any_work(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", "--set", "model.lamda_cycle=3", "--run-dir", str(run_dir)])
    assert code == 2
    assert "Unknown key 'lamda_cycle' in model; did you mean 'lambda_cycle'" in capsys.readouterr().err
    assert not run_dir.exists()


def test_missing_domain_folder_stops_with_its_name(tmp_path, capsys):
    (tmp_path / "data" / "trainA").mkdir(parents=True)
    code = main(["train", "--set", f"data.root={tmp_path / 'data'}", "--run-dir", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "trainA" in err and "No readable images" in err
    assert not (tmp_path / "run").exists()


def _check_tensorboard_tags(log_dir):
    """Reads the event files back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train = EventAccumulator(str(log_dir / "train"), size_guidance={"tensors": 0}).Reload()
    tags = set(train.Tags()["tensors"]) | set(train.Tags()["scalars"])
    for term in ("gen_total", "gan_a2b", "gan_b2a", "cycle_a", "cycle_b", "disc_a", "disc_b", "learning_rate"):
        assert f"epoch_{term}" in tags, (term, sorted(tags))
    samples = EventAccumulator(str(log_dir / "samples"), size_guidance={"tensors": 0}).Reload()
    # The trained generators' grid, and the averaged ones' (model.ema_decay, on by default).
    assert sorted(samples.Tags()["tensors"]) == sorted([SampleGrid.TAG, SampleGrid.TAG_AVERAGED])
    for image_tag in (SampleGrid.TAG, SampleGrid.TAG_AVERAGED):
        events = samples.Tensors(image_tag)
        # Every 4 steps and at each epoch's end (6 steps an epoch), once per step.
        assert [event.step for event in events] == [4, 6, 8, 12]
        width, height, png = tf.make_ndarray(events[-1].tensor_proto)
        grid = tf.io.decode_png(png).numpy()
        # Two 36-px test samples per row-pair: real, fake, cycled for A then B.
        assert grid.shape == (2 * 36, 6 * 36, 3) and (int(width), int(height)) == (6 * 36, 2 * 36)
    steps = EventAccumulator(str(log_dir / "steps"), size_guidance={"tensors": 0}).Reload()
    step_tags = set(steps.Tags()["tensors"])
    assert {"loss/gen_total", "loss/disc_b", "loss/cycle_a", "learning_rate", "images_per_second"} <= step_tags
    assert [event.step for event in steps.Tensors("loss/gen_total")] == [2, 4, 6, 8, 10, 12]
    assert all(float(tf.make_ndarray(event.tensor_proto)) > 0 for event in steps.Tensors("images_per_second"))
    plugins = {tag: steps.SummaryMetadata(tag).plugin_data.plugin_name for tag in steps.Tags()["tensors"]}
    assert "hparams" in plugins.values()
    evaluation = EventAccumulator(str(log_dir / "eval"), size_guidance={"tensors": 0}).Reload()
    eval_tags = set(evaluation.Tags()["tensors"])
    assert {"eval/a2b/cycle_l1", "eval/b2a/cycle_l1", "eval/a2b/paired_mae", "eval/a2b/paired_ssim"} <= eval_tags
    assert [event.step for event in evaluation.Tensors("eval/a2b/paired_mae")] == [2]


@pytest.mark.slow  # trains, in conftest's trained_run
def test_train_writes_a_complete_run_directory(trained_run):
    run_dir = trained_run["run_dir"]
    files = set(os.listdir(run_dir))
    assert {"config.yaml", "model.keras", "log.csv", "results.json", "logs", "samples", "backup",
            "checkpoints"} <= files
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["epoch_0001.keras", "epoch_0002.keras"]
    assert sorted(os.listdir(run_dir / "samples")) == ["epoch_001.png", "epoch_002.png"]
    result = json.loads((run_dir / "results.json").read_text())
    assert result["paired_test"]["images"] == 3
    assert result["paired_test"]["baseline"]["mae"] > 0
    rows = (run_dir / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"gen_total", "disc_a", "cycle_b", "learning_rate"} <= set(header)
    rates = [float(row.split(",")[header.index("learning_rate")]) for row in rows[1:]]
    assert rates == pytest.approx([2e-4, 1e-4])  # 1 constant epoch, then decay over 1 (/2)
    assert "baseline" in trained_run["printed"]
    _check_tensorboard_tags(run_dir / "logs")
    # Neither temporary nor partial model files are left behind.
    assert not [name for name in files if ".tmp" in name]


@pytest.mark.slow
def test_bench_prints_the_reference_keys(capsys):
    # A tiny network so the test is quick; the real benchmark uses the paper's ResNet-9.
    code = main(["bench", "--size", "32", "--filters", "4", "--num-residual-blocks", "1", "--steps", "2",
                 "--warmup", "1", "--cpu-speedups", "off"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("images_per_s", "first_step_s", "peak_rss_mb", "params_generator", "params_discriminator"):
        assert result[key] > 0, key
    assert result["size"] == 32 and result["params_discriminator"] == 2764737
    assert result["onednn"] is onednn_enabled()  # what TensorFlow runs, not the switch's spelling
    assert result["cpu_speedups"] == []  # --cpu-speedups off: the plain Keras step
    if not has_gpu():
        assert result["gpu"] is None and result["gpu_peak_memory_mb"] is None  # no GPU: null, not 0
    # The arithmetic of the benchmarked update, and the rate it ran at.
    step_flop = training_step_flops(build_cyclegan(filters=4, num_residual_blocks=1), (1, 32, 32, 3))
    assert result["step_gflop"] == round(step_flop / 1e9, 2)
    assert result["gflop_per_s"] == pytest.approx(step_flop / 1e9 * result["images_per_s"], abs=0.06)


def _error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tf-cyclegan ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """A CycleGAN .keras, a Dense model, a 1-channel convolution, a truncated and a text .keras."""
    import keras

    root = tmp_path_factory.mktemp("models")
    saved_tiny_cyclegan(root / "cyclegan.keras")
    keras.Sequential([keras.Input((10,)), keras.layers.Dense(3)]).save(root / "dense.keras")
    grey = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(1, 3, padding="same")])
    grey.save(root / "grey.keras")
    data = (root / "cyclegan.keras").read_bytes()
    (root / "truncated.keras").write_bytes(data[: len(data) // 2])
    (root / "text.keras").write_text("not a model")
    return root


@pytest.mark.parametrize("name, message", [
    ("truncated.keras", "is not a readable .keras file"),
    ("text.keras", "is not a readable .keras file"),
    ("dense.keras", "not an image-to-image generator"),
    ("grey.keras", "not an image-to-image generator"),
])
def test_a_model_that_cannot_translate_is_one_line(saved_models, tmp_path, capsys, name, message):
    (tmp_path / "in").mkdir()
    tf.io.write_file(str(tmp_path / "in" / "x.png"), tf.io.encode_png(tf.zeros((8, 8, 3), tf.uint8)))
    code = main(["translate", "--model", str(saved_models / name), "--out", str(tmp_path / "out"),
                 str(tmp_path / "in")])
    line = _error_line(capsys)
    assert code == 2 and message in line and name in line
    assert not (tmp_path / "out").exists()


def test_out_paths_that_are_files_are_one_line(saved_models, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    (tmp_path / "in").mkdir()
    tf.io.write_file(str(tmp_path / "in" / "x.png"), tf.io.encode_png(tf.zeros((8, 8, 3), tf.uint8)))
    for argv in (
        ["translate", "--model", str(saved_models / "cyclegan.keras"), "--out", str(a_file), str(tmp_path / "in")],
        ["export", str(saved_models / "cyclegan.keras"), "--out", str(a_file), "--formats", "savedmodel"],
        ["make-demo-data", str(a_file), "--num-train", "1", "--num-test", "1", "--size", "8"],
        ["evaluate", "--model", str(saved_models / "cyclegan.keras"), "--data", str(tmp_path), "--out",
         str(a_file), "--no-fid"],
    ):
        assert main(argv) == 2, argv
        assert "a_file" in _error_line(capsys), argv
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("argv_tail, message", [
    (["--formats", ","], "No export format"),
    (["--directions", "a2b,c2d"], "Directions must be a2b and/or b2a"),
    (["--formats", "savedmodel,tflite", "--tflite-size", "30"], "multiple of 4"),
])
def test_export_checks_every_argument_before_writing_anything(saved_models, tmp_path, capsys, argv_tail, message):
    code = main(["export", str(saved_models / "cyclegan.keras"), "--out", str(tmp_path / "out"), *argv_tail])
    assert code == 2 and message in _error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_export_keeps_an_earlier_export_unless_told_to_overwrite(saved_models, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["export", str(saved_models / "cyclegan.keras"), "--out", str(out), "--formats", "savedmodel",
            "--directions", "b2a"]
    assert main(argv) == 0
    first = os.path.getmtime(out / "b2a" / "metadata.json")
    capsys.readouterr()
    assert main(argv) == 2 and "exists already" in _error_line(capsys)
    assert os.path.getmtime(out / "b2a" / "metadata.json") == first
    assert main(argv + ["--overwrite"]) == 0
    assert sorted(os.listdir(out)) == ["b2a"] and sorted(os.listdir(out / "b2a")) == ["metadata.json", "savedmodel"]


def test_evaluate_command_writes_json(saved_models, demo_root, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = main(["evaluate", "--model", str(saved_models / "cyclegan.keras"), "--data", str(demo_root),
                 "--no-fid", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report) == {"a2b", "b2a"} and report["a2b"]["cycle_l1"] > 0
    assert {"mae", "psnr", "ssim"} <= set(report["a2b"]["paired"])
    assert "cycle L1" in capsys.readouterr().out


def test_evaluate_keeps_an_existing_report(saved_models, tmp_path, capsys):
    report = tmp_path / "report.json"
    report.write_text("{}")
    code = main(["evaluate", "--model", str(saved_models / "cyclegan.keras"), "--data", str(tmp_path),
                 "--out", str(report), "--no-fid"])
    assert code == 2 and "exists already" in _error_line(capsys) and report.read_text() == "{}"


@pytest.mark.slow
def test_corrupt_inception_weights_are_one_line(saved_models, tmp_path, capsys):
    from tf_cyclegan.data.synthetic import make_demo_data

    make_demo_data(tmp_path / "data", num_train=1, num_test=2, size=32)
    (tmp_path / "inception.h5").write_bytes(b"\x89HDF\r\n\x1a\n broken")
    code = main(["evaluate", "--model", str(saved_models / "cyclegan.keras"), "--data", str(tmp_path / "data"),
                 "--inception-weights", str(tmp_path / "inception.h5")])
    line = _error_line(capsys)
    assert code == 2 and "Cannot load the Inception weights" in line and "inception.h5" in line


def test_demo_data_refuses_a_folder_with_images_and_bad_counts(tmp_path, capsys):
    assert main(["make-demo-data", str(tmp_path / "d"), "--num-train", "1", "--num-test", "1", "--size", "8"]) == 0
    capsys.readouterr()
    assert main(["make-demo-data", str(tmp_path / "d"), "--num-train", "1", "--num-test", "1", "--size", "8"]) == 2
    assert "holds images already" in _error_line(capsys)
    assert main(["make-demo-data", str(tmp_path / "e"), "--num-train", "-5"]) == 2
    assert "argument --num-train: must be positive. Received: -5" in _error_line(capsys)


def test_errors_from_tensorflow_and_the_system_are_one_line_and_ctrl_c_is_130(monkeypatch, capsys):
    from tf_cyclegan import cli

    def fails_with(error):
        def command(args):
            raise error
        return command

    for error, code, text in [
        (tf.errors.NotFoundError(None, None, "/data/trainA/0003.png; No such file or directory"), 2, "0003.png"),
        (OSError(28, "No space left on device", "/runs/x/model.keras"), 2, "No space left on device: /runs/x"),
        (KeyboardInterrupt("interrupted at step 7 (epoch 1, batch 7); run the same command to resume."), 130,
         "interrupted at step 7"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime"), 2,
         "Install the [onnx] extra: pip install 'tf_cyclegan[onnx]'"),
        (ModuleNotFoundError("No module named 'yaml'", name="yaml"), 2, "Install it: pip install yaml"),
    ]:
        monkeypatch.setattr(cli, "_make_demo_data", fails_with(error))
        assert main(["make-demo-data", "somewhere"]) == code
        assert text in _error_line(capsys)
    # An import of this package's own failing is a bug: raised as it is, not blamed on an extra.
    monkeypatch.setattr(cli, "_make_demo_data", fails_with(ImportError("cannot import name 'x'", name="tf_cyclegan.y")))
    with pytest.raises(ImportError, match="cannot import name 'x'"):
        main(["make-demo-data", "somewhere"])


def test_several_pairs_after_one_set(tmp_path, capsys):
    code = main(["train", "--set", "model.lamda_cycle=3", "train.epochs=2", "--run-dir", str(tmp_path / "run")])
    assert code == 2 and "lamda_cycle" in _error_line(capsys)  # both pairs were read: the bad key is named
    from tf_cyclegan.cli import build_parser

    args = build_parser().parse_args(["train", "--set", "a.b=1", "c.d=2", "--set", "e.f=3"])
    assert args.set == ["a.b=1", "c.d=2", "e.f=3"]


def test_ctrl_c_in_fit_stops_at_the_batch_end_a_second_one_or_one_outside_fit_at_once(capfd):
    import signal

    from tf_cyclegan.cli import _ctrl_c_at_the_next_batch

    before = signal.getsignal(signal.SIGINT)
    with _ctrl_c_at_the_next_batch() as stop_on_ctrl_c:
        with pytest.raises(KeyboardInterrupt):  # before fit: at once, as usual
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before

    with _ctrl_c_at_the_next_batch() as stop_on_ctrl_c:
        stop_on_ctrl_c.on_train_begin()
        stop_on_ctrl_c.on_train_batch_end(0)  # no Ctrl-C yet: nothing happens
        signal.raise_signal(signal.SIGINT)  # in fit: noted, nothing raised in the middle of the batch
        assert "stopping after the running step" in capfd.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            stop_on_ctrl_c.on_train_batch_end(1)
        with pytest.raises(KeyboardInterrupt):  # fit has stopped: a Ctrl-C now raises at once
            signal.raise_signal(signal.SIGINT)

    with _ctrl_c_at_the_next_batch() as stop_on_ctrl_c:
        stop_on_ctrl_c.on_train_begin()
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):  # the second Ctrl-C does not wait
            signal.raise_signal(signal.SIGINT)

    with _ctrl_c_at_the_next_batch() as stop_on_ctrl_c:
        stop_on_ctrl_c.on_train_begin()
        signal.raise_signal(signal.SIGINT)  # during the last epoch's end: fit's end raises it
        with pytest.raises(KeyboardInterrupt):
            stop_on_ctrl_c.on_train_end()
    assert signal.getsignal(signal.SIGINT) is before


def test_bench_takes_the_upsamplings_the_config_takes(capsys):
    import typing

    from tf_cyclegan.cli import build_parser
    from tf_cyclegan.models.resnet_generator import UPSAMPLINGS
    from tf_cyclegan.training.config import ModelConfig

    assert typing.get_args(typing.get_type_hints(ModelConfig)["upsampling"]) == UPSAMPLINGS  # one definition
    for upsampling in UPSAMPLINGS:
        assert build_parser().parse_args(["bench", "--upsampling", upsampling]).upsampling == upsampling
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--upsampling", "bilinear"])
    assert "invalid choice: 'bilinear'" in capsys.readouterr().err


_TINY_TRAIN = ["data.load_size=36", "data.crop_size=32", "model.filters=4", "model.num_residual_blocks=1",
               "model.disc_filters=4", "train.epochs=1", "train.epochs_decay=0", "train.verbose=0",
               "train.steps_per_epoch=2", "data.num_samples=1"]


def test_a_duplicate_key_and_a_config_with_no_epoch_are_one_line_naming_them(tmp_path, capsys):
    config = tmp_path / "mine.yaml"
    config.write_text("train:\n  epochs: 5\n  seed: 1\n  epochs: 50\n")
    assert main(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    line = _error_line(capsys)
    assert "mine.yaml" in line and "duplicate key 'epochs' (first at line 2) at line 4" in line
    assert main(["train", "--set", "train.epochs=0", "train.epochs_decay=0", "--run-dir", str(tmp_path / "run")]) == 2
    assert "Received: epochs=0, epochs_decay=0" in _error_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_restart_deletes_the_runs_files_and_keeps_the_users(trained_run, tmp_path):
    run_dir = tmp_path / "run"
    argv = ["train", *copy_run(trained_run, run_dir)]
    mine = ["checkpoints/best_by_hand.keras", "samples/mine.png", "logs/myexp/events.out.tfevents.1.me.1.v2",
            "backup/notes.txt", "notes.txt"]
    for rel in mine:
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / rel).write_text("mine")
    os.utime(run_dir / "model.keras", (0, 0))
    assert main(argv + ["--restart"]) == 0
    assert all((run_dir / rel).read_text() == "mine" for rel in mine)
    assert os.path.getmtime(run_dir / "model.keras") > 0  # the run's own files were written anew
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["best_by_hand.keras", "epoch_0001.keras",
                                                           "epoch_0002.keras"]
    assert len(os.listdir(run_dir / "logs" / "train")) == 1  # the first run's event file was deleted


@pytest.mark.slow
def test_a_second_train_on_a_run_directory_in_use_is_one_line_naming_the_owner(demo_root, tmp_path, capsys,
                                                                                caplog):
    import socket
    import subprocess
    import sys

    from conftest import subprocess_env

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(  # a process that holds the run directory as a training one does
        [sys.executable, "-c", "import time; from tf_cyclegan.files import lock_directory\n"
         f"with lock_directory({str(run_dir)!r}):\n    print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["train", "--run-dir", str(run_dir), "--set", f"data.root={demo_root}", *_TINY_TRAIN]) == 2
        line = _error_line(capsys)
        assert f"is in use: process {holder.pid} on {socket.gethostname()}" in line
        assert os.listdir(run_dir) == [".tf_cyclegan.lock"]  # no work done
    finally:
        holder.kill()
        holder.wait()
    # Killed without releasing it: the lock is stale and taken over; the run trains and lets it go.
    assert main(["train", "--run-dir", str(run_dir), "--set", f"data.root={demo_root}", *_TINY_TRAIN]) == 0
    assert f"Took over the stale lock of run directory {run_dir}: process {holder.pid}" in caplog.text
    assert ".tf_cyclegan.lock" not in os.listdir(run_dir) and (run_dir / "model.keras").exists()


@pytest.mark.slow
def test_a_start_that_fails_does_not_bind_the_corrected_command(demo_root, tmp_path, capsys):
    saved_tiny_cyclegan(tmp_path / "deeper.keras", disc_num_layers=2)
    run_dir = tmp_path / "run"
    argv = ["train", "--run-dir", str(run_dir), "--set", f"data.root={demo_root}", *_TINY_TRAIN]
    assert main(argv + ["--init-from", str(tmp_path / "deeper.keras")]) == 2
    assert "does not have the weights of the config's networks" in _error_line(capsys)
    assert main(argv + ["--set", "eval.every_n_epochs=1", f"eval.inception_weights={tmp_path / 'none.h5'}"]) == 2
    assert "Inception weights file not found" in _error_line(capsys)
    assert not run_dir.exists()
    assert main(argv + ["--set", "model.disc_num_layers=2", "--init-from", str(tmp_path / "deeper.keras")]) == 0


# Every numeric option of translate, export and bench, with bad values: checked by the option's
# type, with the config's own checks, before anything is read, loaded or built.
BAD_NUMBERS = [
    (["bench"], "--size", ["30", "0", "-4", "20", "x"]),
    (["bench"], "--batch", ["0", "-1", "1.5"]),
    (["bench"], "--filters", ["0"]),
    (["bench"], "--ngf", ["-2"]),
    (["bench"], "--num-residual-blocks", ["-1"]),
    (["bench"], "--steps", ["0", "-1"]),
    (["bench"], "--warmup", ["-1", "-3"]),
    (["translate", "--model", "nowhere.keras", "--out", "out", "in.png"], "--tile", ["0", "-5", "30", "4", "big"]),
    (["export", "nowhere.keras", "--out", "out"], "--tflite-size", ["0", "30", "-8"]),
    (["make-demo-data", "out"], "--size", ["30", "0", "100000"]),
    (["make-demo-data", "out"], "--num-train", ["0", "100001"]),
    (["make-demo-data", "out"], "--num-test", ["-1"]),
    (["make-demo-data", "out"], "--seed", ["-1", "4294967296"]),
]


@pytest.mark.parametrize("command, option, value", [
    (command, option, value) for command, option, values in BAD_NUMBERS for value in values])
def test_a_bad_number_is_one_line_naming_the_option_and_value_before_any_work(tmp_path, capsys, monkeypatch,
                                                                              command, option, value):
    monkeypatch.chdir(tmp_path)
    assert main([*command, f"{option}={value}"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "usage" not in err, err
    assert err.startswith(f"tf-cyclegan {command[0]}: error: argument ") and option in err.split(":")[2], err
    assert f"Received: {value}" in err or f"Received: {value!r}" in err, err
    assert os.listdir(tmp_path) == []  # nothing written


def test_the_commands_share_the_config_and_library_checks_of_a_number(tmp_path):
    from tf_cyclegan.benchmarking.bench import train_step_benchmark
    from tf_cyclegan.inference.loading import Translator
    from tf_cyclegan.training.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="data.crop_size must be a multiple of 4 .* at least 24 for "
                                          "model.disc_num_layers=3. Received: 20"):
        load_config(sets=["data.crop_size=20"])  # the default PatchGAN's 3 stride-2 layers need 24
    assert load_config(sets=["data.crop_size=16", "model.disc_num_layers=2"]).data.crop_size == 16
    for kwargs, message in [({"steps": 0}, "steps must be positive. Received: 0"),
                            ({"warmup": -3}, "warmup must not be negative. Received: -3"),
                            ({"size": 30}, "size must be a multiple of 4 .* at least 24. Received: 30"),
                            ({"batch": 0}, "batch must be positive. Received: 0")]:
        with pytest.raises(ValueError, match=message):
            train_step_benchmark(**kwargs)
    with pytest.raises(ValueError, match="tile must be a multiple of 4 .* at least 8. Received: -5"):
        Translator(tile=-5)


@pytest.mark.slow
def test_a_bad_number_stops_before_tensorflow_loads(tmp_path):
    import subprocess
    import sys

    from conftest import subprocess_env

    script = ("import sys\nfrom tf_cyclegan.cli import main\n"
              "codes = [main(argv) for argv in (['bench', '--warmup', '-3'], ['bench', '--size', '30'], "
              "['translate', '--model', 'm.keras', '--tile', '0', '--out', 'o', 'x.png'], "
              "['export', 'm.keras', '--out', 'o', '--tflite-size', '30'])]\n"
              "print(codes, 'tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env=subprocess_env(), timeout=300)
    assert done.stdout.strip() == "[2, 2, 2, 2] False", done.stdout + done.stderr[-2000:]
    assert len([line for line in done.stderr.splitlines() if line.startswith("tf-cyclegan ")]) == 4


@pytest.fixture(scope="module")
def one_generator(tmp_path_factory):
    """A tiny CycleGAN's a2b generator alone in a .keras file (what import-torch makes of one .pth)."""
    root = tmp_path_factory.mktemp("one")
    saved_tiny_cyclegan(root / "cyclegan.keras").gen_a2b.save(root / "gen.keras")
    return root / "gen.keras"


def _one_png(folder, name="x.png", size=(12, 12)):
    os.makedirs(folder, exist_ok=True)
    tf.io.write_file(os.path.join(folder, name), tf.io.encode_png(tf.zeros((*size, 3), tf.uint8)))


def test_a_one_generator_model_refuses_the_direction_it_lacks(one_generator, tmp_path, capsys):
    _one_png(tmp_path / "in")
    code = main(["translate", "--model", str(one_generator), "--direction", "b2a", "--out", str(tmp_path / "out"),
                 str(tmp_path / "in")])
    line = _error_line(capsys)
    assert code == 2 and "gen.keras' has no b2a generator: it translates a2b only" in line
    assert not (tmp_path / "out").exists()
    assert main(["translate", "--model", str(one_generator), "--out", str(tmp_path / "out"), str(tmp_path / "in")]) == 0
    assert os.listdir(tmp_path / "out") == ["x.png"]  # no --direction: the one it has
    capsys.readouterr()
    code = main(["evaluate", "--model", str(one_generator), "--direction", "b2a", "--data", str(tmp_path), "--no-fid"])
    assert code == 2 and "has no b2a generator" in _error_line(capsys)


def test_evaluate_both_on_a_one_generator_model_evaluates_its_direction_and_says_so(one_generator, demo_root,
                                                                                      tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["evaluate", "--model", str(one_generator), "--data", str(demo_root), "--no-fid",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "has only the a2b generator: evaluating a2b alone, without a cycle error" in captured.err
    report = json.loads(out.read_text())
    assert set(report) == {"a2b"} and "cycle_l1" not in report["a2b"] and "paired" in report["a2b"]
    assert "b2a" not in captured.out


def test_an_input_inside_out_is_skipped_with_a_warning_and_nothing_to_translate_is_an_error(saved_models, tmp_path,
                                                                                             capsys, caplog):
    import logging

    model = str(saved_models / "cyclegan.keras")
    _one_png(tmp_path / "out", "old.png")
    _one_png(tmp_path, "new.png")
    with caplog.at_level(logging.WARNING):
        code = main(["translate", "--model", model, "--out", str(tmp_path / "out"), str(tmp_path / "out" / "old.png"),
                     str(tmp_path / "new.png")])
    assert code == 0 and "Translated 1 image(s)" in capsys.readouterr().out
    # This package's warnings (TensorFlow's own, such as a retracing notice that depends on
    # which tests ran before in this process, are not the subject).
    [warning] = [r.getMessage() for r in caplog.records
                 if r.levelno == logging.WARNING and r.name.startswith("tf_cyclegan")]
    assert "old.png: it is inside --out" in warning
    code = main(["translate", "--model", model, "--out", str(tmp_path / "out"), str(tmp_path / "out" / "old.png")])
    line = _error_line(capsys)
    assert code == 2 and "No image to translate in" in line and "old.png' skipped, it is inside --out" in line
    assert sorted(os.listdir(tmp_path / "out")) == ["new.png", "old.png"]


def test_evaluate_offline_is_one_line_saying_what_to_do(saved_models, demo_root, monkeypatch, capsys):
    import keras

    def no_network(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    code = main(["evaluate", "--model", str(saved_models / "cyclegan.keras"), "--data", str(demo_root)])
    line = _error_line(capsys)
    assert code == 2 and "Cannot download the InceptionV3 weights" in line
    assert "--no-fid" in line and "--inception-weights FILE" in line


@pytest.mark.slow
def test_export_overwrite_keeps_the_users_files_and_the_formats_not_exported_again(saved_models, tmp_path):
    out = tmp_path / "out"
    argv = ["export", str(saved_models / "cyclegan.keras"), "--out", str(out), "--formats", "savedmodel",
            "--directions", "a2b"]
    assert main(argv) == 0
    (out / "a2b" / "notes.txt").write_text("mine")
    (out / "a2b" / "generator.onnx").write_bytes(b"an earlier onnx export")
    meta = json.loads((out / "a2b" / "metadata.json").read_text())
    (out / "a2b" / "metadata.json").write_text(json.dumps({**meta, "files": {**meta["files"],
                                                                             "onnx": "generator.onnx"}}))
    first = (out / "a2b" / "savedmodel" / "saved_model.pb").stat().st_mtime_ns
    assert main(argv + ["--overwrite"]) == 0
    assert sorted(os.listdir(out / "a2b")) == ["generator.onnx", "metadata.json", "notes.txt", "savedmodel"]
    assert (out / "a2b" / "savedmodel" / "saved_model.pb").stat().st_mtime_ns != first  # written again
    assert (out / "a2b" / "notes.txt").read_text() == "mine"
    assert (out / "a2b" / "generator.onnx").read_bytes() == b"an earlier onnx export"
    meta = json.loads((out / "a2b" / "metadata.json").read_text())
    assert meta["files"] == {"savedmodel": "savedmodel", "onnx": "generator.onnx"}
    assert meta["kept_from_an_earlier_export"] == ["generator.onnx"]


def test_train_with_imagenet_inception_weights_offline_is_one_line_before_any_step(demo_root, tmp_path, monkeypatch,
                                                                                  capsys):
    import keras

    def no_network(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    run_dir = tmp_path / "run"
    code = main(["train", "--run-dir", str(run_dir), "--set", f"data.root={demo_root}", "data.load_size=36",
                 "data.crop_size=32", "model.filters=4", "model.num_residual_blocks=1", "model.disc_filters=4",
                 "train.epochs=1", "train.epochs_decay=0", "train.verbose=0", "eval.every_n_epochs=1",
                 "eval.inception_weights=imagenet"])
    line = _error_line(capsys)
    assert code == 2 and "Cannot download the InceptionV3 weights" in line and "eval.inception_weights" in line
    assert not (run_dir / "model.keras").exists() and not (run_dir / "log.csv").exists()  # no step was trained


def test_translate_reads_an_animated_webp_and_a_palette_bmp_as_pillow_shows_them_and_skips_a_fifo(tmp_path, caplog):
    import keras
    import numpy as np
    from conftest import fifo_nobody_may_read, images_that_crashed_or_misread

    identity = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(
        3, 1, kernel_initializer=keras.initializers.Constant(np.eye(3).reshape(1, 1, 3, 3)))])
    identity.save(tmp_path / "identity.keras")
    expected = images_that_crashed_or_misread(tmp_path / "in")
    with fifo_nobody_may_read(tmp_path / "in" / "pipe.png"):  # it blocked for ever: opened, it fails the test
        code = main(["translate", "--model", str(tmp_path / "identity.keras"), "--out", str(tmp_path / "out"),
                     str(tmp_path / "in")])
    assert code == 0
    assert "pipe.png: not a regular file (a FIFO)" in caplog.text
    assert sorted(os.listdir(tmp_path / "out")) == ["animated.png", "palette.png"]
    for name, pixels in expected.items():
        written = tf.io.decode_png(tf.io.read_file(str(tmp_path / "out" / f"{name}.png"))).numpy()
        np.testing.assert_array_equal(written, pixels, err_msg=name)


@pytest.mark.slow
def test_train_takes_an_animated_webp_and_a_palette_bmp_and_skips_a_fifo(demo_root, tmp_path, caplog):
    import shutil

    from conftest import fifo_nobody_may_read, images_that_crashed_or_misread

    shutil.copytree(demo_root / "trainB", tmp_path / "data" / "trainB")
    images_that_crashed_or_misread(tmp_path / "data" / "trainA")
    with fifo_nobody_may_read(tmp_path / "data" / "trainA" / "pipe.png"):
        code = main(["train", "--run-dir", str(tmp_path / "run"), "--set", f"data.root={tmp_path / 'data'}",
                     "data.load_size=36", "data.crop_size=32", "model.filters=4", "model.num_residual_blocks=1",
                     "model.disc_filters=4", "train.epochs=1", "train.epochs_decay=0", "train.verbose=0",
                     "train.steps_per_epoch=2", "data.num_samples=0"])
    assert code == 0
    assert "pipe.png: not a regular file (a FIFO)" in caplog.text
    assert (tmp_path / "run" / "model.keras").is_file()


def test_demo_data_bounds_the_size_and_the_counts_before_any_work(tmp_path, capsys):
    for flag, value in (("--size", "100000"), ("--num-train", "1000000000"), ("--num-test", "1000000000")):
        assert main(["make-demo-data", str(tmp_path / "d"), flag, value]) == 2
        line = _error_line(capsys)
        assert f"argument {flag}: must be at most" in line and f"Received: {value}" in line
    assert not (tmp_path / "d").exists()


def _spoilt_paired_set(demo_root, root):
    """The demo dataset with one ground truth gone and one of another size."""
    import shutil

    import numpy as np

    shutil.copytree(demo_root, root)
    (root / "testB_paired" / "0000.png").unlink()
    tf.io.write_file(str(root / "testB_paired" / "0001.png"), tf.io.encode_png(np.zeros((20, 36, 3), np.uint8)))
    return root


def test_train_checks_the_paired_test_set_before_any_work(demo_root, tmp_path, capsys):
    root = _spoilt_paired_set(demo_root, tmp_path / "data")
    code = main(["train", "--run-dir", str(tmp_path / "run"), "--set", f"data.root={root}", "data.load_size=36",
                 "data.crop_size=32"])
    line = _error_line(capsys)
    assert code == 2 and "testA/0000.png has no ground truth" in line and "testB_paired/0000.png" in line
    assert not (tmp_path / "run").exists()
    (root / "testB_paired" / "0000.png").write_bytes((root / "testB_paired" / "0002.png").read_bytes())
    assert main(["train", "--run-dir", str(tmp_path / "run"), "--set", f"data.root={root}"]) == 2
    line = _error_line(capsys)
    assert "testA/0001.png is 36x36 pixels, its ground truth" in line and "testB_paired/0001.png 36x20" in line
    assert not (tmp_path / "run").exists()


def test_evaluate_checks_the_paired_test_set_before_translating(saved_models, demo_root, tmp_path, capsys,
                                                                monkeypatch):
    from tf_cyclegan.evaluation import evaluate

    root = _spoilt_paired_set(demo_root, tmp_path / "data")
    monkeypatch.setattr(evaluate, "_translate_all", lambda *a: pytest.fail("translated before the check"))
    code = main(["evaluate", "--model", str(saved_models / "cyclegan.keras"), "--data", str(root), "--no-fid"])
    line = _error_line(capsys)
    assert code == 2 and "testA/0000.png has no ground truth" in line and "testB_paired/0000.png" in line


def test_tfds_problems_are_one_line_naming_the_fix(tmp_path, capsys, monkeypatch):
    import tensorflow_datasets as tfds

    assert main(["train", "--run-dir", str(tmp_path / "run"), "--set", "data.tfds=cycle_gn/horse2zebra"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'cycle_gan/horse2zebra'" in err and "mnist" not in err  # not the list of every dataset

    def missing_module(*args, **kwargs):
        try:
            raise ModuleNotFoundError("No module named 'cv2'", name="cv2")
        except ImportError as error:  # as TFDS re-raises it: a longer message, the name on the cause
            raise ModuleNotFoundError(f"{error}\nFailed importing cv2 (usually with `pip install cv2`)") from error

    monkeypatch.setattr(tfds, "builder", missing_module)
    assert main(["train", "--run-dir", str(tmp_path / "run"), "--set", "data.tfds=cycle_gan/horse2zebra"]) == 2
    line = _error_line(capsys)
    assert "module 'cv2'" in line and "pip install opencv-python" in line and "tf_cyclegan[onnx]" not in line
    assert not (tmp_path / "run").exists()
