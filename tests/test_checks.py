import re

import pytest

from tf_cyclegan.data.unpaired import make_tfds_dataset, make_unpaired_dataset
from tf_cyclegan.training.config import ConfigError, load_config

GOOD = {"load_size": 36, "crop_size": 32, "batch_size": 1}


@pytest.mark.parametrize("key, value, message", [
    ("crop_size", 30, "crop_size must be a multiple of 4"),
    ("crop_size", 40, "crop_size must not exceed load_size"),
    ("batch_size", 0, "batch_size must be positive"),
    ("load_size", -36, "load_size must be positive"),
])
def test_the_data_functions_refuse_what_the_config_refuses_in_the_same_words(tmp_path, key, value, message):
    """One check, two doors: `make_unpaired_dataset(...)` and `--set data.<key>=...`. The folders
    do not exist: the sizes are checked first, before any file is read."""
    with pytest.raises(ValueError, match=message) as from_the_api:
        make_unpaired_dataset(tmp_path / "no_a", tmp_path / "no_b", **dict(GOOD, **{key: value}))
    with pytest.raises(ConfigError) as from_the_config:
        load_config(sets=[f"data.{k}={v}" for k, v in dict(GOOD, **{key: value}).items()])
    assert key in str(from_the_api.value) and str(value) in str(from_the_api.value).split("Received: ")[1]
    assert str(from_the_config.value) == re.sub(r"\b(load_size|crop_size|batch_size)\b", r"data.\1",
                                                str(from_the_api.value))


@pytest.mark.parametrize("key, value", [
    ("load_size", "36"), ("crop_size", 32.0), ("batch_size", True), ("batch_size", None), ("crop_size", "all"),
])
def test_a_size_of_the_wrong_type_is_refused_at_construction_with_its_value(tmp_path, key, value):
    with pytest.raises(ValueError, match=f"{key} must be .*" + re.escape(f"Received: {value!r}")):
        make_unpaired_dataset(tmp_path / "no_a", tmp_path / "no_b", **dict(GOOD, **{key: value}))
    with pytest.raises(ValueError, match=f"{key} must be .*" + re.escape(f"Received: {value!r}")):
        make_tfds_dataset("cycle_gan/horse2zebra", download=False, **dict(GOOD, **{key: value}))


def test_none_means_no_resize_or_no_crop_and_numpy_ints_are_ints(tmp_path):
    import numpy as np
    from conftest import image_folder

    folder = image_folder(tmp_path, "a", 2, size=(20, 24))
    uncropped = next(iter(make_unpaired_dataset(folder, folder, load_size=16, crop_size=None)))[0]
    as_stored = next(iter(make_unpaired_dataset(folder, folder, load_size=None, crop_size=None, cache=False)))[0]
    numpy_sizes = next(iter(make_unpaired_dataset(folder, folder, np.int64(16), np.int32(12), np.int64(2))))[0]
    assert (uncropped.shape, as_stored.shape, numpy_sizes.shape) == ((1, 16, 16, 3), (1, 20, 24, 3), (2, 12, 12, 3))


@pytest.mark.parametrize("sets, named", [
    (["data.load_size=100000"], "data.load_size must be at most 4096. Received: 100000"),
    (["data.load_size=8192", "data.crop_size=8192"], "data.load_size must be at most 4096. Received: 8192"),
    (["model.disc_num_layers=50"], "model.disc_num_layers must be at most 8. Received: 50"),
    (["model.disc_num_layers=4"], "data.crop_size must be .* at least 48 for model.disc_num_layers=4. Received: 32"),
    (["train.seed=-1"], "train.seed must not be negative. Received: -1"),
    (["train.seed=4294967296"], "train.seed must be at most 4294967295. Received: 4294967296"),
])
def test_a_number_no_step_could_run_with_is_refused_naming_its_key(sets, named):
    """Each of these once failed mid-run, or named another key, or no key at all."""
    with pytest.raises(ConfigError, match=named):
        load_config(sets=["data.load_size=36", "data.crop_size=32", *sets])


def test_the_data_functions_bound_the_sizes_as_the_config_does(tmp_path):
    with pytest.raises(ValueError, match="load_size must be at most 4096. Received: 100000"):
        make_unpaired_dataset(tmp_path / "no_a", tmp_path / "no_b", load_size=100000, crop_size=32)
