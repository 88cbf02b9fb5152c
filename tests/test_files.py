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


def _write(root, rel, text="x"):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_remove_matching_deletes_only_the_writers_files_and_the_folders_left_empty(tmp_path):
    ours = ["log.csv", "out/epoch_001.png", "out/epoch_002.png", "deep/a/events.1"]
    mine = ["notes.txt", "out/mine.png", "elsewhere/epoch_003.png", "deep/b/events.2"]
    for rel in ours + mine:
        _write(tmp_path, rel)
    (tmp_path / "empty_of_mine").mkdir()
    patterns = (r"log\.csv", r"out/epoch_\d+\.png", r"deep/a/events\.\d+")
    folders = ("out", "deep", "deep/a", "empty_of_mine")
    assert files.find_matching(tmp_path, patterns, folders) == sorted(ours)
    assert files.remove_matching(tmp_path, patterns, folders, only={"log.csv", "out/epoch_001.png"}) == [
        "log.csv", "out/epoch_001.png"]
    assert (tmp_path / "out" / "epoch_002.png").exists()
    assert files.remove_matching(tmp_path, patterns, folders) == ["deep/a/events.1", "out/epoch_002.png"]
    for rel in mine:  # a file of the user's, even one named like ours outside our folders, stays
        assert (tmp_path / rel).read_text() == "x"
    assert not (tmp_path / "deep" / "a").exists()  # left empty: removed
    assert (tmp_path / "out").is_dir() and (tmp_path / "deep").is_dir()  # still hold the user's files
    assert not (tmp_path / "empty_of_mine").exists()  # a folder of ours by name, empty


def test_temporaries_of_matches_what_replacing_names_while_writing(tmp_path):
    import re

    pattern = re.compile(files.temporaries_of(r"epoch_\d+\.keras"))
    with files.replacing(tmp_path / "epoch_0001.keras", suffix=".keras") as tmp:
        assert pattern.fullmatch(os.path.basename(tmp))
        open(tmp, "w").close()
    assert not pattern.fullmatch("epoch_0001.keras") and not pattern.fullmatch(".tmp-12-mine.keras")


def test_a_directory_lock_records_its_owner_refuses_a_second_taker_and_is_released_on_an_error(tmp_path):
    import json
    import socket

    with pytest.raises(RuntimeError, match="failed"), files.lock_directory(tmp_path) as lock:
        assert json.loads(open(lock).read()) == {"pid": os.getpid(), "host": socket.gethostname()}
        with pytest.raises(files.DirectoryLocked, match=rf"process {os.getpid()} on {socket.gethostname()} "
                                                        rf"is working in it \(lock file .*{files.LOCK_NAME}\)"):
            with files.lock_directory(tmp_path):
                pass
        raise RuntimeError("failed")
    assert os.listdir(tmp_path) == []  # released
    with files.lock_directory(tmp_path):  # and can be taken again
        pass


def test_a_stale_lock_is_taken_over_with_a_warning_and_another_hosts_is_not(tmp_path, caplog):
    import json
    import socket

    lock = tmp_path / files.LOCK_NAME
    gone = 2**22 + 12345  # above Linux's default pid_max: no such process
    assert not files._running(gone)
    lock.write_text(json.dumps({"pid": gone, "host": socket.gethostname()}))
    with caplog.at_level("WARNING"), files.lock_directory(tmp_path, "run directory"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert f"Took over the stale lock of run directory {tmp_path}: process {gone}" in caplog.text
    assert not lock.exists()
    # Whether a process on another host still runs cannot be known here: refused, naming it.
    lock.write_text(json.dumps({"pid": gone, "host": "elsewhere.example"}))
    with pytest.raises(files.DirectoryLocked, match=f"process {gone} on elsewhere.example"):
        with files.lock_directory(tmp_path):
            pass
    assert json.loads(lock.read_text())["host"] == "elsewhere.example"  # not removed by the refused taker


@pytest.mark.slow
def test_a_lock_held_by_another_live_process_is_refused_naming_it(tmp_path):
    import socket
    import subprocess
    import sys

    from conftest import subprocess_env

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tf_cyclegan.files import lock_directory\n"
         f"with lock_directory({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(files.DirectoryLocked, match=f"process {holder.pid} on {socket.gethostname()}"):
            with files.lock_directory(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with files.lock_directory(tmp_path):  # killed (SIGKILL, no clean-up): its lock is stale now
        pass
