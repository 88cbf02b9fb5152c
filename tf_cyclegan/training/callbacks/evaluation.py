"""`EvaluationCallback`: the evaluation figures of the model being trained, in TensorBoard."""

import os

import keras
import tensorflow as tf

from tf_cyclegan.choices import DIRECTIONS
from tf_cyclegan.evaluation.evaluate import evaluate
from tf_cyclegan.training.callbacks.periodic import is_due


class EvaluationCallback(keras.callbacks.Callback):
    """Runs `evaluate` every `every_n_epochs` epochs on the model's own generators and logs
    each figure to TensorBoard (`eval/<direction>/<name>`, in `logs/eval`).

    Args:
        root: folder with testA/, testB/ (and testB_paired/).
        every_n_epochs: int.
        log_dir: TensorBoard folder, or None.
        max_images: test images per folder (a subset keeps it quick).
        features: feature extractor for FID/KID, or None to skip them.
    """

    LOG_SUBDIR = "eval"  # under log_dir

    def __init__(self, root, every_n_epochs, log_dir=None, max_images=50, features=None):
        super().__init__()
        self.root = root
        self.every_n_epochs = every_n_epochs
        self.max_images = max_images
        self.features = features
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, self.LOG_SUBDIR)) if log_dir else None

    def on_epoch_end(self, epoch, logs=None):
        if not is_due(epoch + 1, self.every_n_epochs):
            return
        from tf_cyclegan.inference.loading import KerasTranslator

        # The generators translation uses by default: the averaged ones where the model keeps them.
        directions = getattr(self.model, "directions", DIRECTIONS)  # a CUT model: a2b only
        translators = {direction: KerasTranslator(self.model.get_generator(direction)) for direction in directions}
        report = evaluate(translators, self.root, directions=directions, features=self.features, kid_subsets=20,
                          progress=False, max_images=self.max_images)
        scalars = {}
        for direction, result in report.items():
            for name in ("fid", "cycle_l1"):
                if name in result:
                    scalars[f"eval/{direction}/{name}"] = result[name]
            if "kid" in result:
                scalars[f"eval/{direction}/kid"] = result["kid"]["mean"]
            for name, value in result.get("paired", {}).items():
                scalars[f"eval/{direction}/paired_{name}"] = value
        # Written to TensorBoard only: the CSV log fixes its columns at the first epoch.
        if self.writer is not None:
            with self.writer.as_default():
                for tag, value in scalars.items():
                    tf.summary.scalar(tag, value, step=epoch + 1)
            self.writer.flush()
