"""Backups of the complete training state, written atomically, restored with fallback.

A backup is a folder `backup/step-NNNNNNNNNN/` holding `state.weights.h5` (all four
networks, both optimizers with their moments, iteration counts and loss scales, both
image pools with their random streams) and `progress.json` (epoch, batch, global step,
learning rate, the weights file's SHA-256). It is written into a temporary folder,
flushed to disk, then renamed into place, so a kill at any moment leaves the previous
backups whole; a backup without a matching checksum is never loaded.
"""

import hashlib
import json
import logging
import os
import re
import shutil
import time

import keras

from tf_cyclegan.files import check_free_space, state_bytes
from tf_cyclegan.layers.legacy import load_weights
from tf_cyclegan.training.callbacks.monitor import check_finite_weights
from tf_cyclegan.training.callbacks.periodic import is_due

logger = logging.getLogger(__name__)

WEIGHTS = "state.weights.h5"
PROGRESS = "progress.json"
_PREFIX = "step-"


class BackupError(RuntimeError):
    """A backup could not be written or no backup could be restored."""


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BackupManager:
    """Writes, lists and restores the backups of one run.

    Args:
        directory: the run's backup folder (created when first written).
        keep: int, default 2. Complete backups kept; older ones are deleted only after a
            newer one is complete.
    """

    # What it writes in its folder, one definition for the writer and for `--restart`'s cleaner:
    # step-NNNNNNNNNN/ (and, while writing, .tmp-step-NNNNNNNNNN-PID/ and .tmp-damaged-...).
    FOLDER_PATTERN = r"(\.tmp-(damaged-)?)?step-\d+(-\d+)?"
    FILE_PATTERN = FOLDER_PATTERN + "/(" + re.escape(WEIGHTS) + "|" + re.escape(PROGRESS) + ")"

    def __init__(self, directory, keep=2):
        if keep < 1:
            raise ValueError(f"keep must be at least 1. Received: keep={keep}")
        self.directory = os.fspath(directory)
        self.keep = keep

    def backups(self):
        """Complete backup folders, newest first (by global step)."""
        if not os.path.isdir(self.directory):
            return []
        names = [n for n in os.listdir(self.directory) if n.startswith(_PREFIX) and n[len(_PREFIX):].isdigit()]
        return [os.path.join(self.directory, n) for n in sorted(names, reverse=True)]

    def save(self, model, progress):
        """Writes a backup of `model` at `progress` (a dict with at least `global_step`).

        Returns the backup's folder. Raises `BackupError` naming the folder and the reason
        (a full disk, a read-only folder); the earlier backups are left as they were.
        """
        step = int(progress["global_step"])
        final = os.path.join(self.directory, f"{_PREFIX}{step:010d}")
        if os.path.exists(final):
            try:
                self.read_progress(final)
                return final  # this step's backup exists and is whole
            except (OSError, ValueError, KeyError, BackupError):
                pass  # damaged (restore skipped it): written anew below and swapped in
        tmp = os.path.join(self.directory, f".tmp-{_PREFIX}{step:010d}-{os.getpid()}")
        try:
            os.makedirs(self.directory, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            check_free_space(tmp, state_bytes(model), "the backup")
            weights = os.path.join(tmp, WEIGHTS)
            model.save_weights(weights)
            _fsync(weights)
            record = dict(progress, sha256=_sha256(weights), written=time.strftime("%Y-%m-%dT%H:%M:%S"))
            with open(os.path.join(tmp, PROGRESS), "w") as f:
                json.dump(record, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            _fsync(tmp)
            if os.path.exists(final):
                damaged = os.path.join(self.directory, f".tmp-damaged-{_PREFIX}{step:010d}-{os.getpid()}")
                os.rename(final, damaged)
                os.rename(tmp, final)
                shutil.rmtree(damaged, ignore_errors=True)
            else:
                os.rename(tmp, final)
            _fsync(self.directory)
        except OSError as error:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BackupError(
                f"Could not write the training backup {final}: {error.strerror or error}. "
                f"The previous backup is kept; free space or fix permissions and rerun to resume."
            ) from error
        self._prune()
        return final

    def _prune(self):
        for old in self.backups()[self.keep:]:
            shutil.rmtree(old, ignore_errors=True)
        for name in os.listdir(self.directory):
            if name.startswith(".tmp-") and not name.endswith(f"-{os.getpid()}"):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

    def read_progress(self, backup):
        """The progress record of a backup folder, after checking its weights' checksum."""
        with open(os.path.join(backup, PROGRESS)) as f:
            progress = json.load(f)
        digest = _sha256(os.path.join(backup, WEIGHTS))
        if digest != progress.get("sha256"):
            raise BackupError(f"{WEIGHTS} does not match the checksum in {PROGRESS} (a damaged file)")
        return progress

    def restore(self, model):
        """Loads the newest loadable backup into `model` (built and compiled).

        A damaged backup is skipped with a warning naming it, and the next older one is
        tried. Returns its progress dict, or None if there is no backup.

        Raises:
            BackupError: backups exist but none of them can be loaded.
        """
        candidates = self.backups()
        failures = []
        for backup in candidates:
            try:
                progress = self.read_progress(backup)
                load_weights(model, os.path.join(backup, WEIGHTS))  # also backups of older versions
            except (OSError, ValueError, KeyError, BackupError) as error:
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                logger.warning("Skipping damaged backup %s: %s. Trying the previous one.", backup, reason)
                failures.append(f"{backup}: {reason}")
                continue
            logger.info("Resumed from %s (epoch %d, batch %d, step %d)", backup, progress["epoch"],
                        progress["batch"], progress["global_step"])
            return progress
        if failures:
            raise BackupError("No loadable backup: " + "; ".join(failures))
        return None


class BackupCallback(keras.callbacks.Callback):
    """Backs up the training state every `every_n_steps` batches and at every epoch's end.

    Place it after the callbacks that write an epoch's records: the epoch-end backup is what
    marks the epoch done, so it comes last, and a kill before it trains the epoch's end again.

    Args:
        manager: `BackupManager`.
        progress: `RunProgress` that knows the epoch, batch and global step.
        every_n_steps: int, 0 for epoch ends only.
    """

    def __init__(self, manager, progress, every_n_steps=0):
        super().__init__()
        self.manager = manager
        self.progress = progress
        self.every_n_steps = every_n_steps

    def _save(self):
        check_finite_weights(self.model, self.progress)
        self.manager.save(self.model, self.progress.record(self.model))

    def on_train_batch_end(self, batch, logs=None):
        # Not at an epoch's last batch: the epoch's end backs up, after the epoch's records (log
        # row, checkpoint, sample grid). A backup there would mark the epoch done before them, and
        # a kill in between would lose them for good: the resumed run starts the next epoch.
        if is_due(self.progress.global_step, self.every_n_steps) and \
                self.progress.batch < self.progress.steps_per_epoch:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._save()
