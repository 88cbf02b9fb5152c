"""`train_and_evaluate(config, run_dir)`: data, models, `fit`, and what a run leaves behind.

A run directory holds `config.yaml` (the resolved config), `logs/` (TensorBoard),
`log.csv`, `samples/epoch_NNN.png`, `model.keras` and, where the data has a paired
test set, `results.json` with the translation error next to the do-nothing baseline.
"""

import json
import logging
import os

import keras

from tf_cyclegan.callbacks import SampleGrid, SaveModelEachEpoch, save_model_atomically
from tf_cyclegan.config import ConfigError, dump_config
from tf_cyclegan.cyclegan import CycleGAN
from tf_cyclegan.data import list_images, load_image, make_tfds_dataset, make_unpaired_dataset
from tf_cyclegan.discriminator import build_patchgan_discriminator
from tf_cyclegan.evaluate import EvaluationCallback
from tf_cyclegan.fid import InceptionFeatures
from tf_cyclegan.generator import build_resnet_generator
from tf_cyclegan.paired_metrics import paired_translation_error
from tf_cyclegan.precision import set_precision
from tf_cyclegan.schedule import LinearDecay

logger = logging.getLogger(__name__)


def _train_folders(data):
    if data.root:
        return os.path.join(data.root, "trainA"), os.path.join(data.root, "trainB")
    if data.train_a:
        return data.train_a, data.train_b
    return None


def build_dataset(data, seed=None):
    """The training `tf.data.Dataset` of a `DataConfig` (folders or TFDS)."""
    options = dict(load_size=data.load_size, crop_size=data.crop_size, batch_size=data.batch_size,
                   flip=data.flip, cache=data.cache, seed=seed)
    folders = _train_folders(data)
    if folders:
        return make_unpaired_dataset(*folders, **options)
    if data.tfds:
        return make_tfds_dataset(data.tfds, data_dir=data.tfds_data_dir, **options)
    raise ConfigError("No training data: set data.root, data.train_a and data.train_b, or data.tfds")


def build_cyclegan(model_config, seed=None):
    """The four networks of a `ModelConfig`, wrapped in an uncompiled `CycleGAN`."""
    m = model_config

    def generator(name):
        return build_resnet_generator(filters=m.filters, num_residual_blocks=m.num_residual_blocks, name=name)

    def discriminator(name):
        return build_patchgan_discriminator(filters=m.disc_filters, num_layers=m.disc_layers, name=name)

    return CycleGAN(
        generator("gen_a2b"), generator("gen_b2a"), discriminator("disc_a"), discriminator("disc_b"),
        lambda_cycle=m.lambda_cycle, lambda_identity=m.lambda_identity, pool_size=m.pool_size,
        gan_mode=m.gan_mode, pool_seed=seed,
    )


def _sample_images(data, count):
    """Up to `count` test images per domain for the sample grid, or None without test folders."""
    if not data.root or count == 0:
        return None
    folders = [os.path.join(data.root, split) for split in ("testA", "testB")]
    if not all(os.path.isdir(folder) for folder in folders):
        return None
    return [[load_image(path) for path in list_images(folder)[:count]] for folder in folders]


def _check_writable(run_dir):
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise ConfigError(f"Run directory {run_dir!r} is not writable: {error.strerror}") from None


def train_and_evaluate(config, run_dir):
    """Trains a CycleGAN as `config` says, writing everything into `run_dir`.

    Returns:
        dict with the run directory, the final losses and, where the data has
        `testB_paired/`, the paired translation error (see `paired_translation_error`).
    """
    if config.train.seed is not None:
        keras.utils.set_random_seed(config.train.seed)
    # Everything that can fail on bad input happens before any network is built.
    dataset = build_dataset(config.data, seed=config.train.seed)
    if config.train.steps_per_epoch:
        dataset = dataset.take(config.train.steps_per_epoch)
    samples = _sample_images(config.data, config.data.num_samples)
    _check_writable(run_dir)
    dump_config(config, os.path.join(run_dir, "config.yaml"))

    policy = set_precision(config.train.precision)
    logger.info("Precision policy: %s", policy)
    try:
        return _train(config, run_dir, dataset, samples, policy)
    finally:
        # The policy is process-global; later models in this process start from float32.
        keras.mixed_precision.set_global_policy("float32")


def _train(config, run_dir, dataset, samples, policy):
    model = build_cyclegan(config.model, seed=config.train.seed)
    t = config.train
    model.compile(
        gen_optimizer=keras.optimizers.Adam(t.learning_rate, beta_1=t.beta_1),
        disc_optimizer=keras.optimizers.Adam(t.learning_rate, beta_1=t.beta_1),
        jit_compile=t.jit_compile,
    )
    log_dir = os.path.join(run_dir, "logs")
    model_path = os.path.join(run_dir, "model.keras")
    # LinearDecay first: it adds the learning rate to the logs the others write.
    callbacks = [
        LinearDecay(t.learning_rate, t.epochs, t.epochs_decay),
        keras.callbacks.TensorBoard(log_dir, write_graph=False),
        keras.callbacks.CSVLogger(os.path.join(run_dir, "log.csv")),
        SaveModelEachEpoch(model_path),
    ]
    if config.eval.every_n_epochs:
        features = InceptionFeatures(config.eval.inception_weights) if config.eval.inception_weights else None
        callbacks.append(EvaluationCallback(config.data.root, config.eval.every_n_epochs, log_dir,
                                               max_images=config.eval.max_images, features=features))
    if samples:
        callbacks.append(SampleGrid(*samples, out_dir=os.path.join(run_dir, "samples"), log_dir=log_dir))
    history = model.fit(dataset, epochs=t.epochs + t.epochs_decay, callbacks=callbacks, verbose=t.verbose)
    save_model_atomically(model, model_path)

    result = {
        "run_dir": run_dir,
        "precision": policy,
        "final_losses": {k: float(v[-1]) for k, v in history.history.items()},
    }
    if config.data.root and os.path.isdir(os.path.join(config.data.root, "testB_paired")):
        result["paired_test"] = paired_translation_error(
            model.gen_a2b, os.path.join(config.data.root, "testA"),
            os.path.join(config.data.root, "testB_paired"),
        )
    with open(os.path.join(run_dir, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result
