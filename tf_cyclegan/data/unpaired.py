"""Unpaired training data: image folders or TFDS -> decode -> resize -> crop/flip -> [-1, 1].

Decoding and the fixed resize to `load_size` may be done once, up front (`cache`); the
random crop and flip come after, so every epoch sees fresh augmentation. An epoch is
max(|A|, |B|) pairs: each domain is reshuffled every pass and repeated as needed, so the
smaller domain cycles while the larger is seen once (the reference's epoch). Every pair
is a pure function of (seed, epoch, index), which is what lets a run resume mid-epoch.
"""

import difflib
import random

import tensorflow as tf

from tf_cyclegan.checks import check_pipeline_sizes
from tf_cyclegan.data.images import exif_orientation, list_images, read_oriented, to_minus_one_one

AUTOTUNE = tf.data.AUTOTUNE


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
        image = read_oriented(tf.gather(self.paths, index), tf.gather(self.orientations, index))
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
    # A pipeline whose position nobody else moves yields whole epochs: its length is declared, so
    # that `fit` knows an epoch's steps (without it, Keras runs into the end of every pass).
    whole_epochs = position is None
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
    dataset = tf.data.Dataset.from_tensors(0).flat_map(epoch_pairs)
    if whole_epochs:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(
            steps * (batch_size // (replica_batch_size or batch_size))))
    return dataset.prefetch(AUTOTUNE).with_options(options)


def make_unpaired_dataset(dir_a, dir_b, load_size=286, crop_size=256, batch_size=1, flip=True,
                          cache=True, shuffle=True, seed=None, max_steps=None, position=None,
                          num_shards=1, shard_index=0, replica_batch_size=None):
    """A `tf.data.Dataset` of `(real_a, real_b)` batches from two image folders.

    Each pass is one epoch of max(|A|, |B|) pairs (or `max_steps` batches): both domains
    in a fresh random order (the smaller one cycling), fresh crops and flips.

    Args:
        dir_a, dir_b: folders of domain A and B images (e.g. `trainA`, `trainB`).
        load_size: int or None, default 286. Images are resized to this square size first
            (None: kept as they are, with `cache=False`).
        crop_size: int or None, default 256. Random square crop after the resize, a multiple
            of 4 (None: no crop).
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

    Raises:
        ValueError: a size the config would refuse too (`check_pipeline_sizes`), before any work.

    Example:
    >>> ds = make_unpaired_dataset("data/demo/trainA", "data/demo/trainB", 72, 64)  # doctest: +SKIP
    """
    check_pipeline_sizes(load_size, crop_size, batch_size)
    domains = []
    for directory in (dir_a, dir_b):
        paths = list_images(directory)
        if cache:
            orientations = [exif_orientation(path) for path in paths]
            files = tf.data.Dataset.from_tensor_slices((paths, orientations)).map(
                read_oriented,
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

    Raises:
        ValueError: an unknown dataset name, in one line with the closest names TFDS knows.
        ImportError: a module the dataset needs is not installed; the message names it and
            the pip package to install.
    """
    import tensorflow_datasets as tfds

    del cache
    check_pipeline_sizes(load_size, crop_size, kwargs.get("batch_size", 1))
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        if download:
            builder.download_and_prepare()
        domains = []
        for split in (split_a, split_b):
            images = builder.as_dataset(split=split, shuffle_files=False).map(lambda ex: ex["image"])
            length = int(images.reduce(0, lambda count, _: count + 1))
            domains.append(_Domain(length, load_size, images=images))
    except tfds.core.DatasetNotFoundError:  # its message lists every dataset TFDS has, 460 lines
        raise ValueError(_unknown_tfds_name(name, tfds.list_builders(with_community_datasets=False))) from None
    except ImportError as error:  # a dataset's own dependency, imported when it is first used
        raise _missing_tfds_module(name, error) from None
    return zip_domains(*domains, crop_size=crop_size, **kwargs)


# The pip packages of modules TFDS datasets import, where the names differ.
_PIP_PACKAGES = {"cv2": "opencv-python", "PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn",
                 "bs4": "beautifulsoup4", "yaml": "pyyaml", "tensorflow_io": "tensorflow-io",
                 "apache_beam": "apache-beam", "Bio": "biopython", "tifffile": "tifffile"}


def _unknown_tfds_name(name, known):
    """One line for a TFDS name that is not a dataset: the closest names TFDS knows."""
    dataset, slash, config = name.partition("/")
    close = difflib.get_close_matches(dataset, known, n=3, cutoff=0.6)
    suggestion = (f"did you mean {' or '.join(repr(c + slash + config) for c in close)}?" if close
                  else "tfds.list_builders() lists them")
    return f"Unknown TFDS dataset {name!r} (data.tfds); {suggestion}"


def _missing_tfds_module(name, error):
    """The ImportError of a module a TFDS dataset needs, in one line naming the module and its
    pip package. TFDS re-raises the original error with a longer message, the name on its cause."""
    module = None
    cause = error
    while cause is not None and module is None:
        module = getattr(cause, "name", None) if isinstance(cause, ImportError) else None
        cause = cause.__cause__ or cause.__context__
    if module is None:  # "No module named 'x'" without a name attribute
        first_line = str(error).splitlines()[0] if str(error) else ""
        module = first_line.split("'")[1] if first_line.count("'") >= 2 else "?"
    top = module.split(".")[0]
    package = _PIP_PACKAGES.get(top, top.replace("_", "-"))
    return ImportError(f"The TFDS dataset {name!r} needs the Python module {top!r}, which is not installed: "
                       f"pip install {package}", name=top)
