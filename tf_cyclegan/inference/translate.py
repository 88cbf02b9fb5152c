"""Translating images of any size with a generator: whole (padded to what the network takes,
cropped back), or in overlapping tiles for big images and fixed-size models.

Tiled, the image is covered by equal, overlapping square tiles; each tile's output is weighted
by a window that ramps up linearly across the overlap, and the weighted outputs are
averaged. Neighbouring tiles therefore hand over gradually instead of meeting at a
hard edge. Instance norm sees each tile's own statistics, so tiles should be large
(hundreds of pixels) for the output to match a full-image pass.
"""

import keras
import numpy as np
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


def tile_starts(length, tile, stride):
    """Start offsets covering [0, length) with tiles of `tile`; the last tile ends at `length`."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def blend_window(tile, overlap):
    """2-D weights: 1 inside; across the `overlap` at each edge, near 0 for the outer quarter
    (pixels whose receptive field reached past the tile, into reflected padding), then a
    linear ramp up to 1. Never exactly 0, so an image border covered by one tile keeps it."""
    ramp = np.ones(tile, np.float32)
    if overlap > 0:
        margin = overlap // 4
        rise = np.full(overlap, 1e-3, np.float32)
        rise[margin:] = (np.arange(overlap - margin, dtype=np.float32) + 1) / (overlap - margin + 1)
        ramp[:overlap] = rise
        ramp[-overlap:] = rise[::-1]
    return np.outer(ramp, ramp)[..., None]


def translate_tiled(translate_tile, image, tile=512, overlap=64):
    """Translates an (H, W, 3) float image with `translate_tile` on (tile, tile, 3) pieces.

    Args:
        translate_tile: function from a (tile, tile, 3) array to the translated array.
        image: (H, W, 3) float array in [-1, 1].
        tile: tile side; a multiple of 4 for the ResNet generator.
        overlap: pixels shared by neighbouring tiles (blended); must be < tile / 2.

    An image smaller than a tile in either dimension is reflection-padded up to it and
    the result cropped back.
    """
    if not 0 <= overlap < tile / 2:
        raise ValueError(f"overlap must be in [0, tile/2). Received: tile={tile}, overlap={overlap}")
    image = np.asarray(image, np.float32)
    height, width = image.shape[:2]
    pad_h, pad_w = max(tile - height, 0), max(tile - width, 0)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    full_h, full_w = image.shape[:2]
    window = blend_window(tile, overlap)
    total = np.zeros_like(image)
    weight = np.zeros(image.shape[:2] + (1,), np.float32)
    stride = tile - overlap
    for top in tile_starts(full_h, tile, stride):
        for left in tile_starts(full_w, tile, stride):
            piece = image[top:top + tile, left:left + tile]
            out = np.asarray(translate_tile(piece), np.float32)
            total[top:top + tile, left:left + tile] += out * window
            weight[top:top + tile, left:left + tile] += window
    return (total / weight)[:height, :width]
