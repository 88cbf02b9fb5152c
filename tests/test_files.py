import errno
import os

import pytest
from conftest import built_tiny_cyclegan

from tf_cyclegan import files
from tf_cyclegan.files import save_model_atomically


@pytest.fixture(scope="module")
def model():
    return built_tiny_cyclegan()


def test_a_failed_write_leaves_the_earlier_file_and_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    files.write_json(path, {"mae": 1})
    with pytest.raises(RuntimeError), files.replacing(path) as tmp:
        with open(tmp, "w") as f:
            f.write('{"mae": ')  # half written when the writer fails
        raise RuntimeError("disk full")
    assert path.read_text() == '{\n  "mae": 1\n}\n'
    assert os.listdir(tmp_path) == ["results.json"]


def test_a_folder_replaces_an_earlier_folder_whole(tmp_path):
    out = tmp_path / "export"
    for contents in ("old", "new"):
        with files.replacing(out) as tmp:
            os.makedirs(tmp)
            (tmp_path / tmp / f"{contents}.txt").write_text(contents)
    assert os.listdir(out) == ["new.txt"] and os.listdir(tmp_path) == ["export"]


def test_refuse_existing_names_the_first_and_counts_the_rest(tmp_path):
    (tmp_path / "a.png").write_text("x")
    (tmp_path / "b.png").write_text("x")
    files.refuse_existing([tmp_path / "new.png"])  # nothing there: no error
    with pytest.raises(files.OutputExists, match=r"a\.png' exists already \(and 1 more\): use --overwrite"):
        files.refuse_existing([tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"])


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / f"{files.TMP_PREFIX}999999999-model.keras"
    mine = tmp_path / f"{files.TMP_PREFIX}{os.getpid()}-model.keras"
    for path in (dead, mine):
        path.write_text("partial")
    (tmp_path / "model.keras").write_text("whole")
    files.remove_stale_temporaries(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([mine.name, "model.keras"])


def test_a_save_that_does_not_fit_leaves_the_earlier_file_and_nothing_else(model, small_disk):
    disk = small_disk(400)  # the tiny CycleGAN with its optimizers takes about 1.6 MB
    earlier = disk / "model.keras"
    earlier.write_bytes(b"the earlier model")
    with pytest.raises(OSError) as caught:
        save_model_atomically(model, earlier)
    assert caught.value.errno == errno.ENOSPC and "model.keras" in str(caught.value)
    assert earlier.read_bytes() == b"the earlier model"
    assert os.listdir(disk) == ["model.keras"]


def test_a_write_that_fails_part_way_leaves_no_temporary(model, tmp_path, monkeypatch):
    def fails_part_way(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(model, "save", fails_part_way)
    with pytest.raises(OSError):
        save_model_atomically(model, tmp_path / "model.keras")
    assert os.listdir(tmp_path) == []


def test_a_save_replaces_the_earlier_file_whole(model, tmp_path):
    (tmp_path / "model.keras").write_bytes(b"old")
    save_model_atomically(model, tmp_path / "model.keras")
    assert (tmp_path / "model.keras").read_bytes()[:2] == b"PK"  # a .keras archive now
    assert os.listdir(tmp_path) == ["model.keras"]
