"""`train_and_evaluate(config, run_dir)`: data, models, `fit`, and what a run leaves behind.

A run directory holds `config.yaml` (the resolved config), `backup/` (the full training
state, for resuming), `checkpoints/` (`.keras` models), `logs/` (TensorBoard),
`log.csv`, `samples/epoch_NNN.png`, `model.keras` (the final model) and, where the data
has a paired test set, `results.json` with the translation error next to the do-nothing
baseline.

Running again on a directory that holds a run resumes it from its newest backup, at the
batch where it stopped; `restart=True` starts it over.
"""

import csv
import json
import logging
import os
import shutil

import keras
import tensorflow as tf

from tf_cyclegan.backup import BackupCallback, BackupManager, RunProgress
from tf_cyclegan.callbacks import KerasCheckpoints, SampleGrid, save_model_atomically
from tf_cyclegan.config import ConfigError, dump_config, load_config
from tf_cyclegan.cyclegan import CycleGAN
from tf_cyclegan.data import DataPosition, list_images, load_image, make_tfds_dataset, make_unpaired_dataset
from tf_cyclegan.discriminator import build_patchgan_discriminator
from tf_cyclegan.evaluate import EvaluationCallback
from tf_cyclegan.fid import InceptionFeatures
from tf_cyclegan.generator import build_resnet_generator
from tf_cyclegan.monitor import StopOnNonFinite, TrainingMonitor, flatten_config
from tf_cyclegan.paired_metrics import paired_translation_error
from tf_cyclegan.precision import set_precision
from tf_cyclegan.schedule import LinearDecay

logger = logging.getLogger(__name__)


def _train_folders(data):
    if data.root:
        return os.path.join(data.root, "trainA"), os.path.join(data.root, "trainB")
    if data.train_a:
        return data.train_a, data.train_b
    return None


def build_dataset(data, seed=None, max_steps=None, position=None):
    """The training `tf.data.Dataset` of a `DataConfig` (folders or TFDS); one pass per epoch."""
    options = dict(load_size=data.load_size, crop_size=data.crop_size, batch_size=data.batch_size,
                   flip=data.flip, cache=data.cache, seed=seed, max_steps=max_steps, position=position)
    folders = _train_folders(data)
    if folders:
        return make_unpaired_dataset(*folders, **options)
    if data.tfds:
        return make_tfds_dataset(data.tfds, data_dir=data.tfds_data_dir, **options)
    raise ConfigError("No training data: set data.root, data.train_a and data.train_b, or data.tfds")


def build_cyclegan(model_config, seed=None):
    """The four networks of a `ModelConfig`, wrapped in an uncompiled `CycleGAN`."""
    m = model_config

    def generator(name):
        return build_resnet_generator(filters=m.filters, num_residual_blocks=m.num_residual_blocks, name=name)

    def discriminator(name):
        return build_patchgan_discriminator(filters=m.disc_filters, num_layers=m.disc_layers, name=name)

    return CycleGAN(
        generator("gen_a2b"), generator("gen_b2a"), discriminator("disc_a"), discriminator("disc_b"),
        lambda_cycle=m.lambda_cycle, lambda_identity=m.lambda_identity, pool_size=m.pool_size,
        gan_mode=m.gan_mode, pool_seed=seed,
    )


def _sample_images(data, count):
    """Up to `count` test images per domain for the sample grid, or None without test folders."""
    if not data.root or count == 0:
        return None
    folders = [os.path.join(data.root, split) for split in ("testA", "testB")]
    if not all(os.path.isdir(folder) for folder in folders):
        return None
    return [[load_image(path) for path in list_images(folder)[:count]] for folder in folders]


def _check_writable(run_dir):
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise ConfigError(f"Run directory {run_dir!r} is not writable: {error.strerror}") from None


# Settings that may differ when a run is resumed; anything else must match the saved config.
_RESUMABLE = ("train.verbose", "train.epochs", "train.epochs_decay", "checkpoint.", "monitor.", "eval.")
_RUN_FILES = ("backup", "checkpoints", "logs", "samples", "log.csv", "model.keras", "results.json", "config.yaml")


def _clear_run(run_dir):
    """Deletes an earlier run's files (only those a run writes) for a restart."""
    for name in _RUN_FILES:
        path = os.path.join(run_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def _resuming(config, run_dir, restart):
    """Whether `run_dir` holds a run with this config to resume."""
    saved_path = os.path.join(run_dir, "config.yaml")
    if restart or not os.path.exists(saved_path):
        return False
    saved = flatten_config(load_config(saved_path).to_dict())
    wanted = flatten_config(config.to_dict())
    changed = [f"{key}: {saved.get(key)!r} in the run, {wanted.get(key)!r} now" for key in sorted(wanted)
               if saved.get(key) != wanted.get(key) and not key.startswith(_RESUMABLE)]
    if changed:
        raise ConfigError(
            f"{run_dir} holds a run with a different config ({'; '.join(changed)}). "
            "Use the same config to resume it, --restart to start it over, or another --run-dir."
        )
    return True


def train_and_evaluate(config, run_dir, restart=False, callbacks=()):
    """Trains a CycleGAN as `config` says, writing everything into `run_dir`.

    If `run_dir` already holds a run with the same config, training resumes from its
    newest loadable backup (weights, optimizers, pools, data position); `restart=True`
    deletes the earlier run's files and starts over.

    Args:
        config: `Config`.
        run_dir: str, the run directory.
        restart: bool, default False.
        callbacks: extra Keras callbacks, run after the built-in ones.

    Returns:
        dict with the run directory, the final losses and, where the data has
        `testB_paired/`, the paired translation error (see `paired_translation_error`).
    """
    t = config.train
    if t.seed is not None:
        keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    resume = _resuming(config, run_dir, restart)
    # Everything that can fail on bad input happens before any network is built.
    position = DataPosition()
    dataset = build_dataset(config.data, seed=t.seed, max_steps=t.steps_per_epoch, position=position)
    samples = _sample_images(config.data, config.data.num_samples)
    _check_writable(run_dir)
    if restart:
        _clear_run(run_dir)
    dump_config(config, os.path.join(run_dir, "config.yaml"))

    policy = set_precision(t.precision)
    logger.info("Precision policy: %s", policy)
    try:
        return _train(config, run_dir, dataset, position, samples, policy, resume, list(callbacks))
    finally:
        # The policy is process-global; later models in this process start from float32.
        keras.mixed_precision.set_global_policy("float32")


def _keep_csv_rows_before(path, epoch):
    """Drops CSV log rows of epochs a resumed run is about to train again."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        return
    column = rows[0].index("epoch")
    kept = [rows[0]] + [row for row in rows[1:] if len(row) > column and int(row[column]) < epoch]
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    os.replace(tmp, path)


def _train(config, run_dir, dataset, position, samples, policy, resume, extra_callbacks):
    t, c = config.train, config.checkpoint
    model = build_cyclegan(config.model, seed=t.seed)
    model.compile(
        gen_optimizer=keras.optimizers.Adam(t.learning_rate, beta_1=t.beta_1),
        disc_optimizer=keras.optimizers.Adam(t.learning_rate, beta_1=t.beta_1),
        jit_compile=t.jit_compile,
    )
    model.build(tuple(dataset.element_spec[0].shape))  # the pools, so a backup can load into them
    steps = position.steps_per_epoch
    total_epochs = t.epochs + t.epochs_decay
    manager = BackupManager(os.path.join(run_dir, "backup"), keep=c.keep_backups)
    csv_path = os.path.join(run_dir, "log.csv")
    epoch, batch = 0, 0
    record = manager.restore(model) if resume else None
    if record:
        if record["steps_per_epoch"] != steps:
            raise ConfigError(
                f"The backup in {run_dir} was made with {record['steps_per_epoch']} batches per epoch, but the "
                f"data now gives {steps}: the training data changed. Use --restart to start over."
            )
        epoch, batch = record["epoch"], record["batch"]
        if batch >= steps:  # stopped after an epoch's last batch, before its end
            epoch, batch = epoch + 1, 0
        _keep_csv_rows_before(csv_path, epoch)
        print(f"Resuming {run_dir} at epoch {epoch + 1}, batch {batch + 1} (step {record['global_step']})")

    log_dir = os.path.join(run_dir, "logs")
    progress = RunProgress(steps, epoch, batch)
    # Order matters: progress first; LinearDecay adds the learning rate to the logs the later
    # ones write; the NaN check runs before the backup so a diverged step is never backed up.
    callbacks = [
        progress,
        LinearDecay(t.learning_rate, t.epochs, t.epochs_decay),
        StopOnNonFinite(progress),
        BackupCallback(manager, progress, every_n_steps=c.backup_every_n_steps),
        keras.callbacks.TensorBoard(log_dir, write_graph=False),
        keras.callbacks.CSVLogger(csv_path, append=True),
        KerasCheckpoints(os.path.join(run_dir, "checkpoints"), progress, every_n_epochs=c.keras_every_n_epochs,
                         every_n_steps=c.keras_every_n_steps, keep=c.keep_keras),
        TrainingMonitor(log_dir, progress, batch_size=config.data.batch_size,
                        every_n_steps=config.monitor.scalars_every_n_steps,
                        hparams=flatten_config(config.to_dict()), run_name=os.path.basename(os.path.abspath(run_dir))),
    ]
    if config.eval.every_n_epochs:
        features = InceptionFeatures(config.eval.inception_weights) if config.eval.inception_weights else None
        callbacks.append(EvaluationCallback(config.data.root, config.eval.every_n_epochs, log_dir,
                                            max_images=config.eval.max_images, features=features))
    if samples:
        callbacks.append(SampleGrid(*samples, out_dir=os.path.join(run_dir, "samples"), log_dir=log_dir,
                                    progress=progress, every_n_steps=config.monitor.images_every_n_steps))
    callbacks += extra_callbacks

    final_losses = {}
    position.seek(epoch, batch)
    # fit counts the batches of an epoch from its first pass; a resumed epoch that starts
    # part-way gets its own fit call so the full epochs after it are counted right.
    phases = []
    if batch and epoch < total_epochs:
        phases.append((steps - batch, epoch, epoch + 1))
    if epoch + bool(batch) < total_epochs:
        phases.append((steps, epoch + bool(batch), total_epochs))
    if not phases:
        print(f"{run_dir} has already finished its {total_epochs} epochs.")
    for batches, first_epoch, end_epoch in phases:
        history = model.fit(dataset.apply(tf.data.experimental.assert_cardinality(batches)),
                            initial_epoch=first_epoch, epochs=end_epoch, callbacks=callbacks, verbose=t.verbose)
        final_losses = {k: float(v[-1]) for k, v in history.history.items()} or final_losses
    save_model_atomically(model, os.path.join(run_dir, "model.keras"))

    result = {"run_dir": run_dir, "precision": policy, "final_losses": final_losses}
    if config.data.root and os.path.isdir(os.path.join(config.data.root, "testB_paired")):
        result["paired_test"] = paired_translation_error(
            model.gen_a2b, os.path.join(config.data.root, "testA"),
            os.path.join(config.data.root, "testB_paired"),
        )
    with open(os.path.join(run_dir, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result
