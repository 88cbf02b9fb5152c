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


def test_never_due_writes_nothing(model, tmp_path):
    checkpoints = KerasCheckpoints(str(tmp_path / "checkpoints"), RunProgress(steps_per_epoch=2),
                                   every_n_epochs=0, every_n_steps=0)
    _run(model, checkpoints, epochs=2, steps_per_epoch=2)
    assert checkpoints.checkpoints() == [] and not (tmp_path / "checkpoints").exists()
