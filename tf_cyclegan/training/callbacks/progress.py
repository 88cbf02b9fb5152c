"""`RunProgress`: where a run is (epoch, batch within it, global step), for every callback.

`fit` numbers batches from 0 in each epoch and knows nothing of a run resumed part-way; the
callbacks that act every N steps (checkpoints, samples, the monitor, backups) and the backup
record all read the run's own position from this one callback, which runs first.
"""

import keras
import numpy as np


def _tracker_state(model):
    """The epoch's running loss means (each Mean's total and count), for a resume part-way; None
    with several replicas, where reading a metric is a cross-replica reduction that only the
    chief (which writes the backup) would join, and the epoch's means after such a resume cover
    the batches since the resume."""
    if model.distribute_strategy.num_replicas_in_sync > 1:
        return None
    return {metric.name: [float(np.asarray(v)) for v in metric.variables] for metric in model.metrics}


class RunProgress(keras.callbacks.Callback):
    """Keeps the epoch, batch within it and global step; the first callback of a run.

    `fit` numbers batches from 0 in every epoch, including a resumed epoch that starts
    part-way; `first_batch` tells it where that epoch really starts.

    Args:
        steps_per_epoch: int, batches per full epoch.
        epoch: int, the epoch training starts in.
        first_batch: int, batches of that epoch already done.
        info: dict, more facts recorded with each backup (pairs per epoch, global batch).
        trackers: dict, the loss trackers' state when a backup made part-way through `epoch`
            was written (`record()["trackers"]`), or None. Keras resets every metric at the
            start of an epoch, after which this puts them back, so the epoch's means cover
            the batches trained before the resume too.
    """

    def __init__(self, steps_per_epoch, epoch=0, first_batch=0, info=None, trackers=None):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.info = dict(info or {})
        self.epoch = epoch
        self.batch = first_batch  # batches finished in the current epoch
        self._offset = first_batch
        self._trackers = trackers if first_batch else None

    @property
    def global_step(self):
        return self.epoch * self.steps_per_epoch + self.batch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.epoch:
            self.epoch, self.batch, self._offset = epoch, 0, 0
            self._trackers = None
        if self._trackers:  # the resumed epoch: Keras has just reset the metrics
            for metric in self.model.metrics:
                if metric.name in self._trackers:
                    for variable, value in zip(metric.variables, self._trackers[metric.name]):
                        variable.assign(value)
            self._trackers = None

    def on_train_batch_end(self, batch, logs=None):
        self.batch = self._offset + batch + 1

    def on_epoch_end(self, epoch, logs=None):
        # The epoch is complete: the next state is the start of the next epoch.
        self.epoch, self.batch, self._offset = epoch + 1, 0, 0

    def record(self, model):
        """What a backup records of where the run is (with `info` and the loss trackers' state),
        so that a resume starts at the same batch with the same learning rate."""
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "global_step": self.global_step,
            "steps_per_epoch": self.steps_per_epoch,
            "learning_rate": float(np.asarray(model.gen_optimizer.learning_rate)),
            "trackers": _tracker_state(model),
            **self.info,
        }
