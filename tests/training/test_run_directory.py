import os

import pytest

from tf_cyclegan.files import remove_matching
from tf_cyclegan.training.callbacks.checkpoints import KerasCheckpoints
from tf_cyclegan.training.callbacks.samples import SampleGrid
from tf_cyclegan.training.config import ConfigError, dump_config, load_config
from tf_cyclegan.training.run_directory import RUN_FILES, RUN_FOLDERS, check_restartable, resuming


def _config(root):
    return load_config(overrides={
        "data": {"root": str(root), "load_size": 36, "crop_size": 32, "num_samples": 0},
        "model": {"filters": 4, "num_residual_blocks": 1, "disc_filters": 4, "pool_size": 2},
        "train": {"epochs": 1, "epochs_decay": 0, "verbose": 0, "steps_per_epoch": 2},
        "checkpoint": {"every_n_epochs": 1},
    })


def _tree(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, dirs, files in os.walk(folder) for name in dirs + files)


def _make_files(root, rels, text="x"):
    for rel in rels:
        os.makedirs(root / os.path.dirname(rel), exist_ok=True)
        (root / rel).write_text(text)


# The user's files in a run's folders, some named nearly like ours: --restart keeps every one.
USERS_FILES = ["checkpoints/best_by_hand.keras", "samples/mine.png", "logs/myexp/events.out.tfevents.1.me.2.v2",
               "logs/notes.txt", "backup/README", "notes.txt", "checkpoints/epoch_0001.keras.bak"]


def test_restart_deletes_exactly_what_the_writers_name_and_nothing_of_the_users(demo_root, tmp_path):
    dump_config(_config(demo_root), str(tmp_path / "config.yaml"))
    ours = ["log.csv", "model.keras", "results.json", ".tmp-99999999-model.keras.keras",
            f"checkpoints/{KerasCheckpoints.file_name('epoch', 3)}",
            f"checkpoints/{KerasCheckpoints.file_name('step', 40)}",
            f"samples/{SampleGrid.file_name(3)}", "backup/step-0000000040/state.weights.h5",
            "backup/step-0000000040/progress.json", "backup/.tmp-step-0000000042-77/state.weights.h5",
            "logs/train/events.out.tfevents.1.host.3.v2", "logs/steps/events.out.tfevents.1.host.3.v2"]
    _make_files(tmp_path, ours + USERS_FILES)
    check_restartable(str(tmp_path))  # a run of ours
    remove_matching(tmp_path, RUN_FILES, RUN_FOLDERS)
    assert _tree(tmp_path) == sorted(USERS_FILES + ["checkpoints", "samples", "logs", "logs/myexp", "backup"])


def test_what_a_start_killed_before_its_first_step_leaves_does_not_bind_the_next_command(demo_root, tmp_path):
    _make_files(tmp_path, ["logs/train/events.out.tfevents.1.host.3.v2", "logs/steps/events.out.tfevents.1.h.3.v2"])
    (tmp_path / "log.csv").write_text("")  # CSVLogger opens it at the start
    (tmp_path / "samples").mkdir()
    for restart in (False, True):
        assert not resuming(_config(demo_root), str(tmp_path), restart)  # a new run, whatever its config
    _make_files(tmp_path, ["logs/notes.txt"])  # but a folder holding the user's files is not ours to train into
    with pytest.raises(ConfigError, match="holds logs but no config.yaml"):
        resuming(_config(demo_root), str(tmp_path), False)


def test_a_data_folder_written_differently_is_the_same_config(demo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(demo_root.parent)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    dump_config(_config(demo_root.name), str(run_dir / "config.yaml"))  # data.root=demo0 (relative)
    before = (run_dir / "config.yaml").read_text()
    for root in (f"./{demo_root.name}/", str(demo_root), f"{demo_root}/../{demo_root.name}"):
        assert resuming(_config(root), str(run_dir), restart=False), root
    assert (run_dir / "config.yaml").read_text() == before  # what the user wrote stays
    with pytest.raises(ConfigError, match="data.root: 'demo.*' in the run, 'elsewhere' now"):
        resuming(_config("elsewhere"), str(run_dir), restart=False)


def test_a_run_records_its_data_folders_absolute_so_it_resumes_from_any_working_folder(demo_root, tmp_path,
                                                                                      monkeypatch):
    from tf_cyclegan.training.run_directory import RecordConfig

    monkeypatch.chdir(demo_root.parent)
    run_dir = tmp_path / "run"
    (run_dir / "backup").mkdir(parents=True)
    recorder = RecordConfig(_config(demo_root.name), str(run_dir))  # started with data.root=demo0 (relative)
    recorder.on_train_batch_end(0)
    assert load_config(str(run_dir / "config.yaml")).data.root == str(demo_root)
    monkeypatch.chdir(tmp_path)  # elsewhere: the same folder, named absolutely, is the same run
    assert resuming(_config(str(demo_root)), str(run_dir), restart=False)
    with pytest.raises(ConfigError, match="data.root"):  # here "demo0" names a folder that is not the run's
        resuming(_config(demo_root.name), str(run_dir), restart=False)
