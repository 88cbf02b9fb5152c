"""The CycleGAN training wrapper: two generators, two discriminators, one `train_step`.

https://arxiv.org/abs/1703.10593, following the reference implementation: the generators
are updated together on the adversarial, cycle and identity losses, then each
discriminator on a real image and a fake drawn from its history pool, with its loss halved.
One Adam optimizer serves both generators, one both discriminators. What `tf.distribute`
needs is in `models/distribution.py`.
"""

import inspect
import warnings
from typing import NamedTuple, Optional

import keras
import tensorflow as tf

from tf_cyclegan.checks import check_decay
from tf_cyclegan.choices import DIRECTIONS, GENERATOR_WEIGHTS, NETWORKS, OLD_MODEL_KEYWORDS
from tf_cyclegan.models.averaging import averaged_copy, update_average
from tf_cyclegan.models.distribution import average_over_replicas, build_without_peeking, step_logs
from tf_cyclegan.models.image_pool import ImagePool
from tf_cyclegan.models.losses import check_gan_mode, discriminator_loss, gan_loss, l1_loss
from tf_cyclegan.models.patchgan import build_patchgan_discriminator
from tf_cyclegan.models.resnet_generator import build_resnet_generator

LOSS_NAMES = ("gen_total", "gan_a2b", "gan_b2a", "cycle_a", "cycle_b", "identity_a", "identity_b", "disc_a", "disc_b")


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class CycleGAN(keras.Model):
    """Unpaired image-to-image translation between domains A and B, trained with `fit`.

    Train on `(real_a, real_b)` batches of [-1, 1] images of a fixed crop size; `call()`
    translates A to B with `gen_a2b`. Arguments are documented in `__init__`.

    Example:
    >>> model = build_cyclegan(filters=8, num_residual_blocks=1, disc_filters=8)
    >>> model.compile()
    """

    directions = DIRECTIONS  # it translates both ways (a CUT model: a2b only)
    network_names = NETWORKS

    def train_step(self, data):
        """One update: both generators together, then each discriminator."""
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        self._build_for_batch(real_a)

        with tf.GradientTape(persistent=True) as gen_tape:
            translations = self.forward(real_a, real_b, training=True)
            losses = self.generator_losses(real_a, real_b, translations, training=True)
            scaled_gen_loss = self.gen_optimizer.scale_loss(average_over_replicas(losses["gen_total"]))
        gen_grads = gen_tape.gradient(scaled_gen_loss, self.generator_variables)
        del gen_tape
        self.gen_optimizer.apply_gradients(zip(gen_grads, self.generator_variables))
        if self.ema_decay is not None:
            self.update_averaged_generators()

        # Each discriminator sees a fake from its history pool; no gradient reaches the generators.
        pooled_fake_a = self.pool_a(tf.stop_gradient(translations.fake_a))
        pooled_fake_b = self.pool_b(tf.stop_gradient(translations.fake_b))
        losses["disc_a"], disc_a_grads = self.discriminator_step(self.disc_a, real_a, pooled_fake_a)
        losses["disc_b"], disc_b_grads = self.discriminator_step(self.disc_b, real_b, pooled_fake_b)
        self.disc_optimizer.apply_gradients(zip(disc_a_grads + disc_b_grads, self.discriminator_variables))
        return self._track(losses)

    def forward(self, real_a, real_b, training=False):
        """The generators' forward pass: the translations, both cycles and, with an identity
        loss, each generator on an image of its own target domain (else `same_*` are None).

        With `stack_network_calls`, a generator's calls that do not depend on each other run
        as one call on their inputs stacked along the batch: the same numbers, fewer ops.
        """
        call = self._call_stacked if self.stack_network_calls else self._call_each
        if self.lambda_identity > 0:
            fake_b, same_b = call(self.gen_a2b, training, real_a, real_b)
            cycled_a, fake_a, same_a = call(self.gen_b2a, training, fake_b, real_b, real_a)
        else:
            same_a = same_b = None
            fake_b = self.gen_a2b(real_a, training=training)
            cycled_a, fake_a = call(self.gen_b2a, training, fake_b, real_b)
        cycled_b = self.gen_a2b(fake_a, training=training)
        return Translations(fake_b, fake_a, cycled_a, cycled_b, same_a, same_b)

    def generator_losses(self, real_a, real_b, translations, training=False):
        """Every generator loss term (per example) and their weighted sum, `gen_total`."""
        fake_b, fake_a, cycled_a, cycled_b, same_a, same_b = translations
        gan_a2b = gan_loss(self.disc_b(fake_b, training=training), True, self.gan_mode)  # fool disc_b
        gan_b2a = gan_loss(self.disc_a(fake_a, training=training), True, self.gan_mode)  # fool disc_a
        cycle_a, cycle_b = l1_loss(real_a, cycled_a), l1_loss(real_b, cycled_b)  # come back where it started
        identity = same_a is not None  # leave an image of the target domain alone
        identity_a, identity_b = (l1_loss(real_a, same_a), l1_loss(real_b, same_b)) if identity else (0.0, 0.0)
        gen_total = (
            gan_a2b + gan_b2a
            + self.lambda_cycle * (cycle_a + cycle_b)
            + self.lambda_cycle * self.lambda_identity * (identity_a + identity_b)
        )
        losses = {"gen_total": gen_total, "gan_a2b": gan_a2b, "gan_b2a": gan_b2a,
                  "cycle_a": cycle_a, "cycle_b": cycle_b}
        if identity:
            losses.update(identity_a=identity_a, identity_b=identity_b)
        return losses

    def discriminator_step(self, disc, real, fake):
        """The reference's `backward_D_basic`: `disc`'s halved loss on a real and a fake image
        (per example), and its gradients for `disc`'s variables."""
        call = self._call_stacked if self.stack_network_calls else self._call_each
        with tf.GradientTape() as tape:
            pred_real, pred_fake = call(disc, True, real, fake)
            per_example = discriminator_loss(pred_real, pred_fake, self.gan_mode)
            scaled = self.disc_optimizer.scale_loss(average_over_replicas(per_example))
        return per_example, tape.gradient(scaled, disc.trainable_variables)

    def test_step(self, data):
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        translations = self.forward(real_a, real_b)
        losses = self.generator_losses(real_a, real_b, translations)
        losses["disc_a"] = discriminator_loss(self.disc_a(real_a), self.disc_a(translations.fake_a), self.gan_mode)
        losses["disc_b"] = discriminator_loss(self.disc_b(real_b), self.disc_b(translations.fake_b), self.gan_mode)
        return self._track(losses)

    def call(self, inputs, training=False):
        return self.gen_a2b(inputs, training=training)

    def get_generator(self, direction, weights="auto"):
        """The generator that translates `direction` ("a2b" or "b2a").

        Args:
            weights: "auto" (default): the averaged generator where the model keeps one
                (`ema_decay`), else the trained one; "averaged": the averaged one (an error
                without `ema_decay`); "raw": the trained one.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}. Received: {direction!r}")
        if weights not in GENERATOR_WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(GENERATOR_WEIGHTS)}. Received: {weights!r}")
        if weights == "averaged" and self.ema_decay is None:
            raise ValueError("This model keeps no averaged generators (it was built without ema_decay): "
                             "use weights='raw'")
        averaged = weights == "averaged" or (weights == "auto" and self.ema_decay is not None)
        return getattr(self, f"gen_{direction}_ema" if averaged else f"gen_{direction}")

    def update_averaged_generators(self):
        """Moves `gen_a2b_ema` and `gen_b2a_ema` one step towards the generators' weights
        (`models/averaging.py`); `train_step` calls it after each generator update."""
        self.ema_updates.assign_add(1)
        update_average(self.gen_a2b_ema, self.gen_a2b, self.ema_decay, self.ema_updates)
        update_average(self.gen_b2a_ema, self.gen_b2a, self.ema_decay, self.ema_updates)

    def __init__(
        self, gen_a2b, gen_b2a, disc_a, disc_b, lambda_cycle=10.0, lambda_identity=0.5,
        pool_size=50, gan_mode="lsgan", pool_seed=None, ema_decay=None, **kwargs,
    ):
        """Args:
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
            ema_decay: float in (0, 1) or None (default). Where set, the model also keeps
                `gen_a2b_ema` and `gen_b2a_ema`: averages of the generators' weights over
                training (`models/averaging.py`), updated after each generator step, which
                translation uses by default (`get_generator()`). Training itself is unchanged.
        """
        super().__init__(**kwargs)
        for name, network in zip(NETWORKS, (gen_a2b, gen_b2a, disc_a, disc_b)):
            if not isinstance(network, keras.layers.Layer):
                raise ValueError(f"{name} must be a Keras model (keras.Model). Received: {name}={network!r}")
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
        self.ema_decay = check_decay("ema_decay", ema_decay)
        if self.ema_decay is not None:
            self.gen_a2b_ema = averaged_copy(gen_a2b, "gen_a2b_ema")
            self.gen_b2a_ema = averaged_copy(gen_b2a, "gen_b2a_ema")
            # Replicas compute the same update from the same weights: the first one's is kept.
            self.ema_updates = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False,
                                               name="ema_updates", aggregation="only_first_replica")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}
        # How the step runs, not what it computes (not in the config): plain Keras unless
        # `tf_cyclegan.speed.apply_cpu_speedups` sets them.
        self.stack_network_calls = False
        self.train_function_wrapper = None

    def compile(self, gen_optimizer=None, disc_optimizer=None, **kwargs):
        """Configures training.

        Args:
            gen_optimizer: optimizer for both generators; default Adam(2e-4, beta_1=0.5).
            disc_optimizer: optimizer for both discriminators; same default.
            **kwargs: passed to `keras.Model.compile` (`jit_compile`, `steps_per_execution`, ...).
                `optimizer` and `loss` are not accepted: the losses are CycleGAN's own.

        The CPU speed-ups are attached afterwards, by `tf_cyclegan.speed.apply_cpu_speedups`
        (`train.cpu_speedups` in training).
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

    # The plumbing: how the networks are called, building, Keras' hooks.

    @staticmethod
    def _call_each(network, training, *inputs):
        return [network(x, training=training) for x in inputs]

    def _call_stacked(self, network, training, *inputs):
        """`_call_each`, computed as one call on the inputs stacked along the batch axis.
        Instance norm (and everything else in these networks) treats each image on its own,
        so the numbers are the same. Inputs of different sizes, and networks with batch
        statistics (BatchNormalization), are called one by one.
        """
        shapes = {tuple(x.shape[1:]) for x in inputs}
        same_size = len(shapes) == 1 and None not in next(iter(shapes))
        if len(inputs) == 1 or not same_size or not self._per_image:
            return self._call_each(network, training, *inputs)
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
    def training_optimizers(self):
        """The compiled optimizers: the generators', then the discriminators'."""
        return [self.gen_optimizer, self.disc_optimizer]

    @property
    def generator_variables(self):
        return self.gen_a2b.trainable_variables + self.gen_b2a.trainable_variables

    @property
    def discriminator_variables(self):
        return self.disc_a.trainable_variables + self.disc_b.trainable_variables

    def make_train_function(self, force=False):
        """Keras' training function, passed through `train_function_wrapper` where one is set
        (the CPU speed-ups run it with lean graph-optimisation options)."""
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=True)
        if self.train_function_wrapper is not None:
            self.train_function = self.train_function_wrapper(self.train_function)
        return self.train_function

    def _track(self, losses):
        for name, value in losses.items():
            self.trackers[name].update_state(value)
        logs = {name: self.trackers[name].result() for name in LOSS_NAMES if name in losses}
        return step_logs(logs, self.distribute_strategy)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Overrides Keras' private pre-fit build hook (there is no public one) for
        # keras-team/keras#20585; see models/distribution.py, and tests/models/test_private_api.py
        # for the test that fails if Keras renames it.
        build_without_peeking(self, iterator)

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
        for name in NETWORKS:
            config[name] = keras.saving.serialize_keras_object(getattr(self, name))
        config.update(
            lambda_cycle=self.lambda_cycle, lambda_identity=self.lambda_identity,
            pool_size=self.pool_size, gan_mode=self.gan_mode, pool_seed=self.pool_seed,
        )
        if self.ema_decay is not None:  # absent otherwise: files of models without it read as before
            config["ema_decay"] = self.ema_decay
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in NETWORKS:
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)


def build_cyclegan(filters=64, num_residual_blocks=9, disc_filters=64, disc_num_layers=3, alignment="reference",
                   norm_affine=False, use_bias=True, upsampling="transpose", **kwargs):
    """The paper's CycleGAN: two ResNet generators and two PatchGAN discriminators, uncompiled.

    The config's `model` section is this function's keyword arguments, key for key
    (`build_cyclegan(**model_arguments(config.model))`); version 0.2.0's names
    `generator_alignment=` and `disc_layers=` are still taken, with a warning naming the new one.

    Args:
        filters, num_residual_blocks: of each generator (`build_resnet_generator`).
        alignment: the generators' `alignment` ("reference": the PyTorch reference's).
        upsampling: the generators' `upsampling` ("transpose": the reference's; "resize":
            nearest-neighbour resize and convolution, without a visible grid).
        norm_affine, use_bias: of all four networks (learned instance-norm scale and offset;
            biases on the convolutions a normalisation follows).
        disc_filters, disc_num_layers: each discriminator's `filters` and `num_layers`
            (`build_patchgan_discriminator`).
        **kwargs: passed to `CycleGAN` (`lambda_cycle`, `lambda_identity`, `pool_size`,
            `gan_mode`, `pool_seed`).

    Example:
    >>> model = build_cyclegan(filters=8, num_residual_blocks=1, disc_filters=8)
    >>> model.gen_a2b.name, model.disc_b.name
    ('gen_a2b', 'disc_b')
    """
    renamed = _old_keywords(kwargs, alignment=alignment, disc_num_layers=disc_num_layers)
    alignment, disc_num_layers = renamed["alignment"], renamed["disc_num_layers"]

    def generator(name):
        return build_resnet_generator(filters=filters, num_residual_blocks=num_residual_blocks, name=name,
                                      alignment=alignment, norm_affine=norm_affine, use_bias=use_bias,
                                      upsampling=upsampling)

    def discriminator(name):
        return build_patchgan_discriminator(filters=disc_filters, num_layers=disc_num_layers, name=name,
                                            norm_affine=norm_affine, use_bias=use_bias)

    return CycleGAN(generator("gen_a2b"), generator("gen_b2a"), discriminator("disc_a"), discriminator("disc_b"),
                    **kwargs)


def _old_keywords(kwargs, **given):
    """`given` (build_cyclegan's arguments by their new names) with any of version 0.2.0's names
    in `kwargs` (`OLD_MODEL_KEYWORDS`) taken out of it and put under the new one, each with a
    warning. TypeError where the new name holds a value other than its default as well: both
    given, it cannot say which was meant."""
    defaults = inspect.signature(build_cyclegan).parameters
    for old, new in OLD_MODEL_KEYWORDS.items():
        if old not in kwargs:
            continue
        if given[new] != defaults[new].default:
            raise TypeError(f"build_cyclegan() got both {old}= and {new}=, its new name: give only {new}=. "
                            f"Received: {old}={kwargs[old]!r}, {new}={given[new]!r}")
        warnings.warn(f"build_cyclegan: {old}= is now {new}=", stacklevel=3)
        given[new] = kwargs.pop(old)
    return given


class Translations(NamedTuple):
    """The generators' outputs in one step; `same_*` are None without an identity loss."""

    fake_b: tf.Tensor  # gen_a2b(real_a)
    fake_a: tf.Tensor  # gen_b2a(real_b)
    cycled_a: tf.Tensor  # gen_b2a(fake_b)
    cycled_b: tf.Tensor  # gen_a2b(fake_a)
    same_a: Optional[tf.Tensor]  # gen_b2a(real_a)
    same_b: Optional[tf.Tensor]  # gen_a2b(real_b)


def default_optimizer(learning_rate=2e-4, beta_1=0.5):
    """Adam(2e-4, beta_1=0.5), the paper's optimizer."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1)


def _loss_scaled(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)
