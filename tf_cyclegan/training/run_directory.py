"""The run directory: what a run writes into it, when it becomes a run, resuming and restarting it.

A run directory holds `config.yaml` (the resolved config), `backup/` (the full training
state, for resuming), `checkpoints/` (`.keras` models), `logs/` (TensorBoard), `log.csv`,
`samples/epoch_NNN.png`, `model.keras` (the final model) and, where the data has a paired
test set, `results.json` with the translation error next to the do-nothing baseline.

Its lifecycle: a directory becomes a run at its first step, when `RecordConfig` writes
`config.yaml`, so a start that fails before leaves nothing that binds the next command.
Running again on it resumes (`resuming` says whether, refusing a changed config); a restart
deletes exactly the files named by `RUN_FILES` (each built from its writer's own name
pattern), never the user's beside them; a run that has trained all its epochs is read
(`finished_run_result`), not rewritten. These are here, apart from the fit in `train.py`,
so that the rules of what is a run's and what is the user's are in one place.
"""

import csv
import dataclasses
import json
import logging
import os
import re

import keras
import yaml

from tf_cyclegan.evaluation.paired import paired_translation_error
from tf_cyclegan.files import (
    find_matching,
    remove_matching,
    remove_stale_temporaries,
    replacing,
    save_model_atomically,
    temporaries_of,
    write_json,
)
from tf_cyclegan.training.callbacks.backup import BackupManager
from tf_cyclegan.training.callbacks.checkpoints import KerasCheckpoints
from tf_cyclegan.training.callbacks.evaluation import EvaluationCallback
from tf_cyclegan.training.callbacks.monitor import EVENT_FILE_PATTERN, TrainingMonitor
from tf_cyclegan.training.callbacks.samples import SampleGrid
from tf_cyclegan.training.config import (
    Config,
    ConfigError,
    dump_config,
    flatten_config,
    load_config,
    read_config_file,
)

logger = logging.getLogger(__name__)

# The names a run gives its files and folders, at its top.
CONFIG, LOG_CSV, MODEL, RESULTS = "config.yaml", "log.csv", "model.keras", "results.json"
BACKUP, CHECKPOINTS, SAMPLES, LOGS = "backup", "checkpoints", "samples", "logs"
_TOP_NAMES = (BACKUP, CHECKPOINTS, LOGS, SAMPLES, LOG_CSV, MODEL, RESULTS, CONFIG)


def _either(*patterns):
    """A regex matching any one of `patterns`."""
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


def run_files(run_dir):
    """The files of a run (those `RUN_FILES` names) in `run_dir` now, as relative paths: what a
    start records first, so that if it fails it deletes what it made, and only that."""
    return set(find_matching(run_dir, RUN_FILES, RUN_FOLDERS))


def remove_run_files(run_dir, only=None):
    """Deletes the run's files in `run_dir` (restricted to the relative paths `only`), then its
    folders left empty; the user's files, and the folders holding them, stay."""
    return remove_matching(run_dir, RUN_FILES, RUN_FOLDERS, only=only)


def remove_stale_run_temporaries(run_dir):
    """Deletes what writers killed mid-file left in the run's folders (temporaries of processes
    no longer running), before a run trains in it again."""
    for folder in (run_dir, os.path.join(run_dir, CHECKPOINTS), os.path.join(run_dir, SAMPLES)):
        remove_stale_temporaries(folder)


def check_writable(run_dir):
    """Raises `ConfigError` unless `run_dir` exists as a writable folder or can be made; creates nothing.

    Checked first, before the data is read or a network built, so that a run directory that
    can never be written is what is reported, not a later failure it would cause."""
    existing = os.path.abspath(run_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"Run directory {run_dir!r} cannot be created: {existing!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"Run directory {run_dir!r} is not writable: no write permission on {existing!r} "
                          "(or a read-only file system)")


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
    the file if it is not a config this package wrote: the whole resolved config, every section,
    not a file of overrides. One written by an earlier version is read as `load_config` reads
    it, its keys under their new names, and a key it lacks as its version had it (`_ADDED_KEYS`)."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.exists(path):
        return None
    try:
        saved = read_config_file(path)
        sections = list(Config().to_dict())
        if set(saved) != set(sections):
            raise ConfigError(f"its sections are {', '.join(map(str, saved)) or 'none'}; a run's are "
                              f"{', '.join(sections)}")
        config = load_config(overrides=saved)
    except ConfigError as error:
        raise ConfigError(f"{path} is not a config that tf_cyclegan wrote for a run ({error}). Use another "
                          "--run-dir; nothing there was changed.") from None
    # Keys the file's version did not have take the value that version had, not today's default.
    missing = {key: value for key, value in _ADDED_KEYS.items() if key not in (saved.get("model") or {})}
    if missing:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, **missing))
    return config


# Model keys added after runs were written without them, with what those runs had: version
# 0.1.0's generators were aligned by Keras' "same" padding; runs before averaged generators had none.
_ADDED_KEYS = {"alignment": "keras_same", "ema_decay": None}


def trained_outputs(run_dir):
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
    """Whether `run_dir` holds a run of ours: a config.yaml that this package wrote (`_saved_config`)."""
    try:
        return _saved_config(run_dir) is not None
    except ConfigError:
        return False


def check_restartable(run_dir):
    """Raises `ConfigError` (deleting nothing) unless `run_dir` holds a run of ours to start over
    (a config.yaml this package wrote), nothing, or only what a start that never ran a step left."""
    records = _binding_records(run_dir)
    if records and not _ours(run_dir):
        raise ConfigError(f"--restart deletes an earlier run's files, but {run_dir} does not hold a run of ours "
                          f"(no config.yaml written by tf_cyclegan beside {', '.join(records)}). Nothing was deleted; "
                          "use another --run-dir.")


# Settings that may differ when a run is resumed; anything else must match the saved config.
_RESUMABLE = ("train.verbose", "train.cpu_allocator", "train.cpu_speedups", "train.init_from", "train.epochs",
              "train.epochs_decay", "backup.", "checkpoint.", "monitor.", "eval.",
              "distribute.strategy", "distribute.tpu", "distribute.timeout_s")
# Keys naming a folder: "./data/" and "data" are the same folder, not a change of config.
_PATH_KEYS = ("data.root", "data.train_a", "data.train_b", "data.tfds_data_dir")

def with_absolute_paths(config):
    """`config` with its data folders made absolute, as a run records it: a run started with
    `data.root=data` from one folder resumes from any other, on the folder it trained on."""
    def absolute(path):
        return os.path.abspath(os.path.expanduser(path)) if isinstance(path, str) else path

    data = config.data
    folders = {key.split(".")[1]: absolute(getattr(data, key.split(".")[1])) for key in _PATH_KEYS}
    return dataclasses.replace(config, data=dataclasses.replace(data, **folders))


def _same_setting(key, saved, wanted):
    """Whether a setting of the saved config and of the new one are the same (folders compared
    as the folders they name)."""
    if key in _PATH_KEYS and isinstance(saved, str) and isinstance(wanted, str):
        return os.path.realpath(os.path.expanduser(saved)) == os.path.realpath(os.path.expanduser(wanted))
    return saved == wanted


# Settings whose default changed after runs were started with the old one, with the value
# those runs have: resumed by a command that leaves such a setting at its new default, a run
# keeps the value it was started with (its backups were made with it). model.ema_decay:
# averaged generators became the default after runs trained without them.
_KEPT_BY_RUN = {"model.ema_decay": None}


def run_config(config, run_dir, restart=False):
    """`config` as the run in `run_dir` resumes it: each setting of `_KEPT_BY_RUN` that the
    command leaves at its default takes the run's own value, said in the log. `config` itself
    where nothing is kept, on a restart, or where `run_dir` holds no run."""
    saved_config = None if restart else _saved_config(run_dir)
    if saved_config is None:
        return config
    config, kept = _keeping_run_settings(config, saved_config)
    _log_kept(run_dir, kept)
    return config


def _keeping_run_settings(config, saved_config):
    """(`config` with the settings the run keeps, {key: the run's value} of those)."""
    kept = {}
    for key, old_value in _KEPT_BY_RUN.items():
        section, name = key.split(".")
        default = getattr(getattr(Config(), section), name)
        if getattr(getattr(saved_config, section), name) == old_value and \
                getattr(getattr(config, section), name) == default != old_value:
            kept[key] = old_value
            config = dataclasses.replace(
                config, **{section: dataclasses.replace(getattr(config, section), **{name: old_value})})
    return config, kept


def _log_kept(run_dir, kept):
    for key, value in kept.items():
        logger.info("%s was started with %s: %s, and resumes with it (the default differs now; start a new run "
                    "for it).", run_dir, key, value)


def resuming(config, run_dir, restart):
    """Whether `run_dir` holds a run with this config to resume (False: a new run starts there).

    Raises `ConfigError`, changing nothing, where training there would mix runs or touch the
    user's files: a config.yaml we did not write, a run's records without a config, a run
    whose config differs in a setting that is not in `_RESUMABLE` (each named, old and new;
    a setting the run keeps, `run_config`, is its own), or, with `restart`, a directory
    holding what is not a run of ours.
    """
    return resume_plan(config, run_dir, restart)[0]


def resume_plan(config, run_dir, restart):
    """(`resuming`, `run_config`) of `config` and `run_dir`, the run's config.yaml read once."""
    if restart:
        check_restartable(run_dir)
        return False, config
    saved_config = _saved_config(run_dir)
    if saved_config is None:
        others = _binding_records(run_dir)
        if others:
            raise ConfigError(f"{run_dir} holds {', '.join(others)} but no config.yaml: not a run this package can "
                              "resume. Use another --run-dir (nothing there was changed).")
        return False, config
    config, kept = _keeping_run_settings(config, saved_config)
    saved, wanted = flatten_config(saved_config.to_dict()), flatten_config(config.to_dict())
    changed = [f"{key}: {saved.get(key)!r} in the run, {wanted.get(key)!r} now" for key in sorted(wanted)
               if not _same_setting(key, saved.get(key), wanted.get(key)) and not key.startswith(_RESUMABLE)]
    if changed:
        hint = ""
        if saved.get("model.alignment") != wanted.get("model.alignment"):
            hint = (f" To resume it with the generators it was trained with, add --set model.alignment="
                    f"{saved.get('model.alignment')}.")
        raise ConfigError(
            f"{run_dir} holds a run with a different config ({'; '.join(changed)}). "
            "Use the same config to resume it, --restart to start it over, or another --run-dir." + hint
        )
    _log_kept(run_dir, kept)
    return True, config


class RecordConfig(keras.callbacks.Callback):
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
        config = with_absolute_paths(config)
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


def keep_csv_rows_before(path, epoch):
    """Drops CSV log rows of epochs a resumed run is about to train again (from `epoch` on), so
    that log.csv keeps one row per epoch; a log with nothing to drop is not rewritten."""
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


def write_results(config, run_dir, result, only_missing=False):
    """Writes model.keras and results.json (`only_missing`: those that are not there) from
    `result`, adding the paired test error where the data has one."""
    model = result["model"]
    if not (only_missing and os.path.exists(os.path.join(run_dir, MODEL))):
        save_model_atomically(model, os.path.join(run_dir, MODEL))
    if only_missing and os.path.exists(os.path.join(run_dir, RESULTS)):
        return
    if config.data.root and os.path.isdir(os.path.join(config.data.root, "testB_paired")):
        def paired_error(generator):
            return paired_translation_error(generator, os.path.join(config.data.root, "testA"),
                                            os.path.join(config.data.root, "testB_paired"))

        # The generator translation uses by default: the averaged one where the model keeps one.
        result["paired_test"] = paired_error(model.get_generator("a2b"))
        if getattr(model, "ema_decay", None) is not None:
            result["paired_test"]["generator"] = "averaged"
            result["paired_test_raw"] = paired_error(model.get_generator("a2b", "raw"))
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


def finished_run_result(config, run_dir, model, precision, is_chief):
    """The result of a run that has trained all the epochs `config` asks for, read from its
    records, which are kept as they are: its config.yaml still says how many epochs it trained.
    Only records a kill after the last backup left unwritten (model.keras, results.json) are written."""
    result = {"run_dir": run_dir, "precision": precision, "final_losses": {}, "model": model}
    try:
        with open(os.path.join(run_dir, RESULTS)) as f:
            saved = json.load(f)
        result.update({k: v for k, v in saved.items() if k not in ("model", "run_dir")})
    except (OSError, ValueError):
        result["final_losses"] = _last_csv_row(os.path.join(run_dir, LOG_CSV))
        if is_chief:
            write_results(config, run_dir, result, only_missing=True)
    return result
