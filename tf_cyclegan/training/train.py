"""`train_and_evaluate(config, run_dir)`: data, models, `fit`, and what a run leaves behind.

A run directory holds `config.yaml` (the resolved config), `backup/` (the full training
state, for resuming), `checkpoints/` (`.keras` models), `logs/` (TensorBoard),
`log.csv`, `samples/epoch_NNN.png`, `model.keras` (the final model) and, where the data
has a paired test set, `results.json` with the translation error next to the do-nothing
baseline.

Running again on a directory that holds a run resumes it from its newest backup, at the
batch where it stopped; `restart=True` starts it over, deleting exactly the files named by
`RUN_FILES` (each built from its writer's own name pattern). A directory becomes a run at
its first step, when `config.yaml` is written; it is locked while a process trains in it.
"""

import contextlib
import csv
import dataclasses
import json
import logging
import os
import re
import sys

import keras
import numpy as np
import tensorflow as tf
import yaml

from tf_cyclegan.data.images import list_images, load_image
from tf_cyclegan.data.unpaired import DataPosition, make_tfds_dataset, make_unpaired_dataset
from tf_cyclegan.evaluation.fid import InceptionFeatures
from tf_cyclegan.evaluation.paired import paired_translation_error
from tf_cyclegan.files import (
    find_matching,
    lock_directory,
    remove_matching,
    remove_stale_temporaries,
    replacing,
    save_model_atomically,
    temporaries_of,
    write_json,
)
from tf_cyclegan.models.cyclegan import build_cyclegan, default_optimizer
from tf_cyclegan.training.callbacks.backup import BackupCallback, BackupError, BackupManager
from tf_cyclegan.training.callbacks.checkpoints import KerasCheckpoints
from tf_cyclegan.training.callbacks.evaluation import EvaluationCallback
from tf_cyclegan.training.callbacks.monitor import EVENT_FILE_PATTERN, StopOnNonFinite, TrainingMonitor
from tf_cyclegan.training.callbacks.progress import RunProgress
from tf_cyclegan.training.callbacks.samples import SampleGrid
from tf_cyclegan.training.config import Config, ConfigError, dump_config, flatten_config, load_config
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
              "checkpoint.", "monitor.", "eval.", "distribute.strategy", "distribute.tpu", "distribute.timeout_s")
# Keys naming a folder: "./data/" and "data" are the same folder, not a change of config.
_PATH_KEYS = ("data.root", "data.train_a", "data.train_b", "data.tfds_data_dir")

CONFIG, LOG_CSV, MODEL, RESULTS = "config.yaml", "log.csv", "model.keras", "results.json"
BACKUP, CHECKPOINTS, SAMPLES, LOGS = "backup", "checkpoints", "samples", "logs"
_TOP_NAMES = (BACKUP, CHECKPOINTS, LOGS, SAMPLES, LOG_CSV, MODEL, RESULTS, CONFIG)


def _either(*patterns):
    return "(?:" + "|".join(patterns) + ")"


# What a run writes, as regexes of paths relative to the run directory, each built from the
# pattern of the code that writes it, so that `--restart` deletes exactly these and nothing of
# the user's beside them. "train" and "validation" are keras.callbacks.TensorBoard's folders.
_LOG_FOLDERS = _either("train", "validation", TrainingMonitor.LOG_SUBDIR, SampleGrid.LOG_SUBDIR,
                       EvaluationCallback.LOG_SUBDIR)
_TOP_FILES = _either(*(re.escape(name) for name in (CONFIG, LOG_CSV, MODEL, RESULTS)))
RUN_FILES = (
    _TOP_FILES,
    temporaries_of(_TOP_FILES),
    f"{BACKUP}/{BackupManager.FILE_PATTERN}",
    f"{CHECKPOINTS}/{_either(KerasCheckpoints.FILE_PATTERN, temporaries_of(KerasCheckpoints.FILE_PATTERN))}",
    f"{SAMPLES}/{_either(SampleGrid.FILE_PATTERN, temporaries_of(SampleGrid.FILE_PATTERN))}",
    f"{LOGS}/{_LOG_FOLDERS}/{EVENT_FILE_PATTERN}",
)
RUN_FOLDERS = (BACKUP, f"{BACKUP}/{BackupManager.FOLDER_PATTERN}", CHECKPOINTS, SAMPLES, LOGS, f"{LOGS}/{_LOG_FOLDERS}")


def _csv_rows(path):
    """The data rows of a CSV log (0 if it is empty or missing)."""
    try:
        with open(path, newline="") as f:
            return max(0, sum(1 for _ in csv.reader(f)) - 1)
    except OSError:
        return 0


def _binding_records(run_dir):
    """The run names in `run_dir` (backup/, log.csv, ...) that hold more than a start that never
    ran a step leaves behind after a kill (TensorBoard event files, a log.csv without rows,
    empty folders): those bind the next command, these do not."""
    leftovers = set(find_matching(run_dir, (f"{LOGS}/{_LOG_FOLDERS}/{EVENT_FILE_PATTERN}",), RUN_FOLDERS))
    found = []
    for name in _TOP_NAMES:
        path = os.path.join(run_dir, name)
        if not os.path.lexists(path) or (name == LOG_CSV and os.path.isfile(path) and not _csv_rows(path)):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            inside = [os.path.relpath(os.path.join(folder, file), run_dir).replace(os.sep, "/")
                      for folder, _, names in os.walk(path) for file in names]
            if set(inside) <= leftovers:
                continue
        found.append(name)
    return found


def _saved_config(run_dir):
    """The config of the run in `run_dir` (None if it has no config.yaml); `ConfigError` naming
    the file if it is not a config this package wrote."""
    path = os.path.join(run_dir, CONFIG)
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
    checkpoints = os.path.join(run_dir, CHECKPOINTS)
    if os.path.isdir(checkpoints) and any(name.endswith(".keras") for name in os.listdir(checkpoints)):
        found.append("checkpoints/")
    if os.path.exists(os.path.join(run_dir, MODEL)):
        found.append(MODEL)
    if _csv_rows(os.path.join(run_dir, LOG_CSV)):
        found.append(LOG_CSV)
    return found


def _ours(run_dir):
    """Whether `run_dir` holds a run of ours: a config.yaml that this package wrote, which is
    the whole resolved config (every section), not a file of overrides."""
    path = os.path.join(run_dir, CONFIG)
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
        load_config(path)
    except (OSError, yaml.YAMLError, ConfigError):
        return False
    return isinstance(raw, dict) and set(raw) == set(Config().to_dict())


def _check_restartable(run_dir):
    """Raises `ConfigError` (deleting nothing) unless `run_dir` holds a run of ours to start over
    (a config.yaml this package wrote), nothing, or only what a start that never ran a step left."""
    records = _binding_records(run_dir)
    if records and not _ours(run_dir):
        raise ConfigError(f"--restart deletes an earlier run's files, but {run_dir} does not hold a run of ours "
                          f"(no config.yaml written by tf_cyclegan beside {', '.join(records)}). Nothing was deleted; "
                          "use another --run-dir.")


def _same_setting(key, saved, wanted):
    if key in _PATH_KEYS and isinstance(saved, str) and isinstance(wanted, str):
        return os.path.realpath(os.path.expanduser(saved)) == os.path.realpath(os.path.expanduser(wanted))
    return saved == wanted


def _resuming(config, run_dir, restart):
    """Whether `run_dir` holds a run with this config to resume."""
    if restart:
        _check_restartable(run_dir)
        return False
    if os.path.exists(os.path.join(run_dir, CONFIG)) and not _ours(run_dir):
        raise ConfigError(f"{os.path.join(run_dir, CONFIG)} is not a config that tf_cyclegan wrote for a run "
                          "(a run's holds every section, resolved). Use another --run-dir; nothing there was changed.")
    saved_config = _saved_config(run_dir)
    if saved_config is None:
        others = _binding_records(run_dir)
        if others:
            raise ConfigError(f"{run_dir} holds {', '.join(others)} but no config.yaml: not a run this package can "
                              "resume. Use another --run-dir (nothing there was changed).")
        return False
    saved = flatten_config(saved_config.to_dict())
    wanted = flatten_config(config.to_dict())
    changed = [f"{key}: {saved.get(key)!r} in the run, {wanted.get(key)!r} now" for key in sorted(wanted)
               if not _same_setting(key, saved.get(key), wanted.get(key)) and not key.startswith(_RESUMABLE)]
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


class _RecordConfig(keras.callbacks.Callback):
    """Writes the run's config.yaml, and makes its backup folder, at the end of the first step
    this process trains.

    A directory becomes a run only once a step ran: a start that fails before (an init file of
    the wrong shape, unreachable Inception weights, a first step that runs out of memory) leaves
    no config that would hold the next, corrected, command to its settings. A resumed run's
    config.yaml is rewritten only if this one differs (more epochs, other checkpoint settings).
    The empty backup folder tells a run killed before its first backup (resumed from the
    start) from one whose backups were deleted (refused).
    """

    def __init__(self, config, run_dir):
        super().__init__()
        self.text = yaml.safe_dump(config.to_dict(), sort_keys=False)
        self.config = config
        self.path = os.path.join(run_dir, CONFIG)
        self.backup_dir = os.path.join(run_dir, BACKUP)
        self.written = False

    def on_train_batch_end(self, batch, logs=None):
        if self.written:
            return
        try:
            with open(self.path) as f:
                same = f.read() == self.text
        except OSError:
            same = False
        if not same:
            dump_config(self.config, self.path)
        os.makedirs(self.backup_dir, exist_ok=True)
        self.written = True


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
    _check_writable(run_dir)
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
    resume = _resuming(config, run_dir, restart)
    backup_dir = os.path.join(run_dir, BACKUP)
    if resume and not os.path.isdir(backup_dir) and _trained_outputs(run_dir):
        raise BackupError(
            f"{run_dir} holds a run ({', '.join(_trained_outputs(run_dir))}) but no backup to resume it from "
            f"({backup_dir} is missing). Nothing was changed; use --restart to start it over "
            "(deletes the run's files), or another --run-dir.")
    # Everything that can fail on bad input happens before any network is built.
    if t.init_from and not os.path.isfile(t.init_from):
        raise ConfigError(f"train.init_from {t.init_from!r} is not a file (a CycleGAN .keras)")
    before = set(find_matching(run_dir, RUN_FILES, RUN_FOLDERS)) if is_chief else set()
    record_config = _RecordConfig(config, run_dir)
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
        policy = set_precision(t.precision)
        logger.info("Precision policy: %s", policy)
        try:
            return _train(config, run_dir, dataset, position, samples, policy, resume, extra_callbacks,
                          strategy, local_replicas, is_chief, record_config, before if restart else None)
        finally:
            keras.mixed_precision.set_global_policy(users_policy)
    except BaseException:
        if is_chief and not resume and not record_config.written:
            made = set(find_matching(run_dir, RUN_FILES, RUN_FOLDERS)) - before
            remove_matching(run_dir, RUN_FILES, RUN_FOLDERS, only=made)
        raise


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
    if len(kept) == len(rows):
        return  # nothing to drop: the log is left as it is
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
           is_chief, record_config, restart_files):
    """Builds the model, restores or initialises it, and fits it; `restart_files`: the earlier
    run's files to delete (for `--restart`) once everything that can fail before training has."""
    t, c = config.train, config.checkpoint
    replicas = strategy.num_replicas_in_sync
    learning_rate = t.learning_rate * (replicas if config.distribute.scale_learning_rate else 1)
    manager = BackupManager(os.path.join(run_dir, BACKUP), keep=c.keep_backups)
    # Loaded first: unreachable or damaged Inception weights are bad input, reported before any network.
    features = (InceptionFeatures(config.eval.inception_weights)
                if is_chief and config.eval.every_n_epochs and config.eval.inception_weights else None)
    with strategy.scope():
        model = build_cyclegan(**dataclasses.asdict(config.model), pool_seed=t.seed)
        model.compile(
            gen_optimizer=default_optimizer(learning_rate, beta_1=t.beta_1),
            disc_optimizer=default_optimizer(learning_rate, beta_1=t.beta_1),
            jit_compile=t.jit_compile,
        )
        model.build(tuple(dataset.element_spec[0].shape))  # the pools, so a backup can load into them
        record = manager.restore(model) if resume else None
        if t.init_from and not record:
            _init_from(model, t.init_from, config.model.generator_alignment, config.model.upsampling)
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
        return _finished(config, run_dir, model, epoch, total_epochs, policy, is_chief)
    if record:
        logger.info("Resuming %s at epoch %d, batch %d (step %d)", run_dir, epoch + 1, batch + 1, record["global_step"])

    if is_chief:
        if restart_files:
            remove_matching(run_dir, RUN_FILES, RUN_FOLDERS, only=restart_files)
        for folder in (run_dir, os.path.join(run_dir, CHECKPOINTS), os.path.join(run_dir, SAMPLES)):
            remove_stale_temporaries(folder)  # what killed writers left
        if resume:  # from its backup, or from the start if it was killed before its first one
            _keep_csv_rows_before(csv_path, epoch)
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
    result = {"run_dir": run_dir, "precision": policy, "final_losses": final_losses, "model": model}
    if is_chief:
        _write_results(config, run_dir, result)
    return result


def _write_results(config, run_dir, result, only_missing=False):
    """Writes model.keras and results.json (`only_missing`: those that are not there) from
    `result`, adding the paired test error where the data has one."""
    model = result["model"]
    if not (only_missing and os.path.exists(os.path.join(run_dir, MODEL))):
        save_model_atomically(model, os.path.join(run_dir, MODEL))
    if only_missing and os.path.exists(os.path.join(run_dir, RESULTS)):
        return
    if config.data.root and os.path.isdir(os.path.join(config.data.root, "testB_paired")):
        result["paired_test"] = paired_translation_error(
            model.gen_a2b, os.path.join(config.data.root, "testA"),
            os.path.join(config.data.root, "testB_paired"),
        )
    write_json(os.path.join(run_dir, RESULTS), {k: v for k, v in result.items() if k != "model"})


def _last_csv_row(path):
    """The last epoch's losses in a CSV log, as floats (without the epoch), or {}."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    last = rows[-1] if rows else {}
    try:
        return {key: float(value) for key, value in last.items() if key != "epoch" and key}
    except (TypeError, ValueError):
        return {}


def _finished(config, run_dir, model, trained_epochs, total_epochs, policy, is_chief):
    """The result of a run that has trained all the epochs `config` asks for, read from its
    records, which are kept as they are: its config.yaml still says how many epochs it trained.
    Only records a kill after the last backup left unwritten (model.keras, results.json) are written."""
    logger.info("%s has already trained %d epochs (train.epochs + train.epochs_decay = %d now): its records are "
                "read, not rewritten. Ask for more epochs to train it further.", run_dir, trained_epochs, total_epochs)
    result = {"run_dir": run_dir, "precision": policy, "final_losses": {}, "model": model}
    try:
        with open(os.path.join(run_dir, RESULTS)) as f:
            saved = json.load(f)
        result.update({k: v for k, v in saved.items() if k not in ("model", "run_dir")})
    except (OSError, ValueError):
        result["final_losses"] = _last_csv_row(os.path.join(run_dir, LOG_CSV))
        if is_chief:
            _write_results(config, run_dir, result, only_missing=True)
    return result


def _chief_callbacks(config, run_dir, manager, progress, samples, log_dir, csv_path, features=None):
    """The callbacks that write the run directory: logs, checkpoints, samples, then backups.

    The backup comes last: the epoch-end backup marks an epoch done, so the epoch's log row,
    checkpoint and sample grid are written before it (a kill between them trains the epoch's
    end again, and writes them then).
    """
    c = config.checkpoint
    callbacks = [
        keras.callbacks.TensorBoard(log_dir, write_graph=False),
        keras.callbacks.CSVLogger(csv_path, append=True),
        KerasCheckpoints(os.path.join(run_dir, CHECKPOINTS), progress, every_n_epochs=c.keras_every_n_epochs,
                         every_n_steps=c.keras_every_n_steps, keep=c.keep_keras),
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
    callbacks.append(BackupCallback(manager, progress, every_n_steps=c.backup_every_n_steps))
    return callbacks
