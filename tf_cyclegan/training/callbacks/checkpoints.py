"""`.keras` checkpoints: every N epochs or steps, each written whole, the last few kept."""

import os
import re

import keras

from tf_cyclegan.files import save_model_atomically
from tf_cyclegan.training.callbacks.periodic import is_due


class KerasCheckpoints(keras.callbacks.Callback):
    """Saves `.keras` models every N epochs and/or steps into a folder, keeping the last `keep`.

    Files are `epoch_NNNN.keras` and `step_NNNNNNNNNN.keras`, each written atomically; the
    oldest are pruned by the step their names give, never by their modification times.

    Args:
        directory: folder for the checkpoints.
        progress: `RunProgress`, for the global step.
        every_n_epochs: int, 0 for none.
        every_n_steps: int, 0 for none.
        keep: int, default 3. Checkpoints kept, newest first.
    """

    # The names it writes, one definition for the writer and for `--restart`'s cleaner.
    FILE_PATTERN = r"(epoch|step)_\d+\.keras"
    _NAME = re.compile(FILE_PATTERN)

    def __init__(self, directory, progress, every_n_epochs=1, every_n_steps=0, keep=3):
        super().__init__()
        self.directory = directory
        self.progress = progress
        self.every_n_epochs = every_n_epochs
        self.every_n_steps = every_n_steps
        self.keep = keep

    @staticmethod
    def file_name(kind, number):
        """`epoch_NNNN.keras` or `step_NNNNNNNNNN.keras` (`kind` "epoch" or "step"), as `FILE_PATTERN` matches."""
        return f"epoch_{number:04d}.keras" if kind == "epoch" else f"step_{number:010d}.keras"

    def _save(self, name):
        os.makedirs(self.directory, exist_ok=True)
        save_model_atomically(self.model, os.path.join(self.directory, name))
        self._prune()

    def _written_at(self, name):
        """When a checkpoint was written, from its name: (global step, epoch file after a step file).

        The name, not the file's modification time, which a file system with coarse timestamps
        can make equal (or a copy reverse), so the newest file would be pruned. An epoch's file
        is at its last step (with this run's steps per epoch) and written after that step's file.
        """
        kind, number = name.removesuffix(".keras").split("_")
        number = int(number)
        if kind == "epoch":
            return number * self.progress.steps_per_epoch, 1
        return number, 0

    def checkpoints(self):
        """Checkpoint files, newest first (by the global step when each was written, from its name)."""
        if not os.path.isdir(self.directory):
            return []
        names = [n for n in os.listdir(self.directory) if self._NAME.fullmatch(n)]
        return [os.path.join(self.directory, n) for n in sorted(names, key=self._written_at, reverse=True)]

    def _prune(self):
        for old in self.checkpoints()[self.keep:]:
            os.remove(old)

    def on_train_batch_end(self, batch, logs=None):
        if is_due(self.progress.global_step, self.every_n_steps):
            self._save(self.file_name("step", self.progress.global_step))

    def on_epoch_end(self, epoch, logs=None):
        if is_due(epoch + 1, self.every_n_epochs):
            self._save(self.file_name("epoch", epoch + 1))
