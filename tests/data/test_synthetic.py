import numpy as np
import tensorflow as tf

from tf_cyclegan.data.synthetic import make_demo_data, make_scene, restyle


def _read(path):
    return tf.io.decode_png(tf.io.read_file(path)).numpy()


def test_writes_the_split_layout_deterministically(tmp_path):
    first = make_demo_data(tmp_path / "one", num_train=3, num_test=2, size=24, seed=7)
    second = make_demo_data(tmp_path / "two", num_train=3, num_test=2, size=24, seed=7)
    assert {k: len(v) for k, v in first.items()} == {
        "trainA": 3, "trainB": 3, "testA": 2, "testB": 2, "testB_paired": 2}
    for split in first:
        for a, b in zip(first[split], second[split]):
            np.testing.assert_array_equal(_read(a), _read(b))
    assert _read(first["trainA"][0]).shape == (24, 24, 3)


def test_paired_folder_holds_the_restyled_test_images_and_b_is_unpaired(tmp_path):
    written = make_demo_data(tmp_path, num_train=3, num_test=3, size=24, seed=2)
    for path_a, path_paired in zip(written["testA"], written["testB_paired"]):
        np.testing.assert_array_equal(restyle(_read(path_a)), _read(path_paired))
    for path_a, path_b in zip(written["trainA"], written["trainB"]):
        assert not np.array_equal(restyle(_read(path_a)), _read(path_b))


def test_restyle_commutes_with_flip_and_with_crop_away_from_the_crop_border():
    scene = np.round(make_scene(np.random.default_rng(0), 48) * 255).astype(np.uint8)
    np.testing.assert_array_equal(restyle(scene[:, ::-1]), restyle(scene)[:, ::-1])
    crop = scene[5:37, 9:41]
    np.testing.assert_array_equal(restyle(crop)[1:-1, 1:-1], restyle(scene)[6:36, 10:40])


def test_restyle_rotates_hue_and_outlines_boundaries():
    image = np.zeros((6, 6, 3), np.uint8)
    image[:] = (250, 240, 200)
    image[2:4, 2:4] = (200, 40, 10)  # a red square
    out = restyle(image)
    np.testing.assert_array_equal(out[0, 0], (200, 250, 240))  # background: (r, g, b) -> (b, r, g)
    assert out[2, 2].max() < 60 and out[1, 1].max() < 70  # both sides of the boundary are dark
    assert np.array_equal(out[5, 5], out[0, 0])


def test_sizes_and_counts_are_bounded_before_anything_is_written(tmp_path):
    import pytest

    from tf_cyclegan.data.synthetic import MAX_COUNT, MAX_SIZE

    for arguments, message in (
        ({"size": 100_000}, "size must be at most 2048. Received: 100000"),
        ({"size": MAX_SIZE + 4}, f"size must be at most {MAX_SIZE}. Received: {MAX_SIZE + 4}"),
        ({"size": 30}, "size must be a multiple of 4 .* Received: 30"),
        ({"num_train": MAX_COUNT + 1}, f"num_train must be at most {MAX_COUNT}. Received: {MAX_COUNT + 1}"),
        ({"num_test": -1}, "num_test must not be negative. Received: -1"),
        ({"num_train": True}, "num_train must be an integer. Received: True"),
        ({"seed": -1}, "seed must not be negative. Received: -1"),
    ):
        with pytest.raises(ValueError, match=message):
            make_demo_data(tmp_path / "d", **arguments)
    assert not (tmp_path / "d").exists()


def test_images_are_written_one_at_a_time(tmp_path, monkeypatch):
    """Memory holds one scene, whatever the counts: each is written before the next is drawn."""
    from tf_cyclegan.data import synthetic

    drawn, written = [], []
    draw, write = synthetic.make_scene, synthetic._write_png
    monkeypatch.setattr(synthetic, "make_scene", lambda *a: drawn.append(len(written)) or draw(*a))
    monkeypatch.setattr(synthetic, "_write_png", lambda *a: written.append(a[0]) or write(*a))
    make_demo_data(tmp_path, num_train=2, num_test=2, size=8)
    # Before each scene is drawn, all earlier ones are on disk (each testA scene writes two files).
    assert drawn == [0, 1, 2, 3, 4, 6, 8, 9]
