"""Translating whole images of any size with a generator."""

import keras
import tensorflow as tf

# The ResNet generator reflection-pads by 3 at full size and by 1 at a quarter of it, which
# needs at least 4 pixels there and 2 here.
MIN_SIZE = 8


def grow_to(images, minimum=MIN_SIZE):
    """Mirrors a (N, H, W, C) batch at the bottom and right, the edge pixel included, until H
    and W are at least `minimum` (doubling at most per round, so even 1x1 grows)."""

    def too_small(x):
        height, width = tf.shape(x)[1], tf.shape(x)[2]
        return tf.logical_and(tf.logical_or(height < minimum, width < minimum),
                              tf.logical_and(height > 0, width > 0))

    def grow(x):
        height, width = tf.shape(x)[1], tf.shape(x)[2]
        pad_h = tf.clip_by_value(minimum - height, 0, height)
        pad_w = tf.clip_by_value(minimum - width, 0, width)
        return [tf.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="SYMMETRIC")]

    invariant = tf.TensorShape([images.shape[0], None, None, images.shape[-1]])
    return tf.while_loop(too_small, grow, [images], shape_invariants=[invariant])[0]


def pad_to_multiple(image, multiple=4):
    """Pads a (N, H, W, C) batch at the bottom/right to multiples of `multiple`, by reflection,
    after growing images smaller than the generator allows (`grow_to`).

    Returns the padded batch and the original height and width, to crop the output back."""
    height, width = tf.shape(image)[1], tf.shape(image)[2]
    image = grow_to(image)
    pad_h = (-tf.shape(image)[1]) % multiple
    pad_w = (-tf.shape(image)[2]) % multiple
    return tf.pad(image, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="REFLECT"), height, width


def translate(generator, images):
    """Runs `generator` on a [-1, 1] batch of any H and W; output has the input's size.

    The ResNet generator needs H and W divisible by 4 and at least 8: the batch is padded
    (`pad_to_multiple`) and the output cropped back, so even a 1x1 image translates.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank == 3:
        return translate(generator, images[None])[0]
    padded, height, width = pad_to_multiple(images)
    output = generator(padded, training=False)
    return keras.ops.convert_to_tensor(output)[:, :height, :width, :]
