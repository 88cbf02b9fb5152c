import json
import os

import pytest
import tensorflow as tf
from conftest import CONFIGS

from tf_cyclegan.bench import benchmark_model
from tf_cyclegan.cli import main
from tf_cyclegan.flops import training_step_flops
from tf_cyclegan.runtime import onednn_enabled


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
    [image_tag] = samples.Tags()["tensors"]
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


@pytest.mark.slow
def test_train_writes_a_complete_run_directory(demo_root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main([
        "train", "--config", os.path.join(CONFIGS, "demo.yaml"), "--run-dir", str(run_dir),
        "--set", f"data.root={demo_root}", "--set", "data.load_size=36", "--set", "data.crop_size=32",
        "--set", "model.filters=4", "--set", "model.num_residual_blocks=1", "--set", "model.disc_filters=4",
        "--set", "train.epochs=1", "--set", "train.epochs_decay=1", "--set", "train.verbose=0",
        "--set", "data.num_samples=2", "--set", "eval.every_n_epochs=2",
        "--set", "monitor.scalars_every_n_steps=2", "--set", "monitor.images_every_n_steps=4",
    ])
    assert code == 0
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
    assert "baseline" in capsys.readouterr().out
    _check_tensorboard_tags(run_dir / "logs")
    # Neither temporary nor partial model files are left behind.
    assert not [name for name in files if ".tmp" in name]


def test_bench_prints_the_reference_keys(capsys):
    # A tiny network so the test is quick; the real benchmark uses the paper's ResNet-9.
    code = main(["bench", "--size", "32", "--ngf", "4", "--blocks", "1", "--steps", "2", "--warmup", "1"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("images_per_s", "first_step_s", "peak_rss_mb", "params_generator", "params_discriminator"):
        assert result[key] > 0, key
    assert result["size"] == 32 and result["params_discriminator"] == 2764737
    assert result["onednn"] is onednn_enabled()  # what TensorFlow runs, not the switch's spelling
    assert result["gpu"] is None and result["gpu_peak_memory_mb"] is None  # no GPU here: null, not 0
    # The arithmetic of the benchmarked update, and the rate it ran at.
    step_flop = training_step_flops(benchmark_model(blocks=1, ngf=4), (1, 32, 32, 3))
    assert result["step_gflop"] == round(step_flop / 1e9, 2)
    assert result["gflop_per_s"] == pytest.approx(step_flop / 1e9 * result["images_per_s"], abs=0.06)
