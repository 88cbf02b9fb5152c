import errno
import os

import pytest
from conftest import tiny_cyclegan

from tf_cyclegan.training.callbacks.checkpoints import save_model_atomically


@pytest.fixture(scope="module")
def model():
    model = tiny_cyclegan()
    model.compile()
    model.build((1, 32, 32, 3))
    return model


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


def test_the_sample_grid_takes_test_images_smaller_than_the_generator_allows(model, tmp_path):
    import numpy as np

    from tf_cyclegan.training.callbacks.samples import SampleGrid

    tiny = [np.zeros((3, 2, 3), np.float32)]
    grid = SampleGrid(tiny, tiny, out_dir=str(tmp_path))
    grid.set_model(model)
    assert tuple(grid.grid().shape) == (3, 6 * 2, 3)
