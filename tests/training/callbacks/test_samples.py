import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_cyclegan

from tf_cyclegan.training.callbacks.progress import RunProgress
from tf_cyclegan.training.callbacks.samples import SampleGrid


@pytest.fixture(scope="module")
def model():
    model = tiny_cyclegan()
    model.build((1, 32, 32, 3))
    return model


def test_the_sample_grid_takes_test_images_smaller_than_the_generator_allows(model, tmp_path):
    tiny = [np.zeros((3, 2, 3), np.float32)]
    grid = SampleGrid(tiny, tiny, out_dir=str(tmp_path))
    grid.set_model(model)
    assert tuple(grid.grid().shape) == (3, 6 * 2, 3)


def _images(count, size, seed):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (*size, 3)).astype(np.float32) for _ in range(count)]


def test_a_png_grid_each_epoch_and_tensorboard_images_on_due_steps(model, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    progress = RunProgress(steps_per_epoch=3)
    # Samples of other sizes are resized to the first one's.
    grid = SampleGrid(_images(2, (16, 12), 0), _images(1, (20, 20), 1) + _images(1, (16, 12), 2),
                      out_dir=str(tmp_path / "samples"), log_dir=str(tmp_path / "logs"), progress=progress,
                      every_n_steps=2)
    grid.set_model(model)
    for epoch in range(2):
        for batch in range(3):
            progress.on_train_batch_end(batch)
            grid.on_train_batch_end(batch)
        progress.on_epoch_end(epoch)
        grid.on_epoch_end(epoch)
    assert sorted(os.listdir(tmp_path / "samples")) == ["epoch_001.png", "epoch_002.png"]
    png = tf.io.decode_png(tf.io.read_file(str(tmp_path / "samples" / "epoch_002.png"))).numpy()
    assert png.shape == (2 * 16, 6 * 12, 3)
    # Real A, then fake B: the first column block is the first A sample itself.
    np.testing.assert_array_equal(png[:16, :12], grid.grid().numpy()[:16, :12])
    events = EventAccumulator(str(tmp_path / "logs" / "samples"), size_guidance={"tensors": 0}).Reload()
    # Steps 2, 4 and 6 (due) and 3, the end of the first epoch; epoch 2 ends at step 6, logged once.
    assert [event.step for event in events.Tensors(SampleGrid.TAG)] == [2, 3, 4, 6]


def test_averaged_generators_fill_the_png_and_tensorboard_shows_both_grids(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = tiny_cyclegan(ema_decay=0.9)
    model.build((1, 32, 32, 3))
    for weight in model.gen_a2b_ema.weights:  # averaged generators that translate differently
        weight.assign(np.asarray(weight) * 1.5)
    grid = SampleGrid(_images(1, (16, 16), 0), _images(1, (16, 16), 1), out_dir=str(tmp_path / "samples"),
                      log_dir=str(tmp_path / "logs"))
    grid.set_model(model)
    grid.on_epoch_end(0)
    png = tf.io.decode_png(tf.io.read_file(str(tmp_path / "samples" / "epoch_001.png"))).numpy()
    np.testing.assert_array_equal(png, grid.grid("averaged").numpy())
    assert np.abs(grid.grid("raw").numpy().astype(int) - png).max() > 0
    events = EventAccumulator(str(tmp_path / "logs" / "samples"), size_guidance={"tensors": 0}).Reload()
    assert sorted(events.Tags()["tensors"]) == sorted([SampleGrid.TAG, SampleGrid.TAG_AVERAGED])
