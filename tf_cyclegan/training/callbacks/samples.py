"""`SampleGrid`: translations of fixed test images, as PNG grids and TensorBoard images."""

import os

import keras
import tensorflow as tf

from tf_cyclegan.choices import DIRECTIONS
from tf_cyclegan.data.images import to_uint8
from tf_cyclegan.files import write_bytes
from tf_cyclegan.inference.translate import translate
from tf_cyclegan.training.callbacks.periodic import is_due


class SampleGrid(keras.callbacks.Callback):
    """Translates fixed test images: a PNG grid after every epoch, and a TensorBoard image
    every `every_n_steps` steps (and at every epoch's end).

    Each row is one sample: real A, fake B, cycled A | real B, fake A, cycled B for a model
    that translates both ways (CycleGAN); real A, fake B | real B, same B (the generator on
    an image of its own target domain, which it should leave alone) for one that translates
    A to B only (CUT, FastCUT). The TensorBoard tag names the columns. All samples must
    share one size (they are resized to the first one's size). Where the
    model keeps averaged generators (`ema_decay`), the PNG shows theirs (what translation
    uses) and TensorBoard shows both: the trained generators' grid under `TAG`, the averaged
    ones' under `TAG_AVERAGED` (a one-way model's: `ONE_WAY_TAG`, `ONE_WAY_TAG_AVERAGED`).

    Args:
        images_a, images_b: lists of [-1, 1] float images (H, W, 3).
        out_dir: folder for `epoch_NNN.png`.
        log_dir: TensorBoard folder, or None for no image summary.
        progress: `RunProgress` giving the global step for TensorBoard, or None (the epoch).
        every_n_steps: int, 0 for epoch ends only.
    """

    TAG = "samples/realA_fakeB_cycledA_realB_fakeA_cycledB"
    TAG_AVERAGED = "samples_averaged/realA_fakeB_cycledA_realB_fakeA_cycledB"
    ONE_WAY_TAG = "samples/realA_fakeB_realB_sameB"
    ONE_WAY_TAG_AVERAGED = "samples_averaged/realA_fakeB_realB_sameB"
    LOG_SUBDIR = "samples"  # under log_dir
    # The grids' names, one definition for the writer and for `--restart`'s cleaner.
    FILE_PATTERN = r"epoch_\d{3,}\.png"

    @staticmethod
    def file_name(epoch):
        """`epoch_NNN.png` for the 1-based `epoch`, as `FILE_PATTERN` matches."""
        return f"epoch_{epoch:03d}.png"

    def __init__(self, images_a, images_b, out_dir, log_dir=None, progress=None, every_n_steps=0):
        super().__init__()
        self.progress = progress
        self.every_n_steps = every_n_steps
        size = images_a[0].shape[:2]
        self.images_a = tf.stack([tf.image.resize(image, size) for image in images_a])
        self.images_b = tf.stack([tf.image.resize(image, size) for image in images_b])
        self.out_dir = out_dir
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, self.LOG_SUBDIR)) if log_dir else None

    def grid(self, weights="auto"):
        """The grid of the generators `weights` names (`CycleGAN.get_generator`), as uint8."""
        gen_a2b = self.model.get_generator("a2b", weights)
        fake_b = translate(gen_a2b, self.images_a)
        if self._one_way:
            columns = (self.images_a, fake_b, self.images_b, translate(gen_a2b, self.images_b))
        else:
            gen_b2a = self.model.get_generator("b2a", weights)
            fake_a = translate(gen_b2a, self.images_b)
            columns = (self.images_a, fake_b, translate(gen_b2a, fake_b),
                       self.images_b, fake_a, translate(gen_a2b, fake_a))
        rows = [tf.concat(row, axis=1) for row in zip(*columns)]
        return to_uint8(tf.concat(rows, axis=0))

    @property
    def _one_way(self):
        return tuple(getattr(self.model, "directions", DIRECTIONS)) == ("a2b",)

    @property
    def _averaged(self):
        return getattr(self.model, "ema_decay", None) is not None

    def _log(self, grid, step):
        """`grid` (the default generators') and, beside averaged ones, the trained ones' grid."""
        if self.writer is not None:
            with self.writer.as_default():
                tag, tag_averaged = ((self.ONE_WAY_TAG, self.ONE_WAY_TAG_AVERAGED) if self._one_way
                                     else (self.TAG, self.TAG_AVERAGED))
                if self._averaged:
                    tf.summary.image(tag_averaged, grid[None], step=step)
                    tf.summary.image(tag, self.grid("raw")[None], step=step)
                else:
                    tf.summary.image(tag, grid[None], step=step)
            self.writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        if self.progress and is_due(self.progress.global_step, self.every_n_steps):
            self._log(self.grid(), self.progress.global_step)

    def on_epoch_end(self, epoch, logs=None):
        grid = self.grid()
        # Whole or not at all: a kill while writing leaves no half PNG under the grid's name.
        write_bytes(os.path.join(self.out_dir, self.file_name(epoch + 1)), tf.io.encode_png(grid).numpy())
        step = self.progress.global_step if self.progress else epoch + 1
        if not is_due(step, self.every_n_steps):
            self._log(grid, step)
