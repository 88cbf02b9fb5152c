import os
import zipfile

import keras
import pytest
from conftest import built_tiny_cyclegan

from tf_cyclegan.training.callbacks.checkpoints import KerasCheckpoints
from tf_cyclegan.training.callbacks.progress import RunProgress


@pytest.fixture(scope="module")
def model():
    return built_tiny_cyclegan()


def _run(model, checkpoints, epochs, steps_per_epoch):
    """Calls `checkpoints` as `fit` would over `epochs` epochs, after its `RunProgress`."""
    callbacks = keras.callbacks.CallbackList([checkpoints.progress, checkpoints], model=model)
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        for batch in range(steps_per_epoch):
            callbacks.on_train_batch_end(batch)
        callbacks.on_epoch_end(epoch)


def _names(checkpoints):
    return [os.path.basename(path) for path in checkpoints.checkpoints()]


def test_every_epoch_keeps_the_last_keep_newest_first(model, tmp_path):
    checkpoints = KerasCheckpoints(str(tmp_path / "checkpoints"), RunProgress(steps_per_epoch=2), keep=2)
    _run(model, checkpoints, epochs=3, steps_per_epoch=2)
    assert _names(checkpoints) == ["epoch_0003.keras", "epoch_0002.keras"]
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch_0002.keras", "epoch_0003.keras"]  # no temporary
    assert zipfile.is_zipfile(tmp_path / "checkpoints" / "epoch_0003.keras")  # a whole .keras archive


def test_every_n_steps_and_epochs_are_counted_over_the_whole_run(model, tmp_path):
    # 3 epochs of 2 steps: steps 3 and 6 are due, and epoch 2; the oldest file goes (keep=2).
    checkpoints = KerasCheckpoints(str(tmp_path / "checkpoints"), RunProgress(steps_per_epoch=2),
                                   every_n_epochs=2, every_n_steps=3, keep=2)
    _run(model, checkpoints, epochs=3, steps_per_epoch=2)
    assert _names(checkpoints) == ["step_0000000006.keras", "epoch_0002.keras"]
    (tmp_path / "checkpoints" / "notes.keras").write_text("not a checkpoint name: never pruned")
    _run(model, checkpoints, epochs=0, steps_per_epoch=2)
    assert "notes.keras" in os.listdir(tmp_path / "checkpoints")


@pytest.mark.parametrize("times", ["equal", "reversed"])
def test_the_oldest_by_the_step_in_the_name_is_pruned_whatever_the_modification_times(model, tmp_path, times):
    # A file system with coarse timestamps gives equal times, a copy can reverse them: in the
    # future here, the new checkpoint is the oldest of all by modification time.
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    earlier = ["epoch_0001.keras", "step_0000000003.keras", "step_0000000004.keras", "epoch_0002.keras"]
    future = os.path.getmtime(folder) + 3600
    for i, name in enumerate(earlier):
        (folder / name).write_text("an earlier checkpoint")
        mtime = future if times == "equal" else future + len(earlier) - i  # reversed: the oldest is the newest
        os.utime(folder / name, (mtime, mtime))
    checkpoints = KerasCheckpoints(str(folder), RunProgress(steps_per_epoch=2, epoch=2), keep=3)
    callbacks = keras.callbacks.CallbackList([checkpoints.progress, checkpoints], model=model)
    callbacks.on_epoch_begin(2)
    for batch in range(2):
        callbacks.on_train_batch_end(batch)
    callbacks.on_epoch_end(2)  # writes epoch_0003.keras (step 6), then prunes
    # An epoch's file is at its last step, written after that step's file.
    assert _names(checkpoints) == ["epoch_0003.keras", "epoch_0002.keras", "step_0000000004.keras"]
    assert sorted(os.listdir(folder)) == ["epoch_0002.keras", "epoch_0003.keras", "step_0000000004.keras"]


def test_never_due_writes_nothing(model, tmp_path):
    checkpoints = KerasCheckpoints(str(tmp_path / "checkpoints"), RunProgress(steps_per_epoch=2),
                                   every_n_epochs=0, every_n_steps=0)
    _run(model, checkpoints, epochs=2, steps_per_epoch=2)
    assert checkpoints.checkpoints() == [] and not (tmp_path / "checkpoints").exists()
