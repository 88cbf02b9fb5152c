import errno
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import subprocess_env, tiny_cyclegan

from tf_cyclegan.training.callbacks.backup import PROGRESS, WEIGHTS, BackupError, BackupManager


@pytest.fixture(scope="module")
def trained():
    """A tiny CycleGAN holding what three steps leave: non-zero Adam moments, iteration counts
    of 3, three images in each pool and their random streams moved on. (Set directly: a
    backup saves and restores variables, and `fit` would only make these tests slow.)"""
    model = _fresh_built()
    rng = np.random.default_rng(0)
    for optimizer in (model.gen_optimizer, model.disc_optimizer):
        optimizer.iterations.assign(3)
        for variable in optimizer.variables:
            if "momentum" in variable.path or "velocity" in variable.path:
                variable.assign(np.abs(rng.normal(0, 1e-3, variable.shape)).astype(variable.dtype))
    for pool in (model.pool_a, model.pool_b):
        pool.images.assign(rng.uniform(-1, 1, pool.images.shape).astype("float32"))
        pool.count.assign(3)
        pool.seed_state.assign_add(np.array([0, 3], "int64"))
    return model


def _state(model):
    """Every variable a resume needs: networks, both optimizers, both pools, their seeds."""
    groups = {"networks": model.weights, "gen_optimizer": model.gen_optimizer.variables,
              "disc_optimizer": model.disc_optimizer.variables, "pool_a": model.pool_a.variables,
              "pool_b": model.pool_b.variables}
    return {f"{group}/{i}/{v.name}": np.asarray(v) for group, variables in groups.items()
            for i, v in enumerate(variables)}


def _fresh_built():
    model = tiny_cyclegan()
    model.compile()
    model.build((1, 32, 32, 3))
    return model


def test_restore_brings_back_both_optimizers_moments_and_the_pools(trained, tmp_path):
    model = trained
    manager = BackupManager(tmp_path / "backup")
    manager.save(model, {"global_step": 3, "epoch": 0, "batch": 3, "steps_per_epoch": 3})

    restored = _fresh_built()
    before = _state(restored)
    progress = manager.restore(restored)
    assert progress["global_step"] == 3
    saved, loaded = _state(model), _state(restored)
    assert saved.keys() == loaded.keys()
    for key in saved:
        np.testing.assert_array_equal(saved[key], loaded[key], err_msg=key)
    # The check has teeth: the discriminators' Adam moments were moved away from zero
    # and differed in the fresh model before the restore.
    moments = [k for k in saved if "disc_optimizer" in k and "momentum" in k]
    assert moments and any(np.abs(saved[k]).max() > 0 for k in moments)
    assert any(not np.array_equal(before[k], saved[k]) for k in moments)
    assert int(restored.disc_optimizer.iterations) == 3 and int(restored.gen_optimizer.iterations) == 3
    assert int(np.asarray(restored.pool_a.count)) == 3


def test_a_damaged_newest_backup_falls_back_to_the_previous_one(trained, tmp_path, caplog):
    manager = BackupManager(tmp_path / "backup", keep=2)
    model = trained
    manager.save(model, {"global_step": 1, "epoch": 0, "batch": 1, "steps_per_epoch": 4})
    older = _state(model)
    kernel = model.gen_a2b.weights[0]
    kernel.assign(kernel + 1.0)  # a later state
    newest = manager.save(model, {"global_step": 2, "epoch": 0, "batch": 2, "steps_per_epoch": 4})
    weights = os.path.join(newest, WEIGHTS)
    with open(weights, "r+b") as f:  # a torn write: the file's second half is gone
        f.truncate(os.path.getsize(weights) // 2)

    restored = _fresh_built()
    with caplog.at_level(logging.WARNING):
        progress = manager.restore(restored)
    assert progress["global_step"] == 1
    assert "step-0000000002" in caplog.text and "checksum" in caplog.text
    for key, value in _state(restored).items():
        np.testing.assert_array_equal(value, older[key], err_msg=key)
    # The resumed run reaches step 2 again: its backup replaces the damaged one, so the next
    # resume neither warns nor redoes those steps.
    assert manager.save(restored, {"global_step": 2, "epoch": 0, "batch": 2, "steps_per_epoch": 4}) == newest
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert manager.restore(_fresh_built())["global_step"] == 2
    assert "Skipping" not in caplog.text
    assert sorted(os.listdir(tmp_path / "backup")) == ["step-0000000001", "step-0000000002"]
    kernel.assign(kernel - 1.0)


def test_only_the_last_k_complete_backups_are_kept_and_partial_ones_are_ignored(trained, tmp_path):
    manager = BackupManager(tmp_path / "backup", keep=2)
    model = trained
    for step in (1, 2, 3):
        manager.save(model, {"global_step": step, "epoch": 0, "batch": step, "steps_per_epoch": 9})
    # What a kill during a write leaves: a temporary folder that is never renamed into place.
    os.makedirs(tmp_path / "backup" / ".tmp-step-0000000004-999999")
    (tmp_path / "backup" / ".tmp-step-0000000004-999999" / WEIGHTS).write_bytes(b"half")
    assert [os.path.basename(p) for p in manager.backups()] == ["step-0000000003", "step-0000000002"]
    assert manager.restore(_fresh_built())["global_step"] == 3


def test_a_full_disk_is_reported_and_the_previous_backup_survives(trained, tmp_path, monkeypatch):
    manager = BackupManager(tmp_path / "backup")
    model = trained
    manager.save(model, {"global_step": 1, "epoch": 0, "batch": 1, "steps_per_epoch": 4})

    def disk_full(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(model, "save_weights", disk_full)
    with pytest.raises(BackupError, match="No space left on device") as caught:
        manager.save(model, {"global_step": 2, "epoch": 0, "batch": 2, "steps_per_epoch": 4})
    assert "step-0000000002" in str(caught.value)
    assert sorted(os.listdir(tmp_path / "backup")) == ["step-0000000001"]
    assert manager.restore(_fresh_built())["global_step"] == 1


_TRAIN_SCRIPT = textwrap.dedent("""
    import logging, os, signal, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import keras
    from tf_cyclegan.training.config import load_config
    from tf_cyclegan.training.train import train_and_evaluate

    root, run_dir, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the library logs "Resuming ..."

    class KillAt(keras.callbacks.Callback):
        # SIGKILL after `kill_at` batches of this process: no cleanup, no atexit, nothing.
        seen = 0
        def on_train_batch_end(self, batch, logs=None):
            KillAt.seen += 1
            if KillAt.seen == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    config = load_config(overrides={
        "data": {"root": root, "load_size": 36, "crop_size": 32, "num_samples": 0},
        "model": {"filters": 4, "num_residual_blocks": 1, "disc_filters": 4, "pool_size": 3, "ema_decay": 0.9},
        "train": {"epochs": 2, "epochs_decay": 1, "verbose": 0, "seed": 3, "deterministic": True},
        "backup": {"every_n_steps": 2}, "checkpoint": {"every_n_epochs": 0},
    })
    train_and_evaluate(config, run_dir, callbacks=[KillAt()] if kill_at else [])
""")


def _train_process(root, run_dir, kill_at=0):
    return subprocess.Popen([sys.executable, "-c", _TRAIN_SCRIPT, str(root), str(run_dir), str(kill_at)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=subprocess_env(), text=True)


def _final_state(run_dir):
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    return _state(model)


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights_as_an_uninterrupted_one(demo_root, tmp_path):
    # 6 pairs a batch of 1: 6 steps an epoch, 18 in all; backups every 2 steps and at epoch ends.
    straight = _train_process(demo_root, tmp_path / "straight")
    killed = _train_process(demo_root, tmp_path / "killed", kill_at=9)
    killed_output = killed.communicate(timeout=600)[0]
    assert killed.returncode == -signal.SIGKILL, killed_output
    assert not (tmp_path / "killed" / "model.keras").exists()
    newest = BackupManager(tmp_path / "killed" / "backup").backups()[0]
    with open(os.path.join(newest, PROGRESS)) as f:
        progress = json.load(f)
    # Killed after step 9: the newest backup is step 8, in the middle of the second epoch.
    assert (progress["global_step"], progress["epoch"], progress["batch"]) == (8, 1, 2)

    resumed = _train_process(demo_root, tmp_path / "killed")
    resumed_output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, resumed_output
    assert "Resuming" in resumed_output and "epoch 2, batch 3" in resumed_output
    straight_output = straight.communicate(timeout=600)[0]
    assert straight.returncode == 0, straight_output

    expected, actual = _final_state(tmp_path / "straight"), _final_state(tmp_path / "killed")
    assert expected.keys() == actual.keys()
    # The averaged generators (model.ema_decay, among model.weights) and their update count came back too.
    assert int(expected[next(k for k in expected if k.endswith("ema_updates"))]) == 18
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
    assert int(np.asarray(expected[next(k for k in expected if k.endswith("iteration"))])) == 18
    # The CSV log has each epoch once, though epoch 2 was started twice.
    rows = (tmp_path / "killed" / "log.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2"]
    # And each epoch's means cover the whole epoch: the loss trackers' state came back with
    # the backup, so the resumed epoch 2 logs what the uninterrupted run logged.
    straight_rows = (tmp_path / "straight" / "log.csv").read_text().splitlines()
    killed_rows = (tmp_path / "killed" / "log.csv").read_text().splitlines()
    assert killed_rows[0] == straight_rows[0]
    def values(row):  # CSVLogger writes NA for a key an epoch did not log
        return [np.nan if v == "NA" else float(v) for v in row.split(",")]

    for got, want in zip(killed_rows[1:], straight_rows[1:]):
        np.testing.assert_allclose(values(got), values(want), rtol=1e-6, err_msg=straight_rows[0])


_TINY_RUN = ["data.load_size=36", "data.crop_size=32", "model.filters=4", "model.num_residual_blocks=1",
             "model.disc_filters=4", "train.epochs=1", "train.epochs_decay=0", "train.verbose=0",
             "data.num_samples=1"]


@pytest.mark.slow
def test_a_really_full_disk_ends_with_one_line_and_exit_2_not_a_crash(demo_root, small_disk):
    # 600 KB: the config, logs and samples fit, the first backup (about 1.6 MB) does not. No
    # .keras checkpoint: at an epoch's end it is written before the backup, and would fail first.
    run_dir = small_disk(600) / "run"
    done = subprocess.run(
        [sys.executable, "-m", "tf_cyclegan.cli", "train", "--run-dir", str(run_dir),
         "--set", f"data.root={demo_root}", *_TINY_RUN, "checkpoint.every_n_epochs=0"],
        capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]  # was SIGSEGV (139) after the message
    errors = [line for line in done.stderr.splitlines() if line.startswith("tf-cyclegan train: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "backup" in errors[0]
    assert "Traceback" not in done.stderr
    assert not [name for name in os.listdir(run_dir / "backup") if name.startswith(".tmp")]
