"""Unpaired training data: image folders or TFDS -> decode -> resize -> crop/flip -> [-1, 1].

Decoding and the fixed resize to `load_size` may be done once, up front (`cache`); the
random crop and flip come after, so every epoch sees fresh augmentation. An epoch is
max(|A|, |B|) pairs: each domain is reshuffled every pass and repeated as needed, so the
smaller domain cycles while the larger is seen once (the reference's epoch). Every pair
is a pure function of (seed, epoch, index), which is what lets a run resume mid-epoch.
"""

import logging
import os
import random
import warnings
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
_EXIF_ORIENTATION = 0x0112
AUTOTUNE = tf.data.AUTOTUNE


def exif_orientation(path):
    """The EXIF orientation tag of an image file (1 to 8; 1, as stored, where there is none).

    Phones store photos as the sensor saw them and record how to turn them for viewing;
    every viewer applies it, TensorFlow's decoders do not. A JPEG's EXIF block is found
    among its first segments and parsed by Pillow, so the image itself is never opened
    (Pillow refuses to open photos over 179 megapixels); other formats go through Pillow's
    header reader. Best effort: a file whose tag cannot be read counts as 1.
    """
    from PIL import Image

    try:
        segment = _jpeg_exif_segment(path)
        if segment is not None:
            exif = Image.Exif()
            exif.load(segment)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(os.fspath(path)) as image:
                    exif = image.getexif()
        orientation = exif.get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - any unreadable header means "as stored"
        return 1
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def _jpeg_exif_segment(path, limit=1 << 17):
    """The `Exif\\0\\0...` APP1 segment of a JPEG file, or None (not a JPEG, or no EXIF up front)."""
    with open(os.fspath(path), "rb") as f:
        data = f.read(limit)
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xE1 and data[i + 4:i + 10] == b"Exif\0\0":
            return data[i + 4:i + 2 + length]
        if marker in (0xDA, 0xD9):  # image data (or its end) starts: no EXIF before it
            return None
        i += 2 + length
    return None


def orient(image, orientation):
    """Turns an (H, W, C) image as EXIF `orientation` (an int or a scalar tensor) says, for viewing."""
    transpose = lambda x: tf.transpose(x, [1, 0, 2])  # noqa: E731
    branches = [
        lambda: image,  # 1: as stored
        lambda: tf.reverse(image, [1]),  # 2: mirrored left-right
        lambda: tf.reverse(image, [0, 1]),  # 3: rotated 180
        lambda: tf.reverse(image, [0]),  # 4: mirrored top-bottom
        lambda: transpose(image),  # 5: transposed
        lambda: tf.reverse(transpose(image), [1]),  # 6: rotated 90 clockwise to view
        lambda: tf.reverse(transpose(image), [0, 1]),  # 7: transversed
        lambda: tf.reverse(transpose(image), [0]),  # 8: rotated 90 counter-clockwise to view
    ]
    return tf.switch_case(tf.cast(orientation, tf.int32) - 1, branches, default=lambda: image)


def read_image(path):
    """An image file as uint8 RGB (H, W, 3), turned as its EXIF orientation says."""
    path = os.fspath(path)
    return orient(decode_image(tf.io.read_file(path)), exif_orientation(path))


def decode_image(contents):
    """Decodes JPEG/PNG/BMP/GIF/WebP bytes to uint8 RGB: grey expanded, alpha dropped, 16-bit scaled."""
    head = tf.strings.join([tf.strings.substr(contents, 0, 12), "\0" * 12])  # 12 bytes at least
    is_webp = tf.logical_and(tf.equal(tf.strings.substr(head, 0, 4), "RIFF"),
                             tf.equal(tf.strings.substr(head, 8, 4), "WEBP"))

    def sixteen_bit_or_eight():
        # dtype=uint16 maps 8-bit data onto the full 16-bit range too, so one conversion fits both.
        image = tf.io.decode_image(contents, channels=0, dtype=tf.uint16, expand_animations=False)
        return tf.cast(tf.bitwise.right_shift(image, 8), tf.uint8)

    def webp():  # 8-bit only, which TensorFlow's WebP decoder refuses to widen
        return tf.io.decode_image(contents, channels=0, dtype=tf.uint8, expand_animations=False)

    image = tf.cond(is_webp, webp, sixteen_bit_or_eight)
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
            head = f.read(12)
        if not (head.startswith(_MAGIC) or head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
            return f"not a JPEG, PNG, BMP, GIF or WebP file (starts with {head[:4]!r})"
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


class DataPosition:
    """Where an epoch-indexed dataset stands: the epoch its next pass reads, and the batches
    that pass skips at its start.

    Every pass over the dataset (`fit` starts one per epoch) reads `epoch` and advances it,
    so each epoch gets its own shuffle and augmentation; `seek` sets both for a resume.
    Every pair is a pure function of (seed, epoch, index), so a resumed run reads exactly
    the batches the interrupted one would have.
    """

    def __init__(self):
        # Set by the dataset that uses it.
        self.steps_per_epoch = self.pairs_per_epoch = self.global_batch_size = None
        with tf.device("/cpu:0"):
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")
            self.skip_batches = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_skip_batches")

    def seek(self, epoch, batch=0):
        """The next pass reads epoch `epoch` (0-based) from its `batch`-th batch on."""
        self.epoch.assign(int(epoch))
        self.skip_batches.assign(int(batch))


class _Domain:
    """One domain's images with random access by index: a folder read on demand, or
    resized uint8 images held in memory (`cache`, and always for TFDS)."""

    def __init__(self, length, load_size, paths=None, images=None):
        self.length = length
        self.load_size = load_size
        self.paths = None
        self.store = None
        if images is not None:
            self.store = self._materialize(images)
        else:
            self.paths = tf.constant(paths)
            self.orientations = tf.constant([exif_orientation(path) for path in paths], tf.int32)

    def _materialize(self, images):
        if not self.load_size:
            raise ValueError("Keeping images in memory needs a load_size (all images the same size)")
        resized = images.map(lambda image: resize_to_load_size(image, self.load_size), num_parallel_calls=AUTOTUNE)
        stacked = resized.batch(self.length).get_single_element()
        with tf.device("/cpu:0"):
            # A variable, not a constant: dataset graphs are copied when rewritten (sharding).
            return tf.Variable(stacked, trainable=False, name="images")

    def __getitem__(self, index):
        if self.store is not None:
            return tf.gather(self.store, index)
        image = orient(decode_image(tf.io.read_file(tf.gather(self.paths, index))),
                       tf.gather(self.orientations, index))
        if self.load_size:
            image = resize_to_load_size(image, self.load_size)
        return image


def _shuffled_index(i, length, seed, epoch, pairs):
    """The `i`-th image of an epoch: each pass over the domain is its own permutation."""
    seeds = tf.stack([seed, epoch * pairs + i // length])  # passes per epoch <= pairs
    return tf.random.experimental.index_shuffle(i % length, seeds, max_index=length - 1)


def zip_domains(domain_a, domain_b, crop_size=256, batch_size=1, flip=True, shuffle=True, seed=None,
                max_steps=None, position=None, num_shards=1, shard_index=0, replica_batch_size=None):
    """Pairs two domains into epochs of max(|A|, |B|) augmented pairs, one epoch per pass.

    With `num_shards` > 1 (one input pipeline per machine), a global batch is
    `batch_size * num_shards` consecutive pairs, and this pipeline yields its
    `shard_index`-th slice of each: its own pairs, read from their own files. With
    `replica_batch_size`, that slice comes as batches of that size, one per local replica
    (what `tf.distribute.Strategy.distribute_datasets_from_function` expects).
    """
    pairs = max(domain_a.length, domain_b.length)
    global_batch = batch_size * num_shards
    if pairs < global_batch:
        raise ValueError(f"The global batch ({batch_size} x {num_shards} pipelines) exceeds the {pairs} image "
                         "pairs of an epoch")
    if replica_batch_size and batch_size % replica_batch_size:
        raise ValueError(f"batch_size={batch_size} is not a multiple of replica_batch_size={replica_batch_size}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in [0, {num_shards}). Received: {shard_index}")
    steps = pairs // global_batch
    if max_steps:
        steps = min(steps, max_steps)
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    position = position or DataPosition()
    position.steps_per_epoch = steps
    position.pairs_per_epoch = pairs
    position.global_batch_size = global_batch
    # Distinct stateless seed streams for each domain's order and augmentation.
    seeds = {key: tf.constant(4 * seed + offset, tf.int64)
             for offset, key in enumerate(("order_a", "order_b", "augment_a", "augment_b"))}

    def image(domain, key, epoch, i):
        order_seed = seeds["order_" + key]
        index = _shuffled_index(i, domain.length, order_seed, epoch, pairs) if shuffle else i % domain.length
        picked = domain[index]
        if crop_size:
            # Stateless seeds from (seed, epoch, i): the same pair on a resumed run.
            pair_seed = tf.stack([seeds["augment_" + key], epoch * pairs + i])
            picked = random_crop_and_flip(picked, crop_size, flip, pair_seed)
        return to_minus_one_one(picked)

    def epoch_pairs(_):
        epoch = position.epoch.assign_add(1) - 1
        first = position.skip_batches.read_value() * global_batch
        with tf.control_dependencies([first]):
            reset = position.skip_batches.assign(0)
        with tf.control_dependencies([reset]):
            first = tf.identity(first)
        indices = tf.data.Dataset.range(first, steps * global_batch)
        if num_shards > 1:
            indices = indices.filter(lambda i: (i % global_batch) // batch_size == shard_index)
        return indices.map(
            lambda i: (image(domain_a, "a", epoch, i), image(domain_b, "b", epoch, i)),
            num_parallel_calls=AUTOTUNE,
        ).batch(replica_batch_size or batch_size, drop_remainder=True)  # fixed shapes for XLA and replicas

    options = tf.data.Options()
    # The pipeline shards itself (above); tf.distribute must not shard it again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return tf.data.Dataset.from_tensors(0).flat_map(epoch_pairs).prefetch(AUTOTUNE).with_options(options)


def make_unpaired_dataset(dir_a, dir_b, load_size=286, crop_size=256, batch_size=1, flip=True,
                          cache=True, shuffle=True, seed=None, max_steps=None, position=None,
                          num_shards=1, shard_index=0, replica_batch_size=None):
    """A `tf.data.Dataset` of `(real_a, real_b)` batches from two image folders.

    Each pass is one epoch of max(|A|, |B|) pairs (or `max_steps` batches): both domains
    in a fresh random order (the smaller one cycling), fresh crops and flips.

    Args:
        dir_a, dir_b: folders of domain A and B images (e.g. `trainA`, `trainB`).
        load_size: int, default 286. Images are resized to this square size first.
        crop_size: int, default 256. Random square crop after the resize.
        batch_size: int, default 1.
        flip: bool, default True. Random horizontal flips.
        cache: bool, default True. Decode and resize every image once, up front, and keep
            the uint8 results in memory; False reads and decodes files on every access.
        shuffle: bool, default True.
        seed: int or None (a random one). With a seed, epoch e is the same on every run.
        max_steps: int or None. Cap on the batches of an epoch.
        position: `DataPosition` or None. Shared with the caller to seek for a resume.
        num_shards, shard_index: input pipelines (machines) and this one's index; each
            yields `batch_size` pairs of every global batch of `batch_size * num_shards`.

    Example:
    >>> ds = make_unpaired_dataset("data/demo/trainA", "data/demo/trainB", 72, 64)  # doctest: +SKIP
    """
    if crop_size and load_size and crop_size > load_size:
        raise ValueError(f"crop_size must not exceed load_size. Received: crop_size={crop_size}, load_size={load_size}")
    domains = []
    for directory in (dir_a, dir_b):
        paths = list_images(directory)
        if cache:
            orientations = [exif_orientation(path) for path in paths]
            files = tf.data.Dataset.from_tensor_slices((paths, orientations)).map(
                lambda path, orientation: orient(decode_image(tf.io.read_file(path)), orientation),
                num_parallel_calls=AUTOTUNE)
            domains.append(_Domain(len(paths), load_size, images=files))
        else:
            domains.append(_Domain(len(paths), load_size, paths=paths))
    return zip_domains(*domains, crop_size=crop_size, batch_size=batch_size, flip=flip, shuffle=shuffle,
                       seed=seed, max_steps=max_steps, position=position, num_shards=num_shards,
                       shard_index=shard_index, replica_batch_size=replica_batch_size)


def make_tfds_dataset(name, split_a="trainA", split_b="trainB", data_dir=None, download=True, load_size=286,
                      crop_size=256, cache=True, **kwargs):
    """The same pipeline over a TFDS CycleGAN dataset, e.g. `cycle_gan/horse2zebra`.

    TFDS gives no random access, so its images are always held in memory (`cache` is ignored).
    """
    import tensorflow_datasets as tfds

    del cache
    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        builder.download_and_prepare()
    domains = []
    for split in (split_a, split_b):
        images = builder.as_dataset(split=split, shuffle_files=False).map(lambda ex: ex["image"])
        length = int(images.reduce(0, lambda count, _: count + 1))
        domains.append(_Domain(length, load_size, images=images))
    return zip_domains(*domains, crop_size=crop_size, **kwargs)


def load_image(path):
    """One image file as float32 [-1, 1], shape (H, W, 3), turned as its EXIF orientation says."""
    return to_minus_one_one(read_image(path))
