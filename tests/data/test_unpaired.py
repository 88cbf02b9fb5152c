import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import image_folder

from tf_cyclegan.data.images import to_uint8
from tf_cyclegan.data.unpaired import DataPosition, make_tfds_dataset, make_unpaired_dataset


def test_batches_have_crop_shape_range_and_epoch_length(tmp_path):
    dir_a, dir_b = image_folder(tmp_path, "trainA", 5), image_folder(tmp_path, "trainB", 3, seed=1)
    ds = make_unpaired_dataset(dir_a, dir_b, load_size=36, crop_size=32, batch_size=1)
    batches = list(ds)
    assert len(batches) == 5  # max(|A|, |B|)
    for real_a, real_b in batches:
        for image in (real_a, real_b):
            assert image.shape == (1, 32, 32, 3) and image.dtype == tf.float32
            assert -1.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0
    # Every A image is seen once per epoch; B (the smaller domain) repeats.
    assert len(list(make_unpaired_dataset(dir_a, dir_b, 36, 32, batch_size=2))) == 2


@pytest.mark.parametrize("global_seed", [None, 0])
def test_augmentation_is_fresh_each_epoch_with_cache(tmp_path, global_seed):
    # Training sets a global seed; each epoch is a new pass over the dataset.
    if global_seed is not None:
        keras.utils.set_random_seed(global_seed)
    dir_a = image_folder(tmp_path, "a", 1, size=(64, 64))
    ds = make_unpaired_dataset(dir_a, dir_a, load_size=64, crop_size=32, cache=True, seed=0)
    crops = [next(iter(ds))[0].numpy() for _ in range(6)]
    assert len({crop.tobytes() for crop in crops}) >= 4


def test_the_smaller_domain_is_reshuffled(tmp_path):
    dir_a = image_folder(tmp_path, "a", 12, size=(8, 8))
    dir_b = image_folder(tmp_path, "b", 12, size=(8, 8), seed=3)
    ds = make_unpaired_dataset(dir_a, dir_b, load_size=8, crop_size=8, flip=False, seed=1)
    first = [a.numpy() for a, _ in ds]
    second = [a.numpy() for a, _ in ds]
    assert not all(np.array_equal(x, y) for x, y in zip(first, second))
    assert sorted(x.sum() for x in first) == pytest.approx(sorted(x.sum() for x in second))


def _epoch(dataset):
    return [(a.numpy(), b.numpy()) for a, b in dataset]


def test_a_seeked_pass_reads_exactly_that_epoch_from_that_batch(tmp_path):
    dir_a, dir_b = image_folder(tmp_path, "a", 5), image_folder(tmp_path, "b", 3, seed=1)
    position = DataPosition()
    dataset = make_unpaired_dataset(dir_a, dir_b, 36, 32, seed=7, position=position)
    epochs = [_epoch(dataset) for _ in range(3)]
    assert int(position.epoch.numpy()) == 3 and position.steps_per_epoch == 5
    assert not np.array_equal(epochs[1][0][0], epochs[2][0][0])
    # A new pipeline, as in a resumed process, and one that decodes files on every access.
    resumed_position = DataPosition()
    resumed = make_unpaired_dataset(dir_a, dir_b, 36, 32, seed=7, position=resumed_position, cache=False)
    resumed_position.seek(2, 3)
    rest_of_epoch = _epoch(resumed)
    assert len(rest_of_epoch) == 2
    for (a, b), (expected_a, expected_b) in zip(rest_of_epoch, epochs[2][3:]):
        np.testing.assert_array_equal(a, expected_a)
        np.testing.assert_array_equal(b, expected_b)
    assert len(_epoch(resumed)) == 5  # the next pass is a whole epoch again


def test_shards_split_every_global_batch_between_them(tmp_path):
    dir_a, dir_b = image_folder(tmp_path, "a", 8), image_folder(tmp_path, "b", 5, seed=1)
    whole = _epoch(make_unpaired_dataset(dir_a, dir_b, 36, 32, batch_size=4, seed=3))
    # Two machines, two replicas each: per-replica batches of 1, in the global batch's order.
    shards = [_epoch(make_unpaired_dataset(dir_a, dir_b, 36, 32, batch_size=2, seed=3, num_shards=2,
                                           shard_index=i, replica_batch_size=1)) for i in range(2)]
    assert len(whole) == 2 and [len(shard) for shard in shards] == [4, 4]
    for step, (global_a, global_b) in enumerate(whole):
        parts = shards[0][2 * step:2 * step + 2] + shards[1][2 * step:2 * step + 2]
        np.testing.assert_array_equal(np.concatenate([a for a, _ in parts]), global_a)
        np.testing.assert_array_equal(np.concatenate([b for _, b in parts]), global_b)


def test_the_length_is_declared_unless_the_caller_moves_the_position(tmp_path):
    # fit reads an epoch's steps from it: without it, every epoch runs into the end of its pass.
    dir_a, dir_b = image_folder(tmp_path, "a", 8), image_folder(tmp_path, "b", 5, seed=1)
    assert int(make_unpaired_dataset(dir_a, dir_b, 36, 32, batch_size=2).cardinality()) == 4
    assert int(make_unpaired_dataset(dir_a, dir_b, 36, 32, batch_size=2, max_steps=3).cardinality()) == 3
    shard = make_unpaired_dataset(dir_a, dir_b, 36, 32, batch_size=2, num_shards=2, shard_index=1,
                                  replica_batch_size=1)
    assert int(shard.cardinality()) == len(list(shard)) == 4
    # A resumable pipeline (its position moved by the caller: a resumed epoch is shorter) declares nothing.
    position = DataPosition()
    resumable = make_unpaired_dataset(dir_a, dir_b, 36, 32, batch_size=2, position=position)
    assert int(resumable.cardinality()) == tf.data.UNKNOWN_CARDINALITY


def test_max_steps_caps_an_epoch(tmp_path):
    folder = image_folder(tmp_path, "a", 6)
    assert len(list(make_unpaired_dataset(folder, folder, 36, 32, batch_size=2, max_steps=2))) == 2


def test_empty_or_missing_folder_stops_with_its_name(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        make_unpaired_dataset(tmp_path / "empty", tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing_b"):
        make_unpaired_dataset(image_folder(tmp_path, "a", 1), tmp_path / "missing_b")


def test_images_smaller_than_the_crop_are_resized_up(tmp_path):
    folder = image_folder(tmp_path, "small", 2, size=(10, 7))
    real_a, _ = next(iter(make_unpaired_dataset(folder, folder, load_size=36, crop_size=32)))
    assert real_a.shape == (1, 32, 32, 3)


def test_tfds_source_gives_the_same_pipeline():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        ds = make_tfds_dataset("cycle_gan/horse2zebra", load_size=36, crop_size=32, batch_size=2)
        batches = list(ds)
    assert len(batches) == 2
    real_a, real_b = batches[0]
    assert real_a.shape == (2, 32, 32, 3) and real_b.dtype == tf.float32
    assert float(tf.reduce_min(real_a)) >= -1 and float(tf.reduce_max(real_b)) <= 1




@pytest.mark.parametrize("cache", [True, False])
def test_animated_webp_palette_bmp_and_a_fifo_train_as_pillow_shows_them(tmp_path, cache, caplog):
    """The files that crashed (animated WebP), corrupted (palette BMP) or blocked (FIFO) the
    pipeline: the first two train as the pixels Pillow shows, the FIFO is skipped by name."""
    import logging

    from conftest import fifo_nobody_may_read, images_that_crashed_or_misread

    folder = tmp_path / "a"
    pixels = images_that_crashed_or_misread(folder, prefix="0_")
    expected = [pixels["animated"], pixels["palette"]]
    with fifo_nobody_may_read(folder / "2_pipe.png"), caplog.at_level(logging.WARNING):
        dataset = make_unpaired_dataset(folder, folder, load_size=16, crop_size=16, flip=False, shuffle=False,
                                        cache=cache, seed=0)
        real_a = [a[0].numpy() for a, _ in dataset]
    assert "2_pipe.png: not a regular file (a FIFO)" in caplog.text
    assert len(real_a) == 2
    for image, pixels in zip(real_a, expected):
        np.testing.assert_array_equal(to_uint8(image).numpy(), pixels)


def test_an_unknown_tfds_name_is_one_line_with_the_closest_names():
    with pytest.raises(ValueError) as caught:
        make_tfds_dataset("cycle_gn/horse2zebra", load_size=36, crop_size=32, download=False)
    message = str(caught.value)
    assert "\n" not in message and "'cycle_gn/horse2zebra'" in message
    assert "did you mean 'cycle_gan/horse2zebra'" in message


def _raises_like_tfds(module):
    """A `tfds.builder` stand-in failing as TFDS does when a dataset's module is missing: the
    ImportError re-raised with a longer message, its name only on the cause."""
    def builder(*args, **kwargs):
        try:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        except ImportError as error:
            raise ModuleNotFoundError(f"{error}\nFailed importing {module}. This likely means that the dataset "
                                      f"requires additional dependencies (usually with `pip install {module}`).") \
                from error
    return builder


@pytest.mark.parametrize("module, package", [("cv2", "opencv-python"), ("pydub", "pydub")])
def test_a_missing_tfds_dependency_names_the_module_and_its_pip_package(monkeypatch, module, package):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tfds, "builder", _raises_like_tfds(module))
    with pytest.raises(ImportError) as caught:
        make_tfds_dataset("cycle_gan/horse2zebra", load_size=36, crop_size=32)
    message = str(caught.value)
    assert "\n" not in message and f"module '{module}'" in message and message.endswith(f"pip install {package}")
