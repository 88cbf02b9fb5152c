"""Unpaired training data: image folders or TFDS -> decode -> resize -> crop/flip -> [-1, 1].

Decoding and the fixed resize to `load_size` may be cached; the random crop and flip
run after the cache, so every epoch sees fresh augmentation. An epoch is
max(|A|, |B|) pairs: each domain is reshuffled every pass and repeated as needed,
so the smaller domain cycles while the larger is seen once (the reference's epoch).
"""

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
AUTOTUNE = tf.data.AUTOTUNE


def decode_image(contents):
    """Decodes JPEG/PNG/BMP/GIF bytes to uint8 RGB: grey expanded, alpha dropped, 16-bit scaled."""
    image = tf.io.decode_image(contents, channels=0, dtype=tf.uint16, expand_animations=False)
    # dtype=uint16 maps 8-bit data onto the full 16-bit range too, so one conversion fits both.
    image = tf.cast(tf.bitwise.right_shift(image, 8), tf.uint8)
    channels = tf.shape(image)[-1]
    return tf.cond(channels < 3, lambda: tf.image.grayscale_to_rgb(image[..., :1]), lambda: image[..., :3])


def to_minus_one_one(image):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def to_uint8(image):
    """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return tf.cast(tf.clip_by_value(tf.round((tf.cast(image, tf.float32) + 1.0) * 127.5), 0, 255), tf.uint8)


def describe_error(error):
    """The first line of an exception's message, without TF's op and function decorations."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "}} " in message:
        message = message.split("}} ", 1)[1]
    return message.split(" [Op:", 1)[0].strip()


def _is_readable_image(path):
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if not head.startswith(_MAGIC):
            return f"not a JPEG, PNG, BMP or GIF file (starts with {head[:4]!r})"
        decode_image(tf.io.read_file(path))
    except (OSError, tf.errors.OpError) as error:
        return describe_error(error)
    return None


def list_images(directory, check=True):
    """Sorted image files of a folder; unreadable or corrupt ones are skipped with a warning.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: the folder holds no readable image.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Image folder not found: {directory!r}")
    paths = sorted(
        os.path.join(directory, name) for name in os.listdir(directory)
        if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
    )
    if check and paths:
        with ThreadPoolExecutor(max_workers=8) as pool:
            problems = list(pool.map(_is_readable_image, paths))
        for path, problem in zip(paths, problems):
            if problem:
                logger.warning("Skipping unreadable image %s: %s", path, problem)
        paths = [path for path, problem in zip(paths, problems) if not problem]
    if not paths:
        raise ValueError(
            f"No readable images ({', '.join(IMAGE_EXTENSIONS)}) in folder {directory!r}"
        )
    return paths


def resize_to_load_size(image, load_size):
    """Square resize to `load_size` with antialiased bicubic (the reference uses PIL bicubic)."""
    resized = tf.image.resize(image, (load_size, load_size), method="bicubic", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def random_crop_and_flip(image, crop_size, flip, seed):
    """Random square crop and horizontal flip, drawn from a per-image stateless `seed` pair."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_crop(image, (crop_size, crop_size, 3), seed=crop_seed)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return image


def _domain(images, length, load_size, crop_size, flip, cache, shuffle, seed):
    """One domain's stream: uint8 images (decoded) -> resized -> cached -> augmented floats."""
    if load_size:
        images = images.map(lambda image: resize_to_load_size(image, load_size), num_parallel_calls=AUTOTUNE)
    if cache:
        images = images.cache()
    if shuffle:
        images = images.shuffle(min(length, 10_000), seed=seed, reshuffle_each_iteration=True)
    images = images.repeat()
    if crop_size:
        # Seeds from a stream that is drawn anew on every pass: stateful random ops would
        # replay the same crops each epoch once a global seed is set (as training does).
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        images = tf.data.Dataset.zip((images, seeds)).map(
            lambda image, pair: random_crop_and_flip(image, crop_size, flip, pair), num_parallel_calls=AUTOTUNE)
    return images.map(to_minus_one_one, num_parallel_calls=AUTOTUNE)


def _files(paths):
    return tf.data.Dataset.from_tensor_slices(paths).map(
        lambda path: decode_image(tf.io.read_file(path)), num_parallel_calls=AUTOTUNE
    )


def zip_domains(images_a, len_a, images_b, len_b, load_size=286, crop_size=256, batch_size=1,
                flip=True, cache=True, shuffle=True, seed=None):
    """Pairs two streams of uint8 images into an epoch of max(len_a, len_b) augmented pairs."""
    if crop_size and load_size and crop_size > load_size:
        raise ValueError(f"crop_size must not exceed load_size. Received: crop_size={crop_size}, load_size={load_size}")
    pairs = max(len_a, len_b)
    if pairs < batch_size:
        raise ValueError(f"batch_size={batch_size} exceeds the {pairs} image pairs of an epoch")
    seed_b = None if seed is None else seed + 1
    domain_a = _domain(images_a, len_a, load_size, crop_size, flip, cache, shuffle, seed)
    domain_b = _domain(images_b, len_b, load_size, crop_size, flip, cache, shuffle, seed_b)
    dataset = tf.data.Dataset.zip((domain_a, domain_b)).take(pairs)
    # Fixed-size batches keep shapes static for XLA and for replicas under tf.distribute.
    return dataset.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def make_unpaired_dataset(dir_a, dir_b, load_size=286, crop_size=256, batch_size=1, flip=True,
                          cache=True, shuffle=True, seed=None):
    """A `tf.data.Dataset` of `(real_a, real_b)` batches from two image folders.

    Args:
        dir_a, dir_b: folders of domain A and B images (e.g. `trainA`, `trainB`).
        load_size: int, default 286. Images are resized to this square size first.
        crop_size: int, default 256. Random square crop after the resize.
        batch_size: int, default 1.
        flip: bool, default True. Random horizontal flips.
        cache: bool, default True. Keep decoded, resized uint8 images in memory.
        shuffle: bool, default True.
        seed: int or None.

    Example:
    >>> ds = make_unpaired_dataset("data/demo/trainA", "data/demo/trainB", 72, 64)  # doctest: +SKIP
    """
    paths_a, paths_b = list_images(dir_a), list_images(dir_b)
    return zip_domains(_files(paths_a), len(paths_a), _files(paths_b), len(paths_b),
                       load_size, crop_size, batch_size, flip, cache, shuffle, seed)


def make_tfds_dataset(name, split_a="trainA", split_b="trainB", data_dir=None, download=True, **kwargs):
    """The same pipeline over a TFDS CycleGAN dataset, e.g. `cycle_gan/horse2zebra`."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        builder.download_and_prepare()

    def images(split):
        return builder.as_dataset(split=split, shuffle_files=True).map(lambda ex: ex["image"])

    def length(split):
        try:
            return builder.info.splits[split].num_examples
        except KeyError:  # no split metadata (e.g. under tfds.testing.mock_data): count
            return int(images(split).reduce(0, lambda count, _: count + 1))

    return zip_domains(images(split_a), length(split_a), images(split_b), length(split_b), **kwargs)


def load_image(path):
    """One image file as float32 [-1, 1], shape (H, W, 3)."""
    return to_minus_one_one(decode_image(tf.io.read_file(os.fspath(path))))
