"""`train_and_evaluate(config, run_dir)`: the data, the model, the callbacks, and `fit`.

It wires a run together: the strategy and precision, the input pipeline, the CycleGAN
(built, restored from its backup or started from `train.init_from`), the callbacks in the
order their records need, and one `fit` per phase (a resumed epoch that starts part-way is
its own phase). What the run directory holds, whether it is a run to resume, what a
restart deletes and what a finished run returns are `run_directory`'s; the directory is
locked while a process trains in it.
"""

import contextlib
import dataclasses
import logging
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from tf_cyclegan.choices import NETWORKS
from tf_cyclegan.data.images import list_images, load_image
from tf_cyclegan.data.unpaired import DataPosition, make_tfds_dataset, make_unpaired_dataset
from tf_cyclegan.evaluation.fid import InceptionFeatures
from tf_cyclegan.evaluation.paired import check_paired_test_set
from tf_cyclegan.files import lock_directory
from tf_cyclegan.models.cut import default_optimizer as cut_optimizer
from tf_cyclegan.models.cyclegan import default_optimizer
from tf_cyclegan.models.kinds import build_model
from tf_cyclegan.precision import set_precision
from tf_cyclegan.speed import apply_cpu_speedups
from tf_cyclegan.training.callbacks.backup import BackupCallback, BackupError, BackupManager
from tf_cyclegan.training.callbacks.checkpoints import KerasCheckpoints
from tf_cyclegan.training.callbacks.evaluation import EvaluationCallback
from tf_cyclegan.training.callbacks.monitor import StopOnNonFinite, TrainingMonitor
from tf_cyclegan.training.callbacks.progress import RunProgress
from tf_cyclegan.training.callbacks.samples import SampleGrid
from tf_cyclegan.training.config import ConfigError, flatten_config, model_arguments
from tf_cyclegan.training.distribute import make_strategy, worker_layout
from tf_cyclegan.training.run_directory import (
    BACKUP,
    CHECKPOINTS,
    LOG_CSV,
    LOGS,
    SAMPLES,
    RecordConfig,
    check_writable,
    finished_run_result,
    keep_csv_rows_before,
    remove_run_files,
    remove_stale_run_temporaries,
    resume_plan,
    run_files,
    trained_outputs,
    write_results,
)
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


def train_and_evaluate(config, run_dir, restart=False, callbacks=()):
    """Trains a CycleGAN as `config` says, writing everything into `run_dir`.

    If `run_dir` already holds a run with the same config, training resumes from its
    newest loadable backup (weights, optimizers, pools, data position); `restart=True`
    deletes the earlier run's files (only those a run writes) and starts over. A run that
    has trained all its epochs is read, not rewritten, unless `config` asks for more epochs.
    While it trains, the run directory is locked (`tf_cyclegan.files.lock_directory`): a
    second process stops at once, naming the owner. A start that fails before its first step
    leaves nothing that binds the next command.

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
    check_paired_test_set(config.data.root)  # now, not after training; Pillow alone, no TensorFlow work
    # The strategy comes first: a multi-worker strategy must exist before other TensorFlow work.
    strategy = make_strategy(config.distribute.strategy, tpu=config.distribute.tpu,
                             timeout_s=config.distribute.timeout_s)
    layout = worker_layout(strategy)
    if t.seed is not None:
        keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    if not layout[2]:  # the chief alone writes the run directory, and holds its lock
        return _start(config, run_dir, restart, list(callbacks), strategy, layout)
    check_writable(run_dir)
    created = not os.path.isdir(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    try:
        with lock_directory(run_dir, "run directory"):
            return _start(config, run_dir, restart, list(callbacks), strategy, layout)
    finally:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(run_dir)  # only if empty: what a start that failed made


def _start(config, run_dir, restart, extra_callbacks, strategy, layout):
    """Checks the run directory and the inputs, then trains; on the chief, a fresh start that
    fails before its first step deletes the files it made (and only those)."""
    t = config.train
    num_workers, worker_index, is_chief = layout
    resume, config = resume_plan(config, run_dir, restart)  # config: with what the run keeps
    backup_dir = os.path.join(run_dir, BACKUP)
    if resume and not os.path.isdir(backup_dir) and trained_outputs(run_dir):
        raise BackupError(
            f"{run_dir} holds a run ({', '.join(trained_outputs(run_dir))}) but no backup to resume it from "
            f"({backup_dir} is missing). Nothing was changed; use --restart to start it over "
            "(deletes the run's files), or another --run-dir.")
    # Everything that can fail on bad input happens before any network is built.
    if t.init_from and not os.path.isfile(t.init_from):
        raise ConfigError(f"train.init_from {t.init_from!r} is not a file (a CycleGAN .keras)")
    before = run_files(run_dir) if is_chief else set()
    record_config = RecordConfig(config, run_dir)
    try:
        position = DataPosition()
        local_replicas = strategy.num_replicas_in_sync // num_workers
        dataset = build_dataset(config.data, seed=t.seed, max_steps=t.steps_per_epoch, position=position,
                                batch_size=config.data.batch_size * local_replicas, num_shards=num_workers,
                                shard_index=worker_index, replica_batch_size=config.data.batch_size)
        samples = _sample_images(config.data, config.data.num_samples) if is_chief else None
        if strategy.num_replicas_in_sync > 1:
            logger.info("Training on %d replicas (%d machine(s)); global batch %d", strategy.num_replicas_in_sync,
                        num_workers, position.global_batch_size)
        users_policy = keras.mixed_precision.global_policy()
        precision = set_precision(t.precision)
        logger.info("Precision: %s (Keras policy %s)", precision, keras.mixed_precision.global_policy().name)
        try:
            return _train(config, run_dir, dataset, position, samples, precision, resume, extra_callbacks,
                          strategy, local_replicas, is_chief, record_config, before if restart else None)
        finally:
            keras.mixed_precision.set_global_policy(users_policy)
    except BaseException:
        if is_chief and not resume and not record_config.written:
            remove_run_files(run_dir, only=run_files(run_dir) - before)
        raise


def fit_verbosity(verbose, stream=None):
    """`fit`'s `verbose` for `train.verbose`: "auto" is the live progress bar (1) when the output
    is a terminal, else one line per epoch (2), not thousands of carriage-return frames in a log."""
    if verbose != "auto":
        return verbose
    stream = sys.stdout if stream is None else stream
    return 1 if hasattr(stream, "isatty") and stream.isatty() else 2


def _build_and_compile(config, learning_rate):
    """The model of `config.model.kind`, compiled with the paper's Adam for each of its
    optimizers (CycleGAN: generators, discriminators; CUT: generator, discriminator, head)."""
    t, kind = config.train, config.model.kind
    if kind == "cyclegan":
        model = build_model(kind, **model_arguments(config.model), pool_seed=t.seed)
        model.compile(gen_optimizer=default_optimizer(learning_rate, beta_1=t.beta_1),
                      disc_optimizer=default_optimizer(learning_rate, beta_1=t.beta_1), jit_compile=t.jit_compile)
    else:
        model = build_model(kind, **model_arguments(config.model), seed=t.seed)
        model.compile(**{f"{role}_optimizer": cut_optimizer(learning_rate, beta_1=t.beta_1)
                         for role in ("gen", "disc", "head")}, jit_compile=t.jit_compile)
    return model


def _init_from(model, path, model_config):
    """Starts `model` from the weights of the networks of the model of the same kind saved in
    `path` (`train.init_from`); the optimizers start fresh."""
    from tf_cyclegan.inference.loading import load_keras_file

    source = load_keras_file(path)
    names = tuple(getattr(model, "network_names", NETWORKS))
    if type(source) is not type(model) or not all(hasattr(source, name) for name in names):
        raise ConfigError(f"train.init_from {path!r} holds a {type(source).__name__}, not a {type(model).__name__} "
                          f"(model.kind {model_config.kind})")
    if model_config.kind == "cyclegan":
        _check_cyclegan_source(source, path, model_config.alignment, model_config.upsampling)
    for name in names:
        ours, theirs = getattr(model, name), getattr(source, name)
        shapes = [tuple(w.shape) for w in ours.weights], [tuple(w.shape) for w in theirs.weights]
        if shapes[0] != shapes[1]:
            raise ConfigError(f"train.init_from {path!r}: its {name} does not have the weights of the config's "
                              "networks (model.filters, model.num_residual_blocks, model.disc_filters, "
                              "model.disc_num_layers, model.norm_affine, model.use_bias, model.upsampling, "
                              "model.head_units)")
        ours.set_weights(theirs.get_weights())
    logger.info("Started the networks (%s) from %s; the optimizers start fresh (no Adam moments, step 0)",
                ", ".join(names), path)


def _check_cyclegan_source(source, path, alignment, upsampling):
    """What the weights' shapes cannot tell apart: the generators' upsampling and alignment."""
    from tf_cyclegan.models.resnet_generator import generator_alignment, generator_upsampling

    if generator_upsampling(source.gen_a2b) != upsampling:
        raise ConfigError(f"train.init_from {path!r} has generators with upsampling "
                          f"{generator_upsampling(source.gen_a2b)!r}, the config builds {upsampling!r}: add --set "
                          f"model.upsampling={generator_upsampling(source.gen_a2b)}")
    if generator_alignment(source.gen_a2b) != alignment:
        raise ConfigError(f"train.init_from {path!r} has generators aligned {generator_alignment(source.gen_a2b)!r}, "
                          f"the config builds {alignment!r}: add --set model.alignment="
                          f"{generator_alignment(source.gen_a2b)}")


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


def _train(config, run_dir, dataset, position, samples, precision, resume, extra_callbacks, strategy, local_replicas,
           is_chief, record_config, restart_files):
    """Builds the model, restores or initialises it, and fits it; `restart_files`: the earlier
    run's files to delete (for `--restart`) once everything that can fail before training has."""
    t = config.train
    replicas = strategy.num_replicas_in_sync
    learning_rate = t.learning_rate * (replicas if config.distribute.scale_learning_rate else 1)
    manager = BackupManager(os.path.join(run_dir, BACKUP), keep=config.backup.keep)
    # Loaded first: unreachable or damaged Inception weights are bad input, reported before any network.
    features = (InceptionFeatures(config.eval.inception_weights)
                if is_chief and config.eval.every_n_epochs and config.eval.inception_weights else None)
    with strategy.scope():
        model = _build_and_compile(config, learning_rate)
        apply_cpu_speedups(model, t.cpu_speedups)
        if not model.built:  # CycleGAN's pools, so that a backup can load into them
            model.build(tuple(dataset.element_spec[0].shape))
        record = manager.restore(model) if resume else None
        if t.init_from and not record:
            _init_from(model, t.init_from, config.model)
    steps = position.steps_per_epoch
    total_epochs = t.epochs + t.epochs_decay
    csv_path = os.path.join(run_dir, LOG_CSV)
    epoch, batch = 0, 0
    if record:
        epoch, batch = _resume_position(record, position, run_dir)
    # fit counts the batches of an epoch from its first pass; a resumed epoch that starts
    # part-way gets its own fit call so the full epochs after it are counted right.
    phases = []
    if batch and epoch < total_epochs:
        phases.append((steps - batch, epoch, epoch + 1))
    if epoch + bool(batch) < total_epochs:
        phases.append((steps, epoch + bool(batch), total_epochs))
    if not phases:
        logger.info("%s has already trained %d epochs (train.epochs + train.epochs_decay = %d now): its records are "
                    "read, not rewritten. Ask for more epochs to train it further.", run_dir, epoch, total_epochs)
        return finished_run_result(config, run_dir, model, precision, is_chief)
    if record:
        logger.info("Resuming %s at epoch %d, batch %d (step %d)", run_dir, epoch + 1, batch + 1, record["global_step"])

    if is_chief:
        if restart_files:
            remove_run_files(run_dir, only=restart_files)
        remove_stale_run_temporaries(run_dir)
        if resume:  # from its backup, or from the start if it was killed before its first one
            keep_csv_rows_before(csv_path, epoch)
    log_dir = os.path.join(run_dir, LOGS)
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
        callbacks += [record_config] + _chief_callbacks(config, run_dir, manager, progress, samples, log_dir,
                                                        csv_path, features)
    callbacks += extra_callbacks

    final_losses = {}
    position.seek(epoch, batch)
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
    result = {"run_dir": run_dir, "precision": precision, "final_losses": final_losses, "model": model}
    if is_chief:
        write_results(config, run_dir, result)
    return result


def _chief_callbacks(config, run_dir, manager, progress, samples, log_dir, csv_path, features=None):
    """The callbacks that write the run directory: logs, checkpoints, samples, then backups.

    The backup comes last: the epoch-end backup marks an epoch done, so the epoch's log row,
    checkpoint and sample grid are written before it (a kill between them trains the epoch's
    end again, and writes them then).
    """
    callbacks = [
        keras.callbacks.TensorBoard(log_dir, write_graph=False),
        keras.callbacks.CSVLogger(csv_path, append=True),
        KerasCheckpoints(os.path.join(run_dir, CHECKPOINTS), progress, **dataclasses.asdict(config.checkpoint)),
        TrainingMonitor(log_dir, progress, batch_size=progress.info["global_batch_size"],
                        every_n_steps=config.monitor.scalars_every_n_steps,
                        hparams=flatten_config(config.to_dict()), run_name=os.path.basename(os.path.abspath(run_dir))),
    ]
    if config.eval.every_n_epochs:
        callbacks.append(EvaluationCallback(config.data.root, config.eval.every_n_epochs, log_dir,
                                            max_images=config.eval.max_images, features=features))
    if samples:
        callbacks.append(SampleGrid(*samples, out_dir=os.path.join(run_dir, SAMPLES), log_dir=log_dir,
                                    progress=progress, every_n_steps=config.monitor.images_every_n_steps))
    callbacks.append(BackupCallback(manager, progress, every_n_steps=config.backup.every_n_steps))
    return callbacks
