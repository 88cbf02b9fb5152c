import dataclasses
import io
import json
import logging
import os
import re
import shutil

import numpy as np
import pytest
import yaml

from tf_cyclegan.training.callbacks.backup import BackupError
from tf_cyclegan.training.config import ConfigError, dump_config, load_config
from tf_cyclegan.training.train import fit_verbosity, train_and_evaluate


def _config(root, **train):
    return load_config(overrides={
        "data": {"root": str(root), "load_size": 36, "crop_size": 32, "num_samples": 0},
        "model": {"filters": 4, "num_residual_blocks": 1, "disc_filters": 4, "pool_size": 2},
        "train": {"epochs": 1, "epochs_decay": 0, "verbose": 0, "steps_per_epoch": 2, **train},
        "checkpoint": {"every_n_epochs": 1},
    })


def _tree(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, dirs, files in os.walk(folder) for name in dirs + files)


@pytest.mark.parametrize("user_files", [
    {"logs/events.txt": "mine", "samples/holiday.png": "mine"},  # no config.yaml at all
    {"config.yaml": "train:\n  epochs: 3\n", "logs/notes.txt": "mine"},  # the user's overrides file
])
def test_restart_deletes_nothing_in_a_directory_that_holds_no_run_of_ours(demo_root, tmp_path, user_files):
    run_dir = tmp_path / "mine"
    for rel, text in user_files.items():
        os.makedirs(run_dir / os.path.dirname(rel), exist_ok=True)
        (run_dir / rel).write_text(text)
    before = _tree(run_dir)
    with pytest.raises(ConfigError, match="(not hold a run of ours|not a config that tf_cyclegan wrote)"):
        train_and_evaluate(_config(demo_root), str(run_dir), restart=True)
    assert _tree(run_dir) == before
    for rel, text in user_files.items():
        assert (run_dir / rel).read_text() == text


@pytest.mark.parametrize("text", ["learning_rate: 0.1\n", "# my settings\ntrain:\n  epochs: 1\n"])
def test_a_config_file_of_the_users_in_the_run_directory_is_named_and_kept(demo_root, tmp_path, text):
    # Not ours: a foreign file, or the user's own overrides (e.g. --config x/config.yaml --run-dir x).
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"config\.yaml is not a config that tf_cyclegan wrote"):
        train_and_evaluate(_config(demo_root), str(tmp_path))
    assert (tmp_path / "config.yaml").read_text() == text


def test_an_unwritable_run_directory_is_reported_before_the_data_is_read(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    # The data root does not exist either: the run directory is what is reported, first.
    with pytest.raises(ConfigError, match="cannot be created: '.*/file' is a file"):
        train_and_evaluate(_config(tmp_path / "no-data"), str(tmp_path / "file" / "run"))


@pytest.mark.slow
def test_a_trained_run_without_its_backup_stops_and_restart_starts_it_over(trained_run, tmp_path):
    from conftest import copy_run

    run_dir = tmp_path / "run"
    copy_run(trained_run, run_dir)
    config = load_config(run_dir / "config.yaml")
    shutil.rmtree(run_dir / "backup")
    before = {rel: os.path.getmtime(run_dir / rel) for rel in _tree(run_dir)}
    with pytest.raises(BackupError, match="no backup to resume it from.*--restart"):
        train_and_evaluate(config, str(run_dir))
    assert {rel: os.path.getmtime(run_dir / rel) for rel in _tree(run_dir)} == before  # nothing rewritten
    # A run of ours: --restart deletes its files and trains it again.
    result = train_and_evaluate(config, str(run_dir), restart=True)
    assert result["final_losses"] and os.path.isdir(run_dir / "backup")


@pytest.mark.slow
def test_an_image_deleted_mid_run_without_the_cache_is_an_error_naming_it(tmp_path):
    import keras
    import tensorflow as tf

    from tf_cyclegan.data.synthetic import make_demo_data

    make_demo_data(tmp_path / "data", num_train=4, num_test=1, size=36, seed=2)

    class DeleteDomainA(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):  # after the folders were listed, before a batch is read
            for name in os.listdir(tmp_path / "data" / "trainA"):
                os.remove(tmp_path / "data" / "trainA" / name)

    config = load_config(overrides={
        "data": {"root": str(tmp_path / "data"), "load_size": 36, "crop_size": 32, "num_samples": 0, "cache": False},
        "model": {"filters": 4, "num_residual_blocks": 1, "disc_filters": 4, "pool_size": 2},
        "train": {"epochs": 1, "epochs_decay": 0, "verbose": 0},
    })
    with pytest.raises(tf.errors.NotFoundError, match=r"trainA/000\d\.png"):
        train_and_evaluate(config, str(tmp_path / "run"), callbacks=[DeleteDomainA()])


@pytest.mark.slow
def test_ctrl_c_says_it_stops_after_the_step_then_names_the_step_and_exits_130(demo_root, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from conftest import subprocess_env

    run_dir = tmp_path / "run"
    # Through the installed console script, end to end: SIGINT to the process a user starts.
    process = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "tf-cyclegan"), "train", "--run-dir", str(run_dir), "--set",
         f"data.root={demo_root}", "data.load_size=36", "data.crop_size=32", "model.filters=4",
         "model.num_residual_blocks=1", "model.disc_filters=4", "train.epochs=50", "train.verbose=0",
         "backup.every_n_steps=2", "data.num_samples=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    deadline = time.monotonic() + 300
    while not (run_dir / "backup").is_dir() or not os.listdir(run_dir / "backup"):  # training has started
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("tf-cyclegan train:")]
    assert len(lines) == 2 and "Traceback" not in err, err[-3000:]
    assert "stopping after the running step" in lines[0]
    assert "interrupted at step" in lines[1] and "run the same command to resume" in lines[1]


@pytest.mark.slow  # trains, in conftest's trained_run
def test_a_run_directory_holds_the_config_model_logs_checkpoints_samples_and_results(trained_run):
    import keras

    from tf_cyclegan import CycleGAN
    from tf_cyclegan.precision import resolve_precision

    run_dir = trained_run["run_dir"]
    argv = trained_run["argv"]  # --run-dir, --config and --set's section.key=value
    config = load_config(argv[argv.index("--config") + 1], sets=[arg for arg in argv if "=" in arg])
    assert sorted(os.listdir(run_dir)) == ["backup", "checkpoints", "config.yaml", "log.csv", "logs", "model.keras",
                                           "results.json", "samples"]
    assert load_config(run_dir / "config.yaml") == config  # the run's resolved config
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["epoch_0001.keras", "epoch_0002.keras"]
    assert sorted(os.listdir(run_dir / "samples")) == ["epoch_001.png", "epoch_002.png"]
    assert len((run_dir / "log.csv").read_text().splitlines()) == 1 + 2  # a header and a row per epoch
    # Every file the run wrote is one --restart knows as the run's (by its writer's pattern).
    from tf_cyclegan.files import find_matching
    from tf_cyclegan.training.run_directory import RUN_FILES, RUN_FOLDERS

    written = [rel for rel in _tree(run_dir) if (run_dir / rel).is_file()]
    assert find_matching(run_dir, RUN_FILES, RUN_FOLDERS) == written and len(written) > 12
    model = keras.saving.load_model(run_dir / "model.keras")
    assert isinstance(model, CycleGAN) and int(model.gen_optimizer.iterations) == 12  # 2 epochs of 6 steps
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["run_dir"] == str(run_dir) and saved["precision"] == resolve_precision("auto")  # this machine's
    assert set(saved["final_losses"]) >= {"gen_total", "disc_a", "disc_b", "learning_rate"}
    assert saved["paired_test"]["images"] == 3 and saved["paired_test"]["model"]["mae"] > 0
    # With averaged generators (model.ema_decay, on by default): their error, and the trained
    # ones' beside it.
    assert saved["paired_test"]["generator"] == "averaged" and saved["paired_test_raw"]["model"]["mae"] > 0
    assert int(model.ema_updates) == 12


def test_resuming_refuses_a_changed_config_and_changes_nothing(demo_root, tmp_path):
    # What a run of ours leaves first: the resolved config.
    config = _config(demo_root)
    dump_config(config, str(tmp_path / "config.yaml"))
    before = (tmp_path / "config.yaml").read_text()
    changed = dataclasses.replace(config, model=dataclasses.replace(config.model, filters=8),
                                  train=dataclasses.replace(config.train, learning_rate=1e-3))
    with pytest.raises(ConfigError, match=r"holds a run with a different config \(model.filters: 4 in the run, 8 now; "
                                          r"train.learning_rate: 0.0002 in the run, 0.001 now\).*--restart"):
        train_and_evaluate(changed, str(tmp_path))
    assert os.listdir(tmp_path) == ["config.yaml"] and (tmp_path / "config.yaml").read_text() == before


def _as_written_by(config, version):
    """The config.yaml that `version` ("0.1.0" or "0.2.0", commits aa700a7 and fdf5a1e) wrote
    for `config`: the renamed keys under their names of then (backups among the checkpoint
    keys), without the keys it did not have yet."""
    raw = config.to_dict()
    model, train, backup, checkpoint = raw["model"], raw["train"], raw.pop("backup"), raw["checkpoint"]
    model["generator_alignment"], model["disc_layers"] = model.pop("alignment"), model.pop("disc_num_layers")
    raw["checkpoint"] = {"backup_every_n_steps": backup["every_n_steps"], "keep_backups": backup["keep"],
                         "keras_every_n_epochs": checkpoint["every_n_epochs"],
                         "keras_every_n_steps": checkpoint["every_n_steps"], "keep_keras": checkpoint["keep"]}
    del train["cpu_speedups"], model["ema_decay"]
    if version == "0.1.0":  # one kind of generator (Keras' "same" padding) and of upsampling
        del model["generator_alignment"], model["upsampling"], model["norm_affine"], model["use_bias"]
        del train["init_from"]
    return raw


@pytest.mark.filterwarnings("ignore:.* is now .*:UserWarning")  # its keys of then: tested with 0.2.0's below
def test_a_run_of_version_0_1_0_resumes_only_with_the_generators_it_trained(demo_root, tmp_path):
    # Its config.yaml has no alignment key: its generators were "keras_same".
    config = _config(demo_root)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_as_written_by(config, "0.1.0"), sort_keys=False))
    before = (tmp_path / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"model.alignment: 'keras_same' in the run, 'reference' now.*"
                                          r"--set model.alignment=keras_same"):
        train_and_evaluate(config, str(tmp_path))
    assert os.listdir(tmp_path) == ["config.yaml"] and (tmp_path / "config.yaml").read_text() == before
    from tf_cyclegan.training.run_directory import resuming

    old = dataclasses.replace(config, model=dataclasses.replace(config.model, alignment="keras_same"))
    assert resuming(old, str(tmp_path), restart=False)  # the same run, with the old generators
    resized = dataclasses.replace(old, model=dataclasses.replace(old.model, upsampling="resize"))
    with pytest.raises(ConfigError, match="model.upsampling: 'transpose' in the run, 'resize' now"):
        resuming(resized, str(tmp_path), restart=False)


@pytest.mark.filterwarnings("ignore:.* is now .*:UserWarning")  # after the first, checked
def test_a_run_of_version_0_2_0_resumes_its_old_keys_read_under_the_new_names(demo_root, tmp_path):
    from tf_cyclegan.training.run_directory import check_restartable, resuming

    config = _config(demo_root)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_as_written_by(config, "0.2.0"), sort_keys=False))
    with pytest.warns(UserWarning) as caught:
        assert resuming(config, str(tmp_path), restart=False)
    assert len(caught) == 7 and all(re.fullmatch(r"[\w.]+ is now [\w.]+ \(config file '.*config\.yaml'\)",
                                                 str(w.message)) for w in caught), [str(w.message) for w in caught]
    check_restartable(str(tmp_path))  # a run of ours, --restart may delete it
    deeper = dataclasses.replace(config, model=dataclasses.replace(config.model, disc_num_layers=2))
    with pytest.raises(ConfigError, match="model.disc_num_layers: 3 in the run, 2 now"):
        resuming(deeper, str(tmp_path), restart=False)
    kept = dataclasses.replace(config, backup=dataclasses.replace(config.backup, keep=5))
    assert resuming(kept, str(tmp_path), restart=False)  # backup.* may change on a resume, as checkpoint.* may


@pytest.mark.filterwarnings("ignore:.* is now .*:UserWarning")  # tested above
def test_a_run_started_before_averaged_generators_were_the_default_resumes_without_them(demo_root, tmp_path, caplog):
    from tf_cyclegan.training.run_directory import resuming, run_config

    config = _config(demo_root)
    assert config.model.ema_decay == 0.999  # the default for new runs
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_as_written_by(config, "0.2.0"), sort_keys=False))
    with caplog.at_level(logging.INFO, logger="tf_cyclegan.training.run_directory"):
        assert run_config(config, str(tmp_path)).model.ema_decay is None  # its backups hold no averages
    assert "started with model.ema_decay: None, and resumes with it" in caplog.text
    assert resuming(config, str(tmp_path), restart=False)
    assert run_config(config, str(tmp_path), restart=True) == config  # a restart is a new run
    assert run_config(config, str(tmp_path / "new")) == config
    # Asked for another decay than the default, it is a changed config, named.
    other = dataclasses.replace(config, model=dataclasses.replace(config.model, ema_decay=0.99))
    with pytest.raises(ConfigError, match=r"model.ema_decay: 'None' in the run, 0.99 now"):
        resuming(other, str(tmp_path), restart=False)
    # A run of this version started with none resumes with none too; one with averages refuses none.
    off = dataclasses.replace(config, model=dataclasses.replace(config.model, ema_decay=None))
    dump_config(off, str(tmp_path / "config.yaml"))
    assert run_config(config, str(tmp_path)).model.ema_decay is None
    dump_config(config, str(tmp_path / "config.yaml"))
    with pytest.raises(ConfigError, match=r"model.ema_decay: 0.999 in the run, 'None' now"):
        resuming(off, str(tmp_path), restart=False)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.* is now .*:UserWarning")  # after the first, checked
def test_a_run_of_version_0_2_0_trains_on_from_its_backup_and_its_config_takes_the_new_names(demo_root, tmp_path):
    run_dir = tmp_path / "run"
    then = _config(demo_root)
    then = dataclasses.replace(then, model=dataclasses.replace(then.model, ema_decay=None))  # 0.2.0 had none
    train_and_evaluate(then, str(run_dir))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(_as_written_by(then, "0.2.0")))
    with pytest.warns(UserWarning, match=r"model\.disc_layers is now model\.disc_num_layers"):
        result = train_and_evaluate(_config(demo_root, epochs=2), str(run_dir))  # today's default: 0.999
    assert int(result["model"].gen_optimizer.iterations) == 4  # 2 steps from its backup, 2 more
    assert result["model"].ema_decay is None  # the run kept what it was started with
    now = _config(demo_root, epochs=2)
    assert load_config(run_dir / "config.yaml") == dataclasses.replace(
        now, model=dataclasses.replace(now.model, ema_decay=None))
    assert "disc_layers" not in (run_dir / "config.yaml").read_text()


def test_init_from_a_cyclegan_with_other_upsampling_stops_naming_the_setting(tmp_path):
    from conftest import saved_tiny_cyclegan, tiny_cyclegan

    from tf_cyclegan.training.train import _init_from

    source = saved_tiny_cyclegan(tmp_path / "resize.keras", upsampling="resize")
    with pytest.raises(ConfigError, match="upsampling 'resize', the config builds 'transpose': "
                                          "add --set model.upsampling=resize"):
        _init_from(tiny_cyclegan(), str(tmp_path / "resize.keras"), load_config().model)
    _init_from(model := tiny_cyclegan(upsampling="resize"), str(tmp_path / "resize.keras"),
               load_config(overrides={"model": {"upsampling": "resize"}}).model)
    for ours, theirs in zip(model.gen_a2b.weights, source.gen_a2b.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_fit_verbosity_auto_is_a_line_per_epoch_off_a_terminal_and_the_live_bar_on_one():
    assert fit_verbosity("auto", io.StringIO()) == 2
    assert fit_verbosity("auto", _Terminal()) == 1
    assert fit_verbosity("auto", object()) == 2  # a stream that cannot say
    for verbose in (0, 1, 2):
        assert fit_verbosity(verbose, _Terminal()) == verbose


def _make_files(root, rels, text="x"):
    for rel in rels:
        os.makedirs(root / os.path.dirname(rel), exist_ok=True)
        (root / rel).write_text(text)


def _start_failure(kind, tmp_path, demo_root):
    """A config whose start fails after the networks are built, and the error it raises."""
    from conftest import saved_tiny_cyclegan

    if kind == "init_from_shape":
        saved_tiny_cyclegan(tmp_path / "other.keras", disc_num_layers=2)
        return _config(demo_root, init_from=str(tmp_path / "other.keras")), "does not have the weights"
    if kind == "init_from_generator":
        saved_tiny_cyclegan(tmp_path / "cg.keras").gen_a2b.save(tmp_path / "gen.keras")
        return _config(demo_root, init_from=str(tmp_path / "gen.keras")), "not a CycleGAN"
    config = _config(demo_root)
    return dataclasses.replace(config, eval=dataclasses.replace(
        config.eval, every_n_epochs=1, inception_weights=str(tmp_path / "no-such-inception.h5"))), "Inception"


@pytest.mark.parametrize("kind", ["init_from_shape", "init_from_generator", "inception_weights"])
def test_a_start_that_fails_leaves_nothing_behind(demo_root, tmp_path, kind):
    config, message = _start_failure(kind, tmp_path, demo_root)
    with pytest.raises((ConfigError, FileNotFoundError), match=message):
        train_and_evaluate(config, str(tmp_path / "new"))
    assert not (tmp_path / "new").exists()  # made by the start, removed with what it held
    _make_files(tmp_path / "mine", ["notes.txt"])
    with pytest.raises((ConfigError, FileNotFoundError), match=message):
        train_and_evaluate(config, str(tmp_path / "mine"))
    assert _tree(tmp_path / "mine") == ["notes.txt"]


def test_a_run_directory_in_use_is_refused_before_any_work_naming_the_owner(demo_root, tmp_path):
    import socket

    from tf_cyclegan.files import DirectoryLocked, lock_directory

    with lock_directory(tmp_path):
        with pytest.raises(DirectoryLocked, match=f"is in use: process {os.getpid()} on {socket.gethostname()}"):
            train_and_evaluate(_config(tmp_path / "no-data"), str(tmp_path))  # refused before the data is read
        assert len(os.listdir(tmp_path)) == 1  # the lock only


def test_the_epochs_records_come_before_the_backup_that_marks_it_done(demo_root, tmp_path):
    from conftest import built_tiny_cyclegan

    from tf_cyclegan.training.callbacks.backup import BackupCallback, BackupManager
    from tf_cyclegan.training.callbacks.progress import RunProgress
    from tf_cyclegan.training.train import _chief_callbacks

    config = dataclasses.replace(_config(demo_root), eval=dataclasses.replace(_config(demo_root).eval,
                                                                              every_n_epochs=1))
    progress = RunProgress(2, info={"global_batch_size": 1})
    manager = BackupManager(tmp_path / "backup")
    samples = [[np.zeros((32, 32, 3), "float32")]] * 2
    callbacks = _chief_callbacks(config, str(tmp_path), manager, progress, samples, str(tmp_path / "logs"),
                                 str(tmp_path / "log.csv"))
    assert isinstance(callbacks[-1], BackupCallback) and len(callbacks) == 7  # eval and samples before it
    # Nor does the step rule back up at an epoch's last batch: the epoch's end does, after its records.
    backup = BackupCallback(manager, progress, every_n_steps=1)
    backup.set_model(built_tiny_cyclegan())
    for batch in range(2):
        progress.on_train_batch_end(batch)
        backup.on_train_batch_end(batch)
    assert [os.path.basename(b) for b in manager.backups()] == ["step-0000000001"]


def _contents(folder):
    return {rel: (folder / rel).read_bytes() for rel in _tree(folder) if (folder / rel).is_file()}


@pytest.mark.slow
def test_a_finished_run_is_read_not_rewritten_unless_more_epochs_are_asked(trained_run, tmp_path):
    from conftest import copy_run

    run_dir = tmp_path / "run"
    copy_run(trained_run, run_dir)
    config = load_config(run_dir / "config.yaml")  # 1 constant epoch and 1 decaying one, 6 steps each
    first = json.loads((run_dir / "results.json").read_text())
    before = _contents(run_dir)

    def epochs(epochs, epochs_decay):
        return dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=epochs,
                                                                     epochs_decay=epochs_decay))

    for asked in (config, epochs(1, 0)):  # the same command again, and one asking for fewer epochs than trained
        result = train_and_evaluate(asked, str(run_dir))
        assert result["final_losses"] == pytest.approx(first["final_losses"]) and result["final_losses"]
        assert _contents(run_dir) == before  # config.yaml still says 2 epochs, results.json its losses
    result = train_and_evaluate(epochs(1, 2), str(run_dir))  # more: trains on, records follow
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["epochs_decay"] == 2
    assert [row.split(",")[0] for row in (run_dir / "log.csv").read_text().splitlines()[1:]] == ["0", "1", "2"]
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["final_losses"] == pytest.approx(result["final_losses"]) != first["final_losses"]
    assert int(result["model"].gen_optimizer.iterations) == 18


@pytest.mark.slow
def test_a_kill_while_an_epochs_records_are_written_leaves_the_epoch_to_end_again(demo_root, tmp_path, monkeypatch):
    from tf_cyclegan.training.callbacks.samples import SampleGrid

    config = load_config(overrides={
        "data": {"root": str(demo_root), "load_size": 36, "crop_size": 32, "num_samples": 1},
        "model": {"filters": 4, "num_residual_blocks": 1, "disc_filters": 4, "pool_size": 2},
        "train": {"epochs": 2, "epochs_decay": 0, "verbose": 0, "steps_per_epoch": 2},
        "backup": {"every_n_steps": 1},  # due at every step, the epoch's last included
    })
    write_grid = SampleGrid.on_epoch_end

    def killed_while_writing_the_first_grid(self, epoch, logs=None):
        raise KeyboardInterrupt

    run_dir = tmp_path / "run"
    monkeypatch.setattr(SampleGrid, "on_epoch_end", killed_while_writing_the_first_grid)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, str(run_dir))
    # The epoch is not marked done: its last backup is from before its end.
    assert sorted(os.listdir(run_dir / "backup")) == ["step-0000000001"]
    monkeypatch.setattr(SampleGrid, "on_epoch_end", write_grid)
    train_and_evaluate(config, str(run_dir))
    assert sorted(os.listdir(run_dir / "samples")) == ["epoch_001.png", "epoch_002.png"]
    assert [row.split(",")[0] for row in (run_dir / "log.csv").read_text().splitlines()[1:]] == ["0", "1"]


@pytest.mark.slow
def test_a_first_step_that_fails_leaves_nothing_and_the_next_start_trains(demo_root, tmp_path):
    import keras

    class OutOfMemoryAtTheFirstStep(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            raise RuntimeError("OOM when allocating tensor")

    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="OOM"):
        train_and_evaluate(_config(demo_root), str(run_dir), callbacks=[OutOfMemoryAtTheFirstStep()])
    assert not run_dir.exists()
    # Nor does a start whose init file does not fit: the corrected command, with another seed, starts there.
    config, message = _start_failure("init_from_shape", tmp_path, demo_root)
    with pytest.raises(ConfigError, match=message):
        train_and_evaluate(config, str(run_dir))
    result = train_and_evaluate(_config(demo_root, seed=3), str(run_dir))  # the corrected command
    assert result["final_losses"] and load_config(run_dir / "config.yaml").train.seed == 3


def test_restart_deletes_the_earlier_run_only_once_the_new_start_has_not_failed_on_its_input(demo_root, tmp_path):
    config, message = _start_failure("init_from_shape", tmp_path, demo_root)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    dump_config(_config(demo_root), str(run_dir / "config.yaml"))
    _make_files(run_dir, ["checkpoints/epoch_0001.keras", "log.csv", "backup/step-0000000002/progress.json"])
    before = _contents(run_dir)
    with pytest.raises(ConfigError, match=message):
        train_and_evaluate(config, str(run_dir), restart=True)
    assert _contents(run_dir) == before  # the earlier run is still there to resume


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fastcut"])
def test_a_cut_run_trains_resumes_exports_and_translates_one_way(demo_root, tmp_path, kind, capsys):
    """model.kind cut/fastcut through the whole run: results, samples, an exact resume of a
    finished epoch's backup, export of the one generator as a2b, b2a refused in one line."""
    from tf_cyclegan.cli import main
    from tf_cyclegan.models.cut import CUT

    run_dir = tmp_path / "run"
    overrides = {
        "data": {"root": str(demo_root), "load_size": 36, "crop_size": 32, "num_samples": 1},
        "model": {"kind": kind, "filters": 4, "num_residual_blocks": 5, "disc_filters": 4, "head_units": 8,
                  "num_patches": 16, "ema_decay": 0.9},
        "train": {"epochs": 1, "epochs_decay": 0, "verbose": 0, "steps_per_epoch": 2},
        "checkpoint": {"every_n_epochs": 1},
    }
    result = train_and_evaluate(load_config(overrides=overrides), str(run_dir))
    model = result["model"]
    assert isinstance(model, CUT) and model.directions == ("a2b",) and int(model.gen_optimizer.iterations) == 2
    assert int(model.head_optimizer.iterations) == 2 and int(model.ema_updates) == 2
    saved = json.loads((run_dir / "results.json").read_text())
    assert {"gen_total", "nce_a2b", "disc_b", "learning_rate"} <= set(saved["final_losses"])
    assert saved["paired_test"]["generator"] == "averaged" and saved["paired_test_raw"]["images"] == 3
    assert sorted(os.listdir(run_dir / "samples")) == ["epoch_001.png"]

    # One more epoch resumes from the epoch's backup: the feature head and its optimizer too.
    overrides["train"]["epochs"] = 2
    again = train_and_evaluate(load_config(overrides=overrides), str(run_dir))["model"]
    assert int(again.head_optimizer.iterations) == 4 and int(again.ema_updates) == 4

    assert main(["export", str(run_dir), "--formats", "savedmodel", "--out", str(tmp_path / "export")]) in (0, None)
    assert sorted(os.listdir(tmp_path / "export")) == ["a2b"]
    code = main(["translate", "--model", str(run_dir), "--direction", "b2a", "--out", str(tmp_path / "out"),
                 str(demo_root / "testB")])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "has no b2a generator: it translates a2b only" in error[-1]
