"""The image history buffer of Shrivastava et al. 2017, as CycleGAN uses it.

https://arxiv.org/abs/1612.07828, section 2.3. The discriminators are updated on a mix of
the newest fakes and fakes from earlier generator versions, which damps the
oscillation between generator and discriminator.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class ImagePool(keras.layers.Layer):
    """Stores up to `pool_size` generated images and answers each query with a mix of old and new.

    Semantics of the reference's `ImagePool.query`, image by image: while the pool is
    not full, store the image and return it; once full, with probability 0.5 return a
    randomly chosen stored image and store the new one in its place, otherwise return
    the new image. `pool_size=0` returns the input unchanged.

    The state lives in non-trainable variables updated with TF ops, so the pool runs
    inside a compiled `train_step` (XLA included) and is saved with the model. Its
    shape is fixed when the layer is built, from the first batch it sees.

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
        self.seed_generator = keras.random.SeedGenerator(seed, name="pool_seed")

    def build(self, input_shape):
        image_shape = tuple(input_shape[1:])
        if any(dim is None for dim in image_shape):
            raise ValueError(
                "ImagePool needs a fixed image size (train on fixed-size crops). "
                f"Received: input_shape={input_shape!r}"
            )
        self.images = self.add_weight(
            shape=(max(self.pool_size, 1),) + image_shape, initializer="zeros",
            trainable=False, name="images", dtype=self.variable_dtype,
        )
        self.count = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="count", dtype="int32"
        )

    def call(self, images):
        if self.pool_size == 0:
            return images
        images = tf.cast(images, self.images.dtype)
        batch = tf.shape(images)[0]
        # One uniform draw for "use an old image" and one for "which", per image.
        use_old = keras.random.uniform((batch,), seed=self.seed_generator) > 0.5
        slots = keras.random.randint((batch,), 0, self.pool_size, seed=self.seed_generator)
        pool = self.images.value  # the tf.Variable, for in-place scatter updates
        count = self.count.value

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

    def _saved_variables(self):
        # Keras saves only a layer's own weights; the random stream's position is state too,
        # without which a resumed run would draw the pool's choices over again.
        return self._trainable_variables + self._non_trainable_variables + [self.seed_generator.state]

    def save_own_variables(self, store):
        for i, variable in enumerate(self._saved_variables()):
            store[str(i)] = variable

    def load_own_variables(self, store):
        variables = self._saved_variables()
        if len(store.keys()) == len(variables) - 1:
            variables = variables[:-1]  # saved before the seed state was: keep the fresh stream
        if len(store.keys()) != len(variables):
            raise ValueError(
                f"Layer '{self.name}' expects {len(variables)} saved variables (is it built?), "
                f"but the file has {len(store.keys())}."
            )
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "seed": self.seed}
