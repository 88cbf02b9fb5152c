"""Step-level monitoring: TensorBoard scalars and hparams, and a stop on NaN or Inf losses.

`TrainingMonitor` writes every `every_n_steps` steps, under `logs/steps/`: each loss
term (the running mean over the epoch so far, as `fit` reports it), the learning rate,
images per second, and under mixed_float16 the loss scales and the steps the loss
scaler skipped. At the start it writes the run's config as TensorBoard hparams.
"""

import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tf_cyclegan.choices import NETWORKS
from tf_cyclegan.training.callbacks.periodic import is_due


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN or infinite."""

    def __init__(self, progress, what):
        super().__init__(
            f"Training diverged at step {progress.global_step} (epoch {progress.epoch + 1}, batch {progress.batch}): "
            f"{what}. The last good backup is kept; lower the learning rate or check the data, then rerun to "
            "resume from it.")


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first NaN or Inf loss, naming the step and the loss terms.

    Place it before the backup callback: the step that diverged is never backed up, so
    the last good backup stays the newest.

    Args:
        progress: `RunProgress`, for the global step.
    """

    def __init__(self, progress):
        super().__init__()
        self.progress = progress

    def on_train_batch_end(self, batch, logs=None):
        bad = {name: float(value) for name, value in (logs or {}).items()
               if np.ndim(value) == 0 and not math.isfinite(float(value))}
        if bad:
            terms = ", ".join(f"{name}={value}" for name, value in sorted(bad.items()))
            raise TrainingDiverged(self.progress, f"non-finite loss {terms}")


def check_finite_weights(model, progress):
    """Raises `TrainingDiverged` naming the variables holding NaN or Inf (checked before a backup:
    a step's losses are computed before its update, so they can be finite while the update is not)."""
    networks = [getattr(model, name) for name in getattr(model, "network_names", NETWORKS)]
    bad = [f"{net.name}/{v.path}" for net in networks for v in net.trainable_variables
           if not np.isfinite(np.asarray(v)).all()]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise TrainingDiverged(progress, f"non-finite weights in {shown}")


def _loss_scale(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return float(np.asarray(optimizer.dynamic_scale))
    return None


# The files TensorBoard's summary writers make in a log folder (events.out.tfevents.<time>.<host>.<pid>...).
EVENT_FILE_PATTERN = r"events\.out\.tfevents\.[^/]+"


class TrainingMonitor(keras.callbacks.Callback):
    """Writes step-level scalars and the config hparams to TensorBoard.

    Args:
        log_dir: the run's TensorBoard folder; writes into `log_dir/steps`.
        progress: `RunProgress`, for the global step.
        batch_size: global batch size, for images per second.
        every_n_steps: int, default 10.
        hparams: flat dict of config values, or None.
        run_name: the hparams trial name (the run directory's name).
    """

    LOG_SUBDIR = "steps"  # under log_dir

    def __init__(self, log_dir, progress, batch_size, every_n_steps=10, hparams=None, run_name="run"):
        super().__init__()
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, self.LOG_SUBDIR))
        self.progress = progress
        self.batch_size = batch_size
        self.every_n_steps = max(1, every_n_steps)
        self.hparams = hparams
        self.run_name = run_name
        self._last = None

    def _mark(self):
        return time.perf_counter(), self.progress.global_step, self._applied_steps()

    def _applied_steps(self):
        return int(np.asarray(self.model.gen_optimizer.iterations))

    def on_train_begin(self, logs=None):
        if self.hparams:
            from tensorboard.plugins.hparams import api as hp

            with self.writer.as_default():
                hp.hparams(self.hparams, trial_id=self.run_name)
            self.writer.flush()
        self._last = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._last is None:
            # Timing starts at the first step of this fit: tracing is not throughput.
            self._last = self._mark()

    def on_train_batch_end(self, batch, logs=None):
        step = self.progress.global_step
        if not is_due(step, self.every_n_steps) or self._last is None:
            return
        now, last_step, last_applied = self._last
        scalars = {f"loss/{name}": float(value) for name, value in (logs or {}).items() if np.ndim(value) == 0}
        scalars["learning_rate"] = float(np.asarray(self.model.gen_optimizer.learning_rate))
        seconds = time.perf_counter() - now
        if step > last_step and seconds > 0:
            scalars["images_per_second"] = (step - last_step) * self.batch_size / seconds
        gen_scale = _loss_scale(self.model.gen_optimizer)
        if gen_scale is not None:
            applied = self._applied_steps()
            scalars["loss_scale/generators"] = gen_scale
            scalars["loss_scale/discriminators"] = _loss_scale(self.model.disc_optimizer)
            if getattr(self.model, "head_optimizer", None) is not None:  # CUT's feature head
                scalars["loss_scale/feature_head"] = _loss_scale(self.model.head_optimizer)
            scalars["loss_scale/skipped_steps"] = (step - last_step) - (applied - last_applied)
        with self.writer.as_default():
            for tag, value in scalars.items():
                tf.summary.scalar(tag, value, step=step)
        self._last = self._mark()

    def on_epoch_end(self, epoch, logs=None):
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.flush()
