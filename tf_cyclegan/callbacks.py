"""Callbacks that make a run watchable: sample grids and an atomic model save."""

import os

import keras
import tensorflow as tf

from tf_cyclegan.data import to_uint8
from tf_cyclegan.inference import translate


class SampleGrid(keras.callbacks.Callback):
    """After every epoch, translates fixed test images and writes a PNG grid and a TB image.

    Each row is one sample: real A, fake B, cycled A | real B, fake A, cycled B.
    All samples must share one size (they are resized to the first one's size).

    Args:
        images_a, images_b: lists of [-1, 1] float images (H, W, 3).
        out_dir: folder for `epoch_NNN.png`.
        log_dir: TensorBoard folder, or None for no image summary.
    """

    def __init__(self, images_a, images_b, out_dir, log_dir=None):
        super().__init__()
        size = images_a[0].shape[:2]
        self.images_a = tf.stack([tf.image.resize(image, size) for image in images_a])
        self.images_b = tf.stack([tf.image.resize(image, size) for image in images_b])
        self.out_dir = out_dir
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "samples")) if log_dir else None
        os.makedirs(out_dir, exist_ok=True)

    def grid(self):
        model = self.model
        fake_b = translate(model.gen_a2b, self.images_a)
        cycled_a = translate(model.gen_b2a, fake_b)
        fake_a = translate(model.gen_b2a, self.images_b)
        cycled_b = translate(model.gen_a2b, fake_a)
        rows = [
            tf.concat([a, b, c, d, e, f], axis=1)
            for a, b, c, d, e, f in zip(self.images_a, fake_b, cycled_a, self.images_b, fake_a, cycled_b)
        ]
        return to_uint8(tf.concat(rows, axis=0))

    def on_epoch_end(self, epoch, logs=None):
        grid = self.grid()
        path = os.path.join(self.out_dir, f"epoch_{epoch + 1:03d}.png")
        tf.io.write_file(path, tf.io.encode_png(grid))
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image("samples/realA_fakeB_cycledA_realB_fakeA_cycledB", grid[None], step=epoch + 1)
            self.writer.flush()


def save_model_atomically(model, path):
    """Saves to a temporary file beside `path`, then renames: a crash never leaves half a file."""
    tmp_path = f"{path}.tmp.keras"
    model.save(tmp_path)
    os.replace(tmp_path, path)


class SaveModelEachEpoch(keras.callbacks.Callback):
    """Keeps `path` holding the model as of the last finished epoch, replaced atomically."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        save_model_atomically(self.model, self.path)


