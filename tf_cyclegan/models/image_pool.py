"""The image history buffer of Shrivastava et al. 2017, as CycleGAN uses it.

https://arxiv.org/abs/1612.07828, section 2.3. The discriminators are updated on a mix of
the newest fakes and fakes from earlier generator versions, which damps the
oscillation between generator and discriminator.
"""

import random

import keras
import tensorflow as tf

from tf_cyclegan.models.distribution import replica_local as _replica_local


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class ImagePool(keras.layers.Layer):
    """Stores up to `pool_size` generated images and answers each query with a mix of old and new.

    Semantics of the reference's `ImagePool.query`, image by image: while the pool is
    not full, store the image and return it; once full, with probability 0.5 return a
    randomly chosen stored image and store the new one in its place, otherwise return
    the new image. `pool_size=0` returns the input unchanged.

    The state (images, count, the position of its random stream) lives in non-trainable
    variables updated with TF ops, so the pool runs inside a compiled `train_step` (XLA
    included) and is saved with the model. Its shape is fixed when the layer is built,
    from the first batch it sees. Under `tf.distribute` each replica keeps its own pool
    (sync-on-read variables); a save writes the first replica's.

    Args:
        pool_size: int, default 50. Images kept.
        seed: int or None, default None. Seed of the pool's own random stream.

    Example:
    >>> pool = ImagePool(pool_size=2)
    >>> pool(keras.ops.ones((1, 4, 4, 3))).shape
    TensorShape([1, 4, 4, 3])
    """

    def __init__(self, pool_size=50, seed=None, **kwargs):
        # Fakes are kept at full precision whatever the global policy: the generators end
        # in float32, and a mixed policy's autocast would hide the variables' in-place ops.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not isinstance(pool_size, int) or pool_size < 0:
            raise ValueError(f"pool_size must be a non-negative int. Received: pool_size={pool_size!r}")
        self.pool_size = pool_size
        self.seed = seed

    def build(self, input_shape):
        image_shape = tuple(input_shape[1:])
        if any(dim is None for dim in image_shape):
            raise ValueError(
                "ImagePool needs a fixed image size (train on fixed-size crops). "
                f"Received: input_shape={input_shape!r}"
            )
        seed = self.seed if self.seed is not None else random.SystemRandom().randrange(2**31)

        def replica_local(initializer, shape, dtype, name):
            # Each replica updates its own copy inside train_step; no cross-replica sync.
            return keras.Variable(initializer, shape=shape, dtype=dtype, trainable=False, name=name,
                                  synchronization="on_read", aggregation="only_first_replica")

        with keras.name_scope(self.name, caller=self):
            self.images = replica_local("zeros", (max(self.pool_size, 1),) + image_shape,
                                        self.variable_dtype, "images")
            self.count = replica_local("zeros", (), "int32", "count")
            self.seed_state = replica_local(lambda shape, dtype: tf.constant([seed, 0], dtype), (2,),
                                            "int64", "seed_state")

    def call(self, images):
        if self.pool_size == 0:
            return images
        images = tf.cast(images, self.images.dtype)
        batch = tf.shape(images)[0]
        # One uniform draw for "use an old image" and one for "which", per image, from a
        # stateless stream whose position is a variable (saved, restored, XLA-safe).
        seed_state = _replica_local(self.seed_state)
        draw_seed = seed_state.read_value()
        with tf.control_dependencies([draw_seed]):
            seed_state.assign_add(tf.constant([0, 1], tf.int64))
        use_seed, slot_seed = tf.unstack(tf.random.experimental.stateless_split(draw_seed, 2))
        use_old = tf.random.stateless_uniform((batch,), seed=use_seed) > 0.5
        slots = tf.random.stateless_uniform((batch,), seed=slot_seed, minval=0, maxval=self.pool_size,
                                            dtype=tf.int32)
        pool = _replica_local(self.images)  # the tf.Variable, for in-place scatter updates
        count = _replica_local(self.count)

        def store(slot, image):
            pool.scatter_nd_update([[slot]], image[None])

        def query(i, returned):
            image = tf.gather(images, i)

            def fill():
                store(count.read_value(), image)
                count.assign_add(1)
                return image

            def swap():
                old = tf.gather(pool, slots[i])
                with tf.control_dependencies([old]):
                    store(tf.gather(slots, i), image)
                return old

            out = tf.cond(
                count.read_value() < self.pool_size,
                fill,
                lambda: tf.cond(tf.gather(use_old, i), swap, lambda: image),
            )
            return i + 1, returned.write(i, out)

        returned = tf.TensorArray(images.dtype, size=batch, element_shape=images.shape[1:])
        _, returned = tf.while_loop(lambda i, _: i < batch, query, (tf.constant(0), returned))
        return returned.stack()

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "seed": self.seed}
