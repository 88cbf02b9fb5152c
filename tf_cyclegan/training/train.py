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
import dataclasses
import logging
import os
import sys

import keras
import numpy as np
import tensorflow as tf
import yaml

from tf_cyclegan.data.images import list_images, load_image
from tf_cyclegan.data.unpaired import DataPosition, make_tfds_dataset, make_unpaired_dataset
from tf_cyclegan.evaluation.fid import InceptionFeatures
from tf_cyclegan.evaluation.paired import paired_translation_error
from tf_cyclegan.files import remove, remove_stale_temporaries, replacing, save_model_atomically, write_json
from tf_cyclegan.models.cyclegan import build_cyclegan, default_optimizer
from tf_cyclegan.speed import apply_cpu_speedups
from tf_cyclegan.training.callbacks.backup import BackupCallback, BackupError, BackupManager, RunProgress
from tf_cyclegan.training.callbacks.checkpoints import KerasCheckpoints
from tf_cyclegan.training.callbacks.evaluation import EvaluationCallback
from tf_cyclegan.training.callbacks.monitor import StopOnNonFinite, TrainingMonitor, flatten_config
from tf_cyclegan.training.callbacks.samples import SampleGrid
from tf_cyclegan.training.config import Config, ConfigError, dump_config, load_config
from tf_cyclegan.training.distribute import make_strategy, worker_layout
from tf_cyclegan.training.precision import set_precision
from tf_cyclegan.training.schedule import LinearDecay

logger = logging.getLogger(__name__)


def _train_folders(data):
    if data.root:
        return os.path.join(data.root, "trainA"), os.path.join(data.root, "trainB")
    if data.train_a:
        return data.train_a, data.train_b
    return None


def build_dataset(data, seed=None, max_steps=None, position=None, batch_size=None, num_shards=1, shard_index=0,
                  replica_batch_size=None):
    """The training `tf.data.Dataset` of a `DataConfig` (folders or TFDS); one pass per epoch.

    `batch_size` (default `data.batch_size`) is this input pipeline's batch; with
    `num_shards` pipelines (machines), each yields its own slice of every global batch.
    """
    options = dict(load_size=data.load_size, crop_size=data.crop_size, batch_size=batch_size or data.batch_size,
                   flip=data.flip, cache=data.cache, seed=seed, max_steps=max_steps, position=position,
                   num_shards=num_shards, shard_index=shard_index, replica_batch_size=replica_batch_size)
    folders = _train_folders(data)
    if folders:
        return make_unpaired_dataset(*folders, **options)
    if data.tfds:
        return make_tfds_dataset(data.tfds, data_dir=data.tfds_data_dir, **options)
    raise ConfigError("No training data: set data.root, data.train_a and data.train_b, or data.tfds")


def _sample_images(data, count):
    """Up to `count` test images per domain for the sample grid, or None without test folders."""
    if not data.root or count == 0:
        return None
    folders = [os.path.join(data.root, split) for split in ("testA", "testB")]
    if not all(os.path.isdir(folder) for folder in folders):
        return None
    return [[load_image(path) for path in list_images(folder)[:count]] for folder in folders]


def _check_writable(run_dir):
    """Raises `ConfigError` unless `run_dir` exists as a writable folder or can be made; creates nothing."""
    existing = os.path.abspath(run_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"Run directory {run_dir!r} cannot be created: {existing!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"Run directory {run_dir!r} is not writable: no write permission on {existing!r} "
                          "(or a read-only file system)")


# Settings that may differ when a run is resumed; anything else must match the saved config.
_RESUMABLE = ("train.verbose", "train.cpu_allocator", "train.init_from", "train.epochs", "train.epochs_decay",
              "checkpoint.", "monitor.", "eval.", "distribute.strategy", "distribute.tpu", "distribute.timeout_s",
              "train.cpu_speedups")
_RUN_FILES = ("backup", "checkpoints", "logs", "samples", "log.csv", "model.keras", "results.json", "config.yaml")


def _run_records(run_dir):
    """The files and folders in `run_dir` that a run of ours writes."""
    return [name for name in _RUN_FILES if os.path.lexists(os.path.join(run_dir, name))]


def _saved_config(run_dir):
    """The config of the run in `run_dir` (None if it has no config.yaml); `ConfigError` naming
    the file if it is not a config this package wrote."""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(path):
        return None
    try:
        config = load_config(path)
        with open(path) as f:
            raw = yaml.safe_load(f)
    except ConfigError as error:
        raise ConfigError(f"{path} is not the config of a tf_cyclegan run ({error}). Use another --run-dir; "
                          "this one holds files that are not ours.") from None
    if "generator_alignment" not in (raw.get("model") or {}):
        # Written by version 0.1.0, whose generators were aligned by Keras' "same" padding.
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, generator_alignment="keras_same"))
    return config


def _trained_outputs(run_dir):
    """What in `run_dir` shows that training got somewhere: .keras checkpoints, model.keras, epochs in log.csv."""
    found = []
    checkpoints = os.path.join(run_dir, "checkpoints")
    if os.path.isdir(checkpoints) and any(name.endswith(".keras") for name in os.listdir(checkpoints)):
        found.append("checkpoints/")
    if os.path.exists(os.path.join(run_dir, "model.keras")):
        found.append("model.keras")
    log = os.path.join(run_dir, "log.csv")
    if os.path.isfile(log) and os.path.getsize(log) > 0:
        with open(log) as f:
            if sum(1 for _ in f) > 1:
                found.append("log.csv")
    return found


def _ours(run_dir):
    """Whether `run_dir` holds a run of ours: a config.yaml that this package wrote, which is
    the whole resolved config (every section), not a file of overrides."""
    path = os.path.join(run_dir, "config.yaml")
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
        load_config(path)
    except (OSError, yaml.YAMLError, ConfigError):
        return False
    return isinstance(raw, dict) and set(raw) == set(Config().to_dict())


def _clear_run(run_dir):
    """Deletes an earlier run's files (only those a run writes) for a restart, after checking
    that `run_dir` holds a run of ours: a config.yaml this package wrote."""
    records = _run_records(run_dir)
    if records and not _ours(run_dir):
        raise ConfigError(f"--restart deletes an earlier run's files, but {run_dir} does not hold a run of ours "
                          f"(no config.yaml written by tf_cyclegan beside {', '.join(records)}). Nothing was deleted; "
                          "use another --run-dir.")
    for name in records:
        remove(os.path.join(run_dir, name))  # a symbolic link (a folder on another disk) is unlinked


def _resuming(config, run_dir, restart):
    """Whether `run_dir` holds a run with this config to resume."""
    if restart:
        return False
    if os.path.exists(os.path.join(run_dir, "config.yaml")) and not _ours(run_dir):
        raise ConfigError(f"{os.path.join(run_dir, 'config.yaml')} is not a config that tf_cyclegan wrote for a run "
                          "(a run's holds every section, resolved). Use another --run-dir; nothing there was changed.")
    saved_config = _saved_config(run_dir)
    if saved_config is None:
        others = _run_records(run_dir)
        if others:
            raise ConfigError(f"{run_dir} holds {', '.join(others)} but no config.yaml: not a run this package can "
                              "resume. Use another --run-dir (nothing there was changed).")
        return False
    saved = flatten_config(saved_config.to_dict())
    wanted = flatten_config(config.to_dict())
    changed = [f"{key}: {saved.get(key)!r} in the run, {wanted.get(key)!r} now" for key in sorted(wanted)
               if saved.get(key) != wanted.get(key) and not key.startswith(_RESUMABLE)]
    if changed:
        hint = ""
        if saved.get("model.generator_alignment") != wanted.get("model.generator_alignment"):
            hint = (f" To resume it with the generators it was trained with, add --set model.generator_alignment="
                    f"{saved.get('model.generator_alignment')}.")
        raise ConfigError(
            f"{run_dir} holds a run with a different config ({'; '.join(changed)}). "
            "Use the same config to resume it, --restart to start it over, or another --run-dir." + hint
        )
    return True


def train_and_evaluate(config, run_dir, restart=False, callbacks=()):
    """Trains a CycleGAN as `config` says, writing everything into `run_dir`.

    If `run_dir` already holds a run with the same config, training resumes from its
    newest loadable backup (weights, optimizers, pools, data position); `restart=True`
    deletes the earlier run's files and starts over.

    What it changes in the process, because the config asks for it: `train.seed` seeds Python's,
    NumPy's and TensorFlow's global random generators, and `train.deterministic` turns on
    TensorFlow's op determinism, both process-wide and left so. The dtype policy it trains under
    (`train.precision`) is set for the run and the policy it found is put back afterwards.
    `train.cpu_allocator` is not applied here: TensorFlow reads that choice once, before its
    first op, so `tf-cyclegan train` makes it first thing, and a script calls
    `tf_cyclegan.set_cpu_allocator` itself before any TensorFlow work.

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
    # The strategy comes first: a multi-worker strategy must exist before other TensorFlow work.
    strategy = make_strategy(config.distribute.strategy, tpu=config.distribute.tpu,
                             timeout_s=config.distribute.timeout_s)
    num_workers, worker_index, is_chief = worker_layout(strategy)
    if t.seed is not None:
        keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    if is_chief:
        _check_writable(run_dir)
    resume = _resuming(config, run_dir, restart)
    backup_dir = os.path.join(run_dir, "backup")
    if resume and not BackupManager(backup_dir).backups() and _trained_outputs(run_dir):
        raise BackupError(
            f"{run_dir} holds a run ({', '.join(_trained_outputs(run_dir))}) but no backup to resume it from "
            f"({backup_dir} is missing or empty). Nothing was changed; use --restart to start it over "
            "(deletes the run's files), or another --run-dir.")
    # Everything that can fail on bad input happens before any network is built.
    if t.init_from and not os.path.isfile(t.init_from):
        raise ConfigError(f"train.init_from {t.init_from!r} is not a file (a CycleGAN .keras)")
    position = DataPosition()
    local_replicas = strategy.num_replicas_in_sync // num_workers
    dataset = build_dataset(config.data, seed=t.seed, max_steps=t.steps_per_epoch, position=position,
                            batch_size=config.data.batch_size * local_replicas, num_shards=num_workers,
                            shard_index=worker_index, replica_batch_size=config.data.batch_size)
    samples = _sample_images(config.data, config.data.num_samples) if is_chief else None
    if is_chief:  # the chief alone writes the run directory
        if restart:
            _clear_run(run_dir)
        os.makedirs(run_dir, exist_ok=True)
        for folder in (run_dir, os.path.join(run_dir, "checkpoints")):  # what killed writers left
            remove_stale_temporaries(folder)
        dump_config(config, os.path.join(run_dir, "config.yaml"))
    if strategy.num_replicas_in_sync > 1:
        logger.info("Training on %d replicas (%d machine(s)); global batch %d", strategy.num_replicas_in_sync,
                    num_workers, position.global_batch_size)

    users_policy = keras.mixed_precision.global_policy()
    policy = set_precision(t.precision)
    logger.info("Precision policy: %s", policy)
    try:
        return _train(config, run_dir, dataset, position, samples, policy, resume, list(callbacks),
                      strategy, local_replicas, is_chief)
    finally:
        keras.mixed_precision.set_global_policy(users_policy)


def fit_verbosity(verbose, stream=None):
    """`fit`'s `verbose` for `train.verbose`: "auto" is the live progress bar (1) when the output
    is a terminal, else one line per epoch (2), not thousands of carriage-return frames in a log."""
    if verbose != "auto":
        return verbose
    stream = sys.stdout if stream is None else stream
    return 1 if hasattr(stream, "isatty") and stream.isatty() else 2


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
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)


def _init_from(model, path, alignment, upsampling):
    """Starts `model` from the weights of the four networks of the CycleGAN saved in `path`
    (`train.init_from`); the optimizers start fresh."""
    from tf_cyclegan.inference.loading import load_keras_file
    from tf_cyclegan.models.resnet_generator import generator_alignment, generator_upsampling

    source = load_keras_file(path)
    if not all(hasattr(source, name) for name in ("gen_a2b", "gen_b2a", "disc_a", "disc_b")):
        raise ConfigError(f"train.init_from {path!r} holds a {type(source).__name__}, not a CycleGAN")
    if generator_upsampling(source.gen_a2b) != upsampling:  # the shape check below could only say "differ"
        raise ConfigError(f"train.init_from {path!r} has generators with upsampling "
                          f"{generator_upsampling(source.gen_a2b)!r}, the config builds {upsampling!r}: add --set "
                          f"model.upsampling={generator_upsampling(source.gen_a2b)}")
    if generator_alignment(source.gen_a2b) != alignment:
        raise ConfigError(f"train.init_from {path!r} has generators aligned {generator_alignment(source.gen_a2b)!r}, "
                          f"the config builds {alignment!r}: add --set model.generator_alignment="
                          f"{generator_alignment(source.gen_a2b)}")
    for name in ("gen_a2b", "gen_b2a", "disc_a", "disc_b"):
        ours, theirs = getattr(model, name), getattr(source, name)
        shapes = [tuple(w.shape) for w in ours.weights], [tuple(w.shape) for w in theirs.weights]
        if shapes[0] != shapes[1]:
            raise ConfigError(f"train.init_from {path!r}: its {name} does not have the weights of the config's "
                              "networks (model.filters, model.num_residual_blocks, model.disc_filters, "
                              "model.disc_layers, model.norm_affine, model.use_bias, model.upsampling)")
        ours.set_weights(theirs.get_weights())
    logger.info("Started the four networks from %s; the optimizers start fresh (no Adam moments, step 0)", path)


def _resume_position(record, position, run_dir):
    """(epoch, batch) to resume at; the batch is converted if the global batch size changed
    (a run moved between topologies: data.batch_size is per replica)."""
    epoch, batch = record["epoch"], record["batch"]
    if record["steps_per_epoch"] != position.steps_per_epoch:
        old_batch = record.get("global_batch_size")
        if not old_batch or record.get("pairs_per_epoch") != position.pairs_per_epoch:
            raise ConfigError(
                f"The backup in {run_dir} was made with {record['steps_per_epoch']} batches per epoch, but the "
                f"data now gives {position.steps_per_epoch}: the training data changed. Use --restart to start over."
            )
        batch = batch * old_batch // position.global_batch_size
        logger.warning("The global batch is %d now, %d when the backup was made: resuming at batch %d of the "
                       "epoch (the same pairs, up to one batch)", position.global_batch_size, old_batch, batch)
    if batch >= position.steps_per_epoch:  # stopped after an epoch's last batch, before its end
        epoch, batch = epoch + 1, 0
    return epoch, batch


def _train(config, run_dir, dataset, position, samples, policy, resume, extra_callbacks, strategy, local_replicas,
           is_chief):
    t, c = config.train, config.checkpoint
    replicas = strategy.num_replicas_in_sync
    learning_rate = t.learning_rate * (replicas if config.distribute.scale_learning_rate else 1)
    manager = BackupManager(os.path.join(run_dir, "backup"), keep=c.keep_backups)
    with strategy.scope():
        model = build_cyclegan(**dataclasses.asdict(config.model), pool_seed=t.seed)
        model.compile(
            gen_optimizer=default_optimizer(learning_rate, beta_1=t.beta_1),
            disc_optimizer=default_optimizer(learning_rate, beta_1=t.beta_1),
            jit_compile=t.jit_compile,
        )
        apply_cpu_speedups(model, t.cpu_speedups)
        model.build(tuple(dataset.element_spec[0].shape))  # the pools, so a backup can load into them
        record = manager.restore(model) if resume else None
        if t.init_from and not record:
            _init_from(model, t.init_from, config.model.generator_alignment, config.model.upsampling)
    steps = position.steps_per_epoch
    total_epochs = t.epochs + t.epochs_decay
    csv_path = os.path.join(run_dir, "log.csv")
    epoch, batch = 0, 0
    if record:
        epoch, batch = _resume_position(record, position, run_dir)
        if is_chief:
            _keep_csv_rows_before(csv_path, epoch)
        logger.info("Resuming %s at epoch %d, batch %d (step %d)", run_dir, epoch + 1, batch + 1, record["global_step"])

    log_dir = os.path.join(run_dir, "logs")
    progress = RunProgress(steps, epoch, batch, info={"pairs_per_epoch": position.pairs_per_epoch,
                                                      "global_batch_size": position.global_batch_size},
                           trackers=record.get("trackers") if record and record["batch"] == batch else None)
    # Order matters: progress first; LinearDecay adds the learning rate to the logs the later
    # ones write; the NaN check runs before the backup so a diverged step is never backed up.
    callbacks = [
        progress,
        LinearDecay(learning_rate, t.epochs, t.epochs_decay),
        StopOnNonFinite(progress),
    ]
    if is_chief:
        callbacks += _chief_callbacks(config, run_dir, manager, progress, samples, log_dir, csv_path)
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
        logger.info("%s has already finished its %d epochs.", run_dir, total_epochs)
    try:  # around every phase and what comes between them, so a Ctrl-C anywhere in training is reported
        for batches, first_epoch, end_epoch in phases:
            epoch_input = dataset.apply(tf.data.experimental.assert_cardinality(batches * local_replicas))
            if replicas > 1:
                # Each pipeline yields per-replica batches of its own pairs: no rebatching, no resharding.
                epoch_input = strategy.distribute_datasets_from_function(lambda _, ds=epoch_input: ds)
            history = model.fit(epoch_input, initial_epoch=first_epoch, epochs=end_epoch, callbacks=callbacks,
                                verbose=fit_verbosity(t.verbose) if is_chief else 0)
            final_losses = {k: float(np.mean(v[-1])) for k, v in history.history.items()} or final_losses
    except KeyboardInterrupt:
        backups = manager.backups()
        kept = f"the newest backup, {os.path.basename(backups[0])}, is kept" if backups else "no backup yet"
        raise KeyboardInterrupt(
            f"interrupted at step {progress.global_step} (epoch {progress.epoch + 1}, batch {progress.batch}); "
            f"{kept}: run the same command to resume.") from None
    result = {"run_dir": run_dir, "precision": policy, "final_losses": final_losses, "model": model}
    if not is_chief:
        return result
    save_model_atomically(model, os.path.join(run_dir, "model.keras"))

    if config.data.root and os.path.isdir(os.path.join(config.data.root, "testB_paired")):
        result["paired_test"] = paired_translation_error(
            model.gen_a2b, os.path.join(config.data.root, "testA"),
            os.path.join(config.data.root, "testB_paired"),
        )
    write_json(os.path.join(run_dir, "results.json"), {k: v for k, v in result.items() if k != "model"})
    return result


def _chief_callbacks(config, run_dir, manager, progress, samples, log_dir, csv_path):
    """The callbacks that write the run directory: backups, logs, checkpoints, samples."""
    c = config.checkpoint
    callbacks = [
        BackupCallback(manager, progress, every_n_steps=c.backup_every_n_steps),
        keras.callbacks.TensorBoard(log_dir, write_graph=False),
        keras.callbacks.CSVLogger(csv_path, append=True),
        KerasCheckpoints(os.path.join(run_dir, "checkpoints"), progress, every_n_epochs=c.keras_every_n_epochs,
                         every_n_steps=c.keras_every_n_steps, keep=c.keep_keras),
        TrainingMonitor(log_dir, progress, batch_size=progress.info["global_batch_size"],
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
    return callbacks
