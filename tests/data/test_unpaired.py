import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_cyclegan.data.images import decode_image, list_images, read_image, to_minus_one_one
from tf_cyclegan.data.unpaired import DataPosition, make_tfds_dataset, make_unpaired_dataset, resize_to_load_size


def _write(path, image, fmt="png"):
    image = tf.convert_to_tensor(image)
    encoded = tf.io.encode_png(image) if fmt == "png" else tf.io.encode_jpeg(image)
    tf.io.write_file(str(path), encoded)
    return str(path)


def _folder(root, name, count, size=(40, 50), seed=0):
    folder = root / name
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        _write(folder / f"{i}.png", rng.integers(0, 256, size + (3,), dtype=np.uint8))
    return folder


def test_batches_have_crop_shape_range_and_epoch_length(tmp_path):
    dir_a, dir_b = _folder(tmp_path, "trainA", 5), _folder(tmp_path, "trainB", 3, seed=1)
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
    dir_a = _folder(tmp_path, "a", 1, size=(64, 64))
    ds = make_unpaired_dataset(dir_a, dir_a, load_size=64, crop_size=32, cache=True, seed=0)
    crops = [next(iter(ds))[0].numpy() for _ in range(6)]
    assert len({crop.tobytes() for crop in crops}) >= 4


def test_the_smaller_domain_is_reshuffled(tmp_path):
    dir_a = _folder(tmp_path, "a", 12, size=(8, 8))
    dir_b = _folder(tmp_path, "b", 12, size=(8, 8), seed=3)
    ds = make_unpaired_dataset(dir_a, dir_b, load_size=8, crop_size=8, flip=False, seed=1)
    first = [a.numpy() for a, _ in ds]
    second = [a.numpy() for a, _ in ds]
    assert not all(np.array_equal(x, y) for x, y in zip(first, second))
    assert sorted(x.sum() for x in first) == pytest.approx(sorted(x.sum() for x in second))


def _epoch(dataset):
    return [(a.numpy(), b.numpy()) for a, b in dataset]


def test_a_seeked_pass_reads_exactly_that_epoch_from_that_batch(tmp_path):
    dir_a, dir_b = _folder(tmp_path, "a", 5), _folder(tmp_path, "b", 3, seed=1)
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
    dir_a, dir_b = _folder(tmp_path, "a", 8), _folder(tmp_path, "b", 5, seed=1)
    whole = _epoch(make_unpaired_dataset(dir_a, dir_b, 36, 32, batch_size=4, seed=3))
    # Two machines, two replicas each: per-replica batches of 1, in the global batch's order.
    shards = [_epoch(make_unpaired_dataset(dir_a, dir_b, 36, 32, batch_size=2, seed=3, num_shards=2,
                                           shard_index=i, replica_batch_size=1)) for i in range(2)]
    assert len(whole) == 2 and [len(shard) for shard in shards] == [4, 4]
    for step, (global_a, global_b) in enumerate(whole):
        parts = shards[0][2 * step:2 * step + 2] + shards[1][2 * step:2 * step + 2]
        np.testing.assert_array_equal(np.concatenate([a for a, _ in parts]), global_a)
        np.testing.assert_array_equal(np.concatenate([b for _, b in parts]), global_b)


def test_max_steps_caps_an_epoch(tmp_path):
    folder = _folder(tmp_path, "a", 6)
    assert len(list(make_unpaired_dataset(folder, folder, 36, 32, batch_size=2, max_steps=2))) == 2


def test_decodes_grey_alpha_sixteen_bit_jpeg_bmp_and_gif(tmp_path):
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4, 1) * 16
    rgba = np.dstack([np.full((4, 4, 3), 200, np.uint8), np.zeros((4, 4, 1), np.uint8)])
    deep = (np.arange(16, dtype=np.uint16).reshape(4, 4, 1) * 4096).repeat(3, axis=2)
    cases = {
        "grey.png": (tf.io.encode_png(grey), np.repeat(grey, 3, axis=2)),
        "rgba.png": (tf.io.encode_png(rgba), rgba[..., :3]),
        "deep.png": (tf.io.encode_png(deep), (deep >> 8).astype(np.uint8)),
    }
    for name, (encoded, expected) in cases.items():
        np.testing.assert_array_equal(decode_image(encoded).numpy(), expected, err_msg=name)
    jpeg = decode_image(tf.io.encode_jpeg(np.full((8, 8, 3), 120, np.uint8), quality=100)).numpy()
    assert jpeg.shape == (8, 8, 3) and np.abs(jpeg.astype(int) - 120).max() <= 2
    # A 2x1 24-bit BMP and a 1x1 GIF, written byte by byte (TF encodes neither).
    bmp = (b"BM" + (62).to_bytes(4, "little") + b"\0\0\0\0" + (54).to_bytes(4, "little")
           + (40).to_bytes(4, "little") + (2).to_bytes(4, "little") + (1).to_bytes(4, "little")
           + (1).to_bytes(2, "little") + (24).to_bytes(2, "little") + b"\0" * 24
           + bytes([255, 0, 0, 0, 0, 255]) + b"\0\0")
    np.testing.assert_array_equal(decode_image(bmp).numpy(), [[[0, 0, 255], [255, 0, 0]]])
    gif = (b"GIF89a" + bytes.fromhex("0100 0100 80 00 00") + bytes.fromhex("000000 ffffff")
           + bytes.fromhex("21f904 01 0000 00 00") + bytes.fromhex("2c 0000 0000 0100 0100 00")
           + bytes.fromhex("02 02 4401 00") + b";")
    assert decode_image(gif).numpy().shape == (1, 1, 3)


def test_corrupt_and_non_image_files_are_skipped_with_a_warning_naming_them(tmp_path, caplog):
    folder = _folder(tmp_path, "trainA", 2)
    (folder / "notes.png").write_text("not an image")
    good = (folder / "0.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "readme.txt").write_text("ignored: not an image extension")
    with caplog.at_level(logging.WARNING):
        paths = list_images(folder)
    assert [os.path.basename(p) for p in paths] == ["0.png", "1.png"]
    assert "notes.png" in caplog.text and "truncated.png" in caplog.text
    assert "readme.txt" not in caplog.text


def test_empty_or_missing_folder_stops_with_its_name(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        make_unpaired_dataset(tmp_path / "empty", tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing_b"):
        make_unpaired_dataset(_folder(tmp_path, "a", 1), tmp_path / "missing_b")


def test_images_smaller_than_the_crop_are_resized_up(tmp_path):
    folder = _folder(tmp_path, "small", 2, size=(10, 7))
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


def _photo_with_orientation(path, orientation):
    """A 4x6 JPEG-free test image (PNG keeps the pixels exact) whose EXIF says `orientation`."""
    from PIL import Image

    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 2
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes())
    return pixels


@pytest.mark.parametrize("orientation, turn", [
    (1, lambda p: p),
    (2, lambda p: p[:, ::-1]),
    (3, lambda p: p[::-1, ::-1]),
    (4, lambda p: p[::-1]),
    (5, lambda p: p.transpose(1, 0, 2)),
    (6, lambda p: np.rot90(p, k=-1)),  # stored rotated; viewed turned 90 degrees clockwise
    (7, lambda p: np.rot90(p, k=-1)[::-1]),
    (8, lambda p: np.rot90(p, k=1)),
])
@pytest.mark.parametrize("cache", [True, False])
def test_exif_orientation_is_applied_as_pillow_shows_the_photo(tmp_path, orientation, turn, cache):
    from PIL import Image, ImageOps

    for domain in ("a", "b"):
        os.makedirs(tmp_path / domain)
        pixels = _photo_with_orientation(tmp_path / domain / "photo.png", orientation)
    with Image.open(tmp_path / "a" / "photo.png") as photo:
        viewed = np.asarray(ImageOps.exif_transpose(photo))  # what every viewer shows
    np.testing.assert_array_equal(viewed, turn(pixels))
    np.testing.assert_array_equal(read_image(tmp_path / "a" / "photo.png").numpy(), viewed)
    # Through the training pipeline: resized to a square, not cropped, not flipped.
    dataset = make_unpaired_dataset(tmp_path / "a", tmp_path / "b", load_size=8, crop_size=8, flip=False,
                                    cache=cache, seed=0)
    real_a, _ = next(iter(dataset))
    expected = to_minus_one_one(resize_to_load_size(tf.constant(viewed), 8)).numpy()
    np.testing.assert_allclose(real_a[0].numpy(), expected, atol=1e-6)


def test_webp_files_are_read(tmp_path):
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.webp", lossless=True)
    assert list_images(tmp_path) == [str(tmp_path / "x.webp")]
    np.testing.assert_array_equal(read_image(tmp_path / "x.webp").numpy(), pixels)


def test_a_jpeg_photos_orientation_is_read_from_its_exif_block_without_opening_the_image(tmp_path, monkeypatch):
    from PIL import Image, ImageOps

    pixels = np.zeros((16, 40, 3), np.uint8)
    pixels[:, :8] = 255  # a white band on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: view rotated 90 degrees clockwise
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    with Image.open(tmp_path / "phone.jpg") as photo:
        viewed = np.asarray(ImageOps.exif_transpose(photo)).astype(int)
    # Pillow would refuse to open a photo this size if it were huge; the tag is read without it.
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: (_ for _ in ()).throw(Image.DecompressionBombError()))
    ours = read_image(tmp_path / "phone.jpg").numpy().astype(int)
    assert ours.shape == viewed.shape == (40, 16, 3)
    assert np.abs(ours - viewed).max() <= 8  # two JPEG decoders
    assert ours[:8].mean() > 200 and ours[-8:].mean() < 50  # the band is at the top when viewed
