"""The CycleGAN loss terms, as per-example vectors.

Per-example losses (one value per image) let the model average over the *global*
batch when it is split across replicas, instead of averaging twice.
https://arxiv.org/abs/1703.10593, equations 1-3 and section 5.2 (identity loss).
"""

import tensorflow as tf

from tf_cyclegan.choices import GAN_MODES


def _per_example_mean(x):
    return tf.reduce_mean(tf.reshape(x, (tf.shape(x)[0], -1)), axis=1)


def gan_loss(logits, target_is_real, gan_mode="lsgan"):
    """Adversarial loss of a grid of discriminator logits against an all-real or all-fake target.

    `lsgan` is the least-squares loss the paper uses (mean squared error to 1 or 0);
    `vanilla` is the original GAN's binary cross-entropy on logits.
    """
    check_gan_mode(gan_mode)
    logits = tf.cast(logits, "float32")
    target = tf.ones_like(logits) if target_is_real else tf.zeros_like(logits)
    if gan_mode == "lsgan":
        return _per_example_mean(tf.square(logits - target))
    return _per_example_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits))


def l1_loss(target, prediction):
    """Mean absolute error per example: the cycle-consistency and identity losses."""
    diff = tf.cast(target, "float32") - tf.cast(prediction, "float32")
    return _per_example_mean(tf.abs(diff))


def discriminator_loss(real_logits, fake_logits, gan_mode="lsgan"):
    """Half the sum of the real and fake terms: the reference halves D's loss to slow D down."""
    return 0.5 * (gan_loss(real_logits, True, gan_mode) + gan_loss(fake_logits, False, gan_mode))


def check_gan_mode(gan_mode):
    """Returns `gan_mode` if it is one of `GAN_MODES`, else raises `ValueError` naming it."""
    if gan_mode not in GAN_MODES:
        raise ValueError(f"gan_mode must be one of {GAN_MODES}. Received: gan_mode={gan_mode!r}")
    return gan_mode



