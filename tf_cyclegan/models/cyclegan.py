"""The CycleGAN training wrapper: two generators, two discriminators, one `train_step`.

https://arxiv.org/abs/1703.10593. The update follows the reference implementation:
the generators are updated together on the adversarial, cycle and identity losses;
then each discriminator on a real image and a fake drawn from the history pool, with
its loss halved. One Adam optimizer serves both generators, one both discriminators.
"""

import keras
import tensorflow as tf

from tf_cyclegan.models.image_pool import ImagePool
from tf_cyclegan.models.losses import check_gan_mode, discriminator_loss, gan_loss, l1_loss
from tf_cyclegan.models.patchgan import build_patchgan_discriminator
from tf_cyclegan.models.resnet_generator import build_resnet_generator
from tf_cyclegan.training.fused_adam import FusedAdam
from tf_cyclegan.training.grappler import lean_training_function

LOSS_NAMES = (
    "gen_total", "gan_a2b", "gan_b2a", "cycle_a", "cycle_b",
    "identity_a", "identity_b", "disc_a", "disc_b",
)


def default_optimizer(learning_rate=2e-4, beta_1=0.5):
    """Adam(2e-4, beta_1=0.5), the paper's optimizer (with the fused update kernel)."""
    return FusedAdam(learning_rate=learning_rate, beta_1=beta_1)


def _average_over_replicas(per_example_loss):
    """Mean over the local batch, divided by the replica count: summing the replicas'
    gradients (what `tf.distribute` does) then gives the gradient of the global mean."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return tf.reduce_mean(per_example_loss) / replicas


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class CycleGAN(keras.Model):
    """Unpaired image-to-image translation between domains A and B, trained with `fit`.

    Train on a dataset of `(real_a, real_b)` batches of [-1, 1] images of a fixed crop
    size. `call()` translates A to B with `gen_a2b`.

    Args:
        gen_a2b: keras.Model, generator translating domain A to B.
        gen_b2a: keras.Model, generator translating domain B to A.
        disc_a: keras.Model, discriminator telling real A from generated A.
        disc_b: keras.Model, discriminator telling real B from generated B.
        lambda_cycle: float, default 10. Weight of each cycle-consistency L1 term.
        lambda_identity: float, default 0.5. Identity L1 weight as a fraction of
            `lambda_cycle` (the reference's convention); 0 skips the identity passes.
        pool_size: int, default 50. Fakes kept per domain for the discriminators.
        gan_mode: str, default "lsgan". "lsgan" (least squares) or "vanilla" (BCE).
        pool_seed: int or None. Seed of the image pools' random streams.

    Example:
    >>> from tf_cyclegan import build_patchgan_discriminator, build_resnet_generator
    >>> model = CycleGAN(build_resnet_generator(filters=8, num_residual_blocks=1),
    ...                  build_resnet_generator(filters=8, num_residual_blocks=1),
    ...                  build_patchgan_discriminator(filters=8),
    ...                  build_patchgan_discriminator(filters=8))
    >>> model.compile()
    """

    def __init__(
        self, gen_a2b, gen_b2a, disc_a, disc_b, lambda_cycle=10.0, lambda_identity=0.5,
        pool_size=50, gan_mode="lsgan", pool_seed=None, **kwargs,
    ):
        super().__init__(**kwargs)
        if lambda_cycle < 0 or lambda_identity < 0:
            raise ValueError(
                "Loss weights must be non-negative. "
                f"Received: lambda_cycle={lambda_cycle!r}, lambda_identity={lambda_identity!r}"
            )
        self.gen_a2b = gen_a2b
        self.gen_b2a = gen_b2a
        self.disc_a = disc_a
        self.disc_b = disc_b
        self.lambda_cycle = float(lambda_cycle)
        self.lambda_identity = float(lambda_identity)
        self.pool_size = pool_size
        self.gan_mode = check_gan_mode(gan_mode)
        self.pool_seed = pool_seed
        # pool_a holds generated A images (for disc_a), pool_b generated B images.
        pool_b_seed = None if pool_seed is None else pool_seed + 1
        self.pool_a = ImagePool(pool_size, seed=pool_seed, name="pool_a")
        self.pool_b = ImagePool(pool_size, seed=pool_b_seed, name="pool_b")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}

    def compile(self, gen_optimizer=None, disc_optimizer=None, **kwargs):
        """Configures training.

        Args:
            gen_optimizer: optimizer for both generators; default Adam(2e-4, beta_1=0.5).
            disc_optimizer: optimizer for both discriminators; same default.
            **kwargs: passed to `keras.Model.compile` (`jit_compile`, `steps_per_execution`, ...).
                `optimizer` and `loss` are not accepted: the losses are CycleGAN's own.
        """
        for key in ("optimizer", "loss"):
            if key in kwargs:
                raise ValueError(
                    f"CycleGAN.compile takes gen_optimizer and disc_optimizer and computes its "
                    f"own losses. Received: {key}={kwargs[key]!r}"
                )
        gen_optimizer = keras.optimizers.get(gen_optimizer or default_optimizer())
        disc_optimizer = keras.optimizers.get(disc_optimizer or default_optimizer())
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            # compile() would wrap only model.optimizer; every optimizer needs loss scaling.
            gen_optimizer = _loss_scaled(gen_optimizer)
            disc_optimizer = _loss_scaled(disc_optimizer)
        super().compile(optimizer=gen_optimizer, **kwargs)
        self.disc_optimizer = disc_optimizer
        # Build each optimizer on exactly its own networks now: Keras (fit, BackupAndRestore,
        # load_model) would otherwise build model.optimizer on all trainable variables and
        # leave the discriminators' optimizer unbuilt, dropping its Adam moments on restore.
        self.gen_optimizer.build(self.generator_variables)
        self.disc_optimizer.build(self.discriminator_variables)
        self._compile_kwargs = kwargs

    def train_step(self, data):
        """One CycleGAN update: both generators together, then each discriminator."""
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        self._build_for_batch(real_a)

        # Generators: adversarial + lambda * cycle + lambda * identity_weight * identity, one tape.
        with tf.GradientTape(persistent=True) as gen_tape:
            losses, fake_a, fake_b = self._cycle_losses(real_a, real_b, training=True)
            gen_loss = _average_over_replicas(losses["gen_total"])
            scaled_gen_loss = self.gen_optimizer.scale_loss(gen_loss)
        gen_grads = gen_tape.gradient(scaled_gen_loss, self.generator_variables)
        del gen_tape
        self.gen_optimizer.apply_gradients(zip(gen_grads, self.generator_variables))

        # Discriminators: real against a fake from the history pool, loss halved; no gradient
        # flows back into the generators.
        pooled_fake_a = self.pool_a(tf.stop_gradient(fake_a))
        pooled_fake_b = self.pool_b(tf.stop_gradient(fake_b))
        disc_grads = []
        for name, disc, real, fake in (
            ("disc_a", self.disc_a, real_a, pooled_fake_a),
            ("disc_b", self.disc_b, real_b, pooled_fake_b),
        ):
            with tf.GradientTape() as disc_tape:
                pred_real, pred_fake = self._call_on_each(disc, [real, fake], training=True)
                per_example = discriminator_loss(pred_real, pred_fake, self.gan_mode)
                scaled = self.disc_optimizer.scale_loss(_average_over_replicas(per_example))
            disc_grads += disc_tape.gradient(scaled, disc.trainable_variables)
            losses[name] = per_example
        self.disc_optimizer.apply_gradients(zip(disc_grads, self.discriminator_variables))
        return self._track(losses)

    def _cycle_losses(self, real_a, real_b, training):
        """The forward pass and every generator loss term; returns the fakes for the discriminators.

        The calls of one generator that do not depend on each other go through it together
        (`_call_on_each`): the same numbers as one call each, in fewer, larger ops.
        """
        identity = self.lambda_identity > 0
        if identity:
            # The cycles A -> B -> A and B -> A -> B, and each generator on its own target domain.
            fake_b, same_b = self._call_on_each(self.gen_a2b, [real_a, real_b], training)
            cycled_a, fake_a, same_a = self._call_on_each(self.gen_b2a, [fake_b, real_b, real_a], training)
        else:
            fake_b = self.gen_a2b(real_a, training=training)
            cycled_a, fake_a = self._call_on_each(self.gen_b2a, [fake_b, real_b], training)
        cycled_b = self.gen_a2b(fake_a, training=training)

        losses = {
            # Fool the discriminators (least squares to "real" for lsgan).
            "gan_a2b": gan_loss(self.disc_b(fake_b, training=training), True, self.gan_mode),
            "gan_b2a": gan_loss(self.disc_a(fake_a, training=training), True, self.gan_mode),
            # Come back to where the cycle started.
            "cycle_a": l1_loss(real_a, cycled_a),
            "cycle_b": l1_loss(real_b, cycled_b),
        }
        gen_total = losses["gan_a2b"] + losses["gan_b2a"] + self.lambda_cycle * (
            losses["cycle_a"] + losses["cycle_b"]
        )
        if identity:
            # Leave an image of the target domain alone.
            losses["identity_a"] = l1_loss(real_a, same_a)
            losses["identity_b"] = l1_loss(real_b, same_b)
            gen_total += self.lambda_cycle * self.lambda_identity * (
                losses["identity_a"] + losses["identity_b"]
            )
        losses["gen_total"] = gen_total
        return losses, fake_a, fake_b

    def test_step(self, data):
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        losses, fake_a, fake_b = self._cycle_losses(real_a, real_b, training=False)
        losses["disc_a"] = discriminator_loss(self.disc_a(real_a), self.disc_a(fake_a), self.gan_mode)
        losses["disc_b"] = discriminator_loss(self.disc_b(real_b), self.disc_b(fake_b), self.gan_mode)
        return self._track(losses)

    def call(self, inputs, training=False):
        return self.gen_a2b(inputs, training=training)

    # The plumbing: how the networks are called, building, Keras' and tf.distribute's hooks.

    def _call_on_each(self, network, inputs, training):
        """`[network(x) for x in inputs]`, computed as one call on the inputs stacked along the
        batch axis. Instance norm (and everything else in these networks) treats each image
        on its own, so the numbers are the same; the step is traced and run as fewer, larger
        ops. Networks with batch statistics (BatchNormalization) are called one by one.
        """
        shapes = {tuple(x.shape[1:]) for x in inputs}
        same_size = len(shapes) == 1 and None not in next(iter(shapes))
        if len(inputs) == 1 or not same_size or not self._per_image:
            return [network(x, training=training) for x in inputs]
        outputs = network(tf.concat(inputs, axis=0), training=training)
        return tf.split(outputs, len(inputs), axis=0)

    @property
    def _per_image(self):
        """True when no network keeps state across a batch (BatchNormalization's moving
        statistics, or anything else non-trainable): then stacking changes no number. A
        network with frozen (non-trainable) weights is also called one by one, which is
        only slower."""
        if not hasattr(self, "_per_image_networks"):
            self._per_image_networks = not any(
                net.non_trainable_weights for net in (self.gen_a2b, self.gen_b2a, self.disc_a, self.disc_b))
        return self._per_image_networks

    def build(self, input_shape):
        """Builds the image pools for the training crop size (the networks take any size)."""
        self.pool_a.build(input_shape)
        self.pool_b.build(input_shape)
        self.built = True

    def _build_for_batch(self, real_a):
        """Builds the pools from the first training batch (fit defers building to the trace)."""
        if not self.built:
            self.build(tuple(real_a.shape))
        if self.pool_size == 0:
            return
        pool_shape = tuple(self.pool_a.images.shape[1:])
        batch_shape = tuple(real_a.shape[1:])
        if None not in batch_shape and batch_shape != pool_shape:
            raise ValueError(
                f"The image pools were built for images of shape {pool_shape}, but the training "
                f"batch has images of shape {batch_shape}. Build the model on a training batch "
                "(fit does this) before calling it on other sizes."
            )

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def gen_optimizer(self):
        """The generators' optimizer; Keras knows it as `model.optimizer`."""
        return self.optimizer

    @property
    def generator_variables(self):
        return self.gen_a2b.trainable_variables + self.gen_b2a.trainable_variables

    @property
    def discriminator_variables(self):
        return self.disc_a.trainable_variables + self.disc_b.trainable_variables

    def make_train_function(self, force=False):
        """Keras' training function, run without the graph optimisations that do nothing for
        this step on a CPU (`tf_cyclegan.grappler`): the first step starts sooner."""
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=True)
        self.train_function = lean_training_function(self.train_function)
        return self.train_function

    def _track(self, losses):
        for name, value in losses.items():
            self.trackers[name].update_state(value)
        logs = {name: self.trackers[name].result() for name in LOSS_NAMES if name in losses}
        if _multi_worker(self.distribute_strategy):
            # Keras averages the step's outputs across workers along axis 0, which scalars
            # do not have (keras-team/keras#20585): give each a length-1 axis to reduce.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Replaces Keras' pre-fit build under `tf.distribute`, which peeks at a batch and
        averages it across replicas: under MultiWorkerMirroredStrategy that reduce fails
        ("Attempt to convert a value (PerReplica...)", keras-team/keras#20585), and the
        peek uses up a pass of the dataset. CycleGAN needs no symbolic build: `compile`
        builds both optimizers and `build` the pools, which is all that is left to do,
        from a peeked batch only when the model was not built beforehand.
        """
        if self.built or iterator is None:
            return
        strategy = self.distribute_strategy
        for _, _, batches in iterator:
            batch = next(batches)
            break
        local = tf.nest.map_structure(
            lambda x: strategy.experimental_local_results(x)[0]
            if isinstance(x, tf.distribute.DistributedValues) else x,
            batch,
        )
        real_a, _, _ = keras.utils.unpack_x_y_sample_weight(local)
        with strategy.scope():
            self.build(tuple(real_a.shape))

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {
            "gen_optimizer": keras.saving.serialize_keras_object(self.gen_optimizer),
            "disc_optimizer": keras.saving.serialize_keras_object(self.disc_optimizer),
            **{k: v for k, v in self._compile_kwargs.items() if k in ("jit_compile", "steps_per_execution")},
        }

    def compile_from_config(self, config):
        self.compile(
            gen_optimizer=keras.saving.deserialize_keras_object(config.pop("gen_optimizer")),
            disc_optimizer=keras.saving.deserialize_keras_object(config.pop("disc_optimizer")),
            **config,
        )

    def get_config(self):
        config = super().get_config()
        for name in ("gen_a2b", "gen_b2a", "disc_a", "disc_b"):
            config[name] = keras.saving.serialize_keras_object(getattr(self, name))
        config.update(
            lambda_cycle=self.lambda_cycle, lambda_identity=self.lambda_identity,
            pool_size=self.pool_size, gan_mode=self.gan_mode, pool_seed=self.pool_seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("gen_a2b", "gen_b2a", "disc_a", "disc_b"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)


def build_cyclegan(filters=64, num_residual_blocks=9, disc_filters=64, disc_layers=3, generator_alignment="reference",
                   norm_affine=False, use_bias=True, upsampling="transpose", **kwargs):
    """The paper's CycleGAN: two ResNet generators and two PatchGAN discriminators, uncompiled.

    Args:
        filters, num_residual_blocks: of each generator (`build_resnet_generator`).
        generator_alignment: the generators' `alignment` ("reference": the PyTorch reference's).
        upsampling: the generators' `upsampling` ("transpose": the reference's; "resize":
            nearest-neighbour resize and convolution, without a visible grid).
        norm_affine, use_bias: of all four networks (learned instance-norm scale and offset;
            biases on the convolutions a normalisation follows).
        disc_filters, disc_layers: of each discriminator (`build_patchgan_discriminator`).
        **kwargs: passed to `CycleGAN` (`lambda_cycle`, `lambda_identity`, `pool_size`,
            `gan_mode`, `pool_seed`).

    Example:
    >>> model = build_cyclegan(filters=8, num_residual_blocks=1, disc_filters=8)
    >>> model.gen_a2b.name, model.disc_b.name
    ('gen_a2b', 'disc_b')
    """
    def generator(name):
        return build_resnet_generator(filters=filters, num_residual_blocks=num_residual_blocks, name=name,
                                      alignment=generator_alignment, norm_affine=norm_affine, use_bias=use_bias,
                                      upsampling=upsampling)

    def discriminator(name):
        return build_patchgan_discriminator(filters=disc_filters, num_layers=disc_layers, name=name,
                                            norm_affine=norm_affine, use_bias=use_bias)

    return CycleGAN(generator("gen_a2b"), generator("gen_b2a"), discriminator("disc_a"), discriminator("disc_b"),
                    **kwargs)


def _multi_worker(strategy):
    extended = getattr(strategy, "extended", None)
    return bool(getattr(extended, "_in_multi_worker_mode", lambda: False)())


def _loss_scaled(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)
