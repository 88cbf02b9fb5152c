import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from tf_cyclegan.torch_import.checkpoint import CheckpointError, read_state_dict

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch")


def fixture(name):
    return os.path.join(FIXTURES, name)


def test_both_pytorch_formats_read_to_the_same_arrays():
    new = read_state_dict(fixture("gen.pth"))
    old = read_state_dict(fixture("gen_legacy_format.pth"))
    assert list(new) == list(old)
    assert new["model.1.weight"].shape == (8, 3, 7, 7) and new["model.1.weight"].dtype == np.float32
    assert new["model.19.weight"].shape == (3, 8, 7, 7)  # the head: at 17 + 2 blocks
    for key in new:
        np.testing.assert_array_equal(new[key], old[key])


def test_running_statistics_and_the_dataparallel_prefix_are_read_as_they_are():
    state = read_state_dict(fixture("gen_dataparallel_running_stats.pth"))
    assert all(key.startswith("module.model.") for key in state)
    assert state["module.model.2.running_mean"].shape == (8,)
    tracked = state["module.model.2.num_batches_tracked"]
    assert tracked.shape == () and tracked.dtype == np.int64


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("packaging", ["plain pickle", "zip archive"])
def test_a_pickle_naming_a_foreign_global_is_refused_and_never_run(tmp_path, packaging):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"model.1.weight": _RunsACommand(marker)}, protocol=2)
    path = tmp_path / "evil.pth"
    if packaging == "zip archive":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("evil/data.pkl", payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=r"evil\.pth.*names (posix|nt)\.system.*refused"):
        read_state_dict(path)
    assert not marker.exists()


def test_a_truncated_file_is_named(tmp_path):
    for name in ("gen.pth", "gen_legacy_format.pth"):
        data = open(fixture(name), "rb").read()
        cut = tmp_path / f"cut_{name}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match=f"cut_{name}"):
            read_state_dict(cut)


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path):
    junk = tmp_path / "notes.pth"
    junk.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="notes.pth.*neither a zip archive nor PyTorch's older format"):
        read_state_dict(junk)


def test_a_pickle_of_something_else_than_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("list/data.pkl", pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        read_state_dict(path)


def test_a_state_dict_under_state_dict_is_found(tmp_path):
    # Many training scripts save {"state_dict": ..., "epoch": ...}: rebuilt from the fixture's pickle.
    with zipfile.ZipFile(fixture("disc.pth")) as source, zipfile.ZipFile(tmp_path / "wrapped.pth", "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item.endswith("data.pkl"):  # {"state_dict": <the pickled state dict>}: its opcodes in a dict
                data = b"\x80\x02}X\n\x00\x00\x00state_dict" + data[2:-1] + b"s."
            target.writestr(item, data)
    state = read_state_dict(tmp_path / "wrapped.pth")
    assert state["model.0.weight"].shape == (8, 3, 4, 4)


def _tuple(*numbers):
    return b"(" + b"".join(b"J" + struct.pack("<i", n) for n in numbers) + b"t"


def _crafted(path, offset, size, stride, numel=10, compress=zipfile.ZIP_STORED, keys=1):
    """A zip `.pth` whose storage holds `numel` floats and whose tensors claim `size` and
    `stride` from `offset`: the opcodes `torch.save` writes, with the numbers chosen here."""
    tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n(" + b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
              b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ" + struct.pack("<i", numel) + b"tQ"
              + b"J" + struct.pack("<i", offset) + _tuple(*size) + _tuple(*stride)
              + b"\x89ccollections\nOrderedDict\n)RtR")
    items = b"".join(b"X" + struct.pack("<I", len(f"w{i}")) + f"w{i}".encode() + tensor for i in range(keys))
    pickled = b"\x80\x02ccollections\nOrderedDict\n)R(" + items + b"u."
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("crafted/data.pkl", pickled)
        archive.writestr("crafted/data/0", np.arange(numel, dtype="<f4").tobytes(), compress_type=compress)
    return path


def test_the_crafted_file_helper_makes_a_readable_tensor(tmp_path):
    state = read_state_dict(_crafted(tmp_path / "ok.pth", offset=2, size=(2, 3), stride=(4, 1)))
    np.testing.assert_array_equal(state["w0"], [[2, 3, 4], [6, 7, 8]])


@pytest.mark.parametrize("offset, size, stride, problem", [
    (-1, (10,), (1,), "offset, size or stride out of range"),
    (0, (10,), (-1,), "offset, size or stride out of range"),
    (0, (100000, 100000), (0, 0), "offset, size or stride out of range"),
    (5, (10,), (1,), "reaches past its storage"),
    (0, (4, 4), (1, 1), "reaches past its storage"),
])
def test_a_tensor_reaching_outside_its_storage_is_refused(tmp_path, offset, size, stride, problem):
    with pytest.raises(CheckpointError, match=problem):
        read_state_dict(_crafted(tmp_path / "crafted.pth", offset, size, stride))


def test_one_storage_named_by_many_tensors_cannot_multiply_the_memory(tmp_path):
    with pytest.raises(CheckpointError, match="more elements than its storages"):
        read_state_dict(_crafted(tmp_path / "many.pth", offset=0, size=(10,), stride=(1,), keys=50))


def test_a_compressed_entry_is_refused(tmp_path):
    # torch.save stores its entries; a deflated one could inflate far beyond the file's size.
    with pytest.raises(CheckpointError, match="compressed or larger than expected"):
        read_state_dict(_crafted(tmp_path / "bomb.pth", 0, (10,), (1,), compress=zipfile.ZIP_DEFLATED))

