import math
import os

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_cyclegan

from tf_cyclegan.training.callbacks.backup import WEIGHTS, BackupManager
from tf_cyclegan.training.callbacks.monitor import StopOnNonFinite, TrainingDiverged, TrainingMonitor
from tf_cyclegan.training.callbacks.progress import RunProgress
from tf_cyclegan.training.config import load_config
from tf_cyclegan.training.train import train_and_evaluate


def test_non_finite_logs_stop_with_the_step_and_the_term():
    progress = RunProgress(steps_per_epoch=10, epoch=1, first_batch=3)
    guard = StopOnNonFinite(progress)
    guard.on_train_batch_end(0, {"gen_total": 3.0, "disc_a": 0.2})  # finite: nothing happens
    progress.on_train_batch_end(1)
    with pytest.raises(TrainingDiverged, match=r"step 15 \(epoch 2, batch 5\).*disc_b=nan.*gen_total=inf"):
        guard.on_train_batch_end(1, {"gen_total": math.inf, "disc_a": 0.2, "disc_b": math.nan})


def _all_finite(weights_file):
    finite = []
    with h5py.File(weights_file) as f:
        f.visititems(lambda name, node: finite.append(np.isfinite(node[()]).all())
                     if isinstance(node, h5py.Dataset) and node.dtype.kind == "f" else None)
    return finite and all(finite)


@pytest.mark.slow
def test_a_diverging_run_stops_naming_the_loss_and_keeps_the_last_good_backup(demo_root, tmp_path):
    config = load_config(overrides={
        "data": {"root": str(demo_root), "load_size": 36, "crop_size": 32, "num_samples": 0},
        "model": {"filters": 4, "num_residual_blocks": 1, "disc_filters": 4},
        "train": {"epochs": 2, "epochs_decay": 0, "verbose": 0, "learning_rate": 1e15},
        "backup": {"every_n_steps": 1},
    })
    # A step's losses come before its update: either the losses or (checked before each
    # backup) the weights are the first to go non-finite.
    pattern = r"non-finite (loss (cycle|disc|gan|gen|identity)|weights in (gen|disc)_)"
    with pytest.raises(TrainingDiverged, match=pattern) as caught:
        train_and_evaluate(config, str(tmp_path / "run"))
    message = str(caught.value)
    step = int(message.split("at step ")[1].split(" ")[0])
    backups = BackupManager(tmp_path / "run" / "backup").backups()
    assert backups, message
    assert os.path.basename(backups[0]) == f"step-{step - 1:010d}"  # the diverged step is not backed up
    assert _all_finite(os.path.join(backups[0], WEIGHTS))


@pytest.mark.slow
def test_under_mixed_float16_the_loss_scales_and_skipped_steps_reach_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    keras.mixed_precision.set_global_policy("mixed_float16")
    model = tiny_cyclegan(pool_size=0)
    model.compile()
    # The second of three batches overflows float16: both loss-scaled optimizers skip it.
    images = np.random.default_rng(0).uniform(-1, 1, (3, 1, 32, 32, 3)).astype("float32")
    images[1] = 6e4
    data = tf.data.Dataset.from_tensor_slices((images, np.zeros_like(images)))
    progress = RunProgress(steps_per_epoch=3)
    monitor = TrainingMonitor(str(tmp_path), progress, batch_size=1, every_n_steps=1)
    model.fit(data, epochs=1, verbose=0, callbacks=[progress, monitor])

    steps = EventAccumulator(str(tmp_path / "steps"), size_guidance={"tensors": 0}).Reload()

    def series(tag):
        return [(event.step, float(tf.make_ndarray(event.tensor_proto))) for event in steps.Tensors(tag)]

    skipped = series("loss_scale/skipped_steps")
    assert [step for step, _ in skipped] == [1, 2, 3]
    assert skipped[1] == (2, 1.0)  # the overflowing step
    applied = int(model.gen_optimizer.inner_optimizer.iterations.numpy())
    assert sum(value for _, value in skipped) == 3 - applied
    for tag, optimizer in (("loss_scale/generators", model.gen_optimizer),
                           ("loss_scale/discriminators", model.disc_optimizer)):
        scales = series(tag)
        assert scales[0][1] < 2.0**15  # halved at least once, by the overflowing step
        assert scales[-1][1] == float(optimizer.dynamic_scale.numpy())
