"""CUT and FastCUT: one-sided unpaired translation A -> B with a patchwise contrastive loss.

https://arxiv.org/abs/2007.15651 (Park et al., ECCV 2020), following the official code
(`models/cut_model.py`): each step updates the discriminator on a real B and the current
translation (loss halved, no image pool), then the generator and the feature head together
on lambda_gan * LSGAN + lambda_nce * PatchNCE(real_a, fake_b). CUT also asks the generator
to leave a B image alone by PatchNCE(real_b, same_b) and averages the two NCE terms;
FastCUT (lambda_nce 10, no identity) instead flips the step's input left-right half the time
and compares the translation's features flipped back with the input's (flip equivariance).
"""

import keras
import tensorflow as tf

from tf_cyclegan.checks import check_decay
from tf_cyclegan.choices import GENERATOR_WEIGHTS
from tf_cyclegan.models.averaging import averaged_copy, update_average
from tf_cyclegan.models.cut_discriminator import build_cut_discriminator
from tf_cyclegan.models.cut_generator import build_cut_generator, build_feature_extractor, default_nce_layers
from tf_cyclegan.models.distribution import average_over_replicas, step_logs
from tf_cyclegan.models.losses import discriminator_loss, gan_loss
from tf_cyclegan.models.patch_nce import PatchSampleHead, patch_nce_loss, sample_patch_ids
from tf_cyclegan.models.pytorch_adam import PyTorchAdam

LOSS_NAMES = ("gen_total", "gan_a2b", "nce_a2b", "nce_identity_b", "disc_b")

# The official defaults of each `--CUT_mode`.
MODES = {
    "cut": dict(lambda_gan=1.0, lambda_nce=1.0, nce_identity=True, flip_equivariance=False),
    "fastcut": dict(lambda_gan=1.0, lambda_nce=10.0, nce_identity=False, flip_equivariance=True),
}


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class CUT(keras.Model):
    """Contrastive unpaired translation from domain A to B, trained with `fit`.

    Train on `(real_a, real_b)` batches of [-1, 1] images of one fixed size; `call()`
    translates A to B with `generator`. Arguments are documented in `__init__`.

    Example:
    >>> model = build_cut("fastcut", filters=4, num_residual_blocks=5, disc_filters=4, head_units=16)
    >>> model.compile()
    """

    # What the training, translation and export code asks of a model, as of `CycleGAN`.
    directions = ("a2b",)
    network_names = ("generator", "discriminator", "feature_head")

    def train_step(self, data):
        """One update: the discriminator, then the generator and the feature head."""
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        flip = keras.random.uniform((), seed=self.seed_generator) < 0.5 if self.flip_equivariance else False
        return self._track(self.update(real_a, real_b, flip=flip))

    def update(self, real_a, real_b, flip=False, patch_ids=None):
        """The step of `train_step` with its randomness given; returns the per-example losses.

        Args:
            flip: bool or boolean scalar tensor. Flip the input left-right (flip equivariance).
            patch_ids: None (drawn) or {"a2b": ids, "identity": ids}, each a list of int
                vectors, one per tapped layer (`sample_patch_ids`), for the two NCE terms.
        """
        patch_ids = patch_ids or {}
        with tf.GradientTape(persistent=True) as tape:
            # One generator call on cat(real_a, real_b), as the official; it also gives the
            # inputs' encoder features, PatchNCE's keys (the official computes them again).
            real = (real_a, real_b) if self.nce_identity else (real_a,)
            outputs = self._call_stacked(self.generator_with_features, True, *[flip_width(x, flip) for x in real])
            fake_b = outputs[0][0]
            same_b = outputs[1][0] if self.nce_identity else None
            with tape.stop_recording():
                # Keys are constants (PatchNCE stops their gradient): left off the tape, the
                # flip's `tf.cond` is not built with its gradient, which doubled the tracing.
                keys = [self._unflipped_keys(source, output[1:], flip) for source, output in zip(real, outputs)]
                # The official order: D learns on the translation of the current G first; G's
                # adversarial loss then asks the updated D.
                disc_b = self.discriminator_step(real_b, tf.stop_gradient(fake_b))
            losses = self.generator_losses(real_a, real_b, fake_b, same_b, flip, patch_ids, training=True,
                                           keys=keys)
            gen_loss = average_over_replicas(losses["gen_total"])
            scaled_gen_loss = self.gen_optimizer.scale_loss(gen_loss)
            scaled_head_loss = self.head_optimizer.scale_loss(gen_loss)  # each optimizer its own loss scale
        gen_grads = tape.gradient(scaled_gen_loss, self.generator.trainable_variables)
        self.gen_optimizer.apply_gradients(zip(gen_grads, self.generator.trainable_variables))
        if self.ema_decay is not None:
            self.update_averaged_generator()
        if self.lambda_nce > 0:
            head_grads = tape.gradient(scaled_head_loss, self.feature_head.trainable_variables)
            self.head_optimizer.apply_gradients(zip(head_grads, self.feature_head.trainable_variables))
        del tape
        return {**losses, "disc_b": disc_b}

    def generator_losses(self, real_a, real_b, fake_b, same_b=None, flip=False, patch_ids=None, training=False,
                         keys=None):
        """Every generator loss term (per example, unweighted) and their weighted sum, `gen_total`.

        `keys`: None, or the encoder features of `real_a` (and of `real_b` where `same_b` is
        given), one list each, where the caller has them already (`nce_loss`)."""
        patch_ids = patch_ids or {}
        keys_a, keys_b = (list(keys or ()) + [None, None])[:2]
        gan_a2b = gan_loss(self.discriminator(fake_b, training=training), True, "lsgan")  # fool the discriminator
        losses = {"gan_a2b": gan_a2b}
        gen_total = self.lambda_gan * gan_a2b
        if self.lambda_nce > 0:
            # Each patch of the translation should match the input's patch at its place.
            nce = losses["nce_a2b"] = self.nce_loss(real_a, fake_b, flip, patch_ids.get("a2b"), training, keys_a)
            if same_b is not None:
                losses["nce_identity_b"] = self.nce_loss(real_b, same_b, flip, patch_ids.get("identity"), training,
                                                         keys_b)
                nce = 0.5 * (nce + losses["nce_identity_b"])
            gen_total += self.lambda_nce * nce
        losses["gen_total"] = gen_total
        return losses

    def nce_loss(self, source, translated, flip=False, patch_ids=None, training=False, keys=None):
        """PatchNCE between `source` (keys) and its translation (queries), averaged over the
        tapped layers, per example. The translation of a flipped input is flipped back.

        `keys`: None, or `self.encoder(source)` where the caller has it already (the same
        numbers: keys are constants either way)."""
        if keys is None:
            keys, queries = self._calls(self.encoder, training, source, translated)
        else:
            queries = self.encoder(translated, training=training)
        queries = [flip_width(q, flip) for q in queries]
        if patch_ids is None:
            patch_ids = sample_patch_ids(keys, self.num_patches, seed=self.seed_generator)
        sampled_keys = self.feature_head(keys, patch_ids)
        sampled_queries = self.feature_head(queries, patch_ids)
        per_layer = [tf.reduce_mean(patch_nce_loss(q, k, self.temperature), axis=1)
                     for q, k in zip(sampled_queries, sampled_keys)]
        return tf.add_n(per_layer) / len(per_layer)

    def _unflipped_keys(self, source, features, flip):
        """The encoder features of `source` given `features`, those of the generator's input:
        the same where the step did not flip it, else computed (the official compares the
        flipped translation's features, flipped back, with the unflipped input's)."""
        if flip is False:
            return list(features)
        if flip is True:
            return self.encoder(source, training=True)
        return tf.cond(flip, lambda: self.encoder(source, training=True), lambda: list(features))

    def discriminator_step(self, real_b, fake_b):
        """The discriminator's update on a real and a generated B; returns its halved loss
        per example (the official `compute_D_loss`)."""
        with tf.GradientTape() as tape:
            pred_real, pred_fake = self._calls(self.discriminator, True, real_b, fake_b)
            per_example = discriminator_loss(pred_real, pred_fake, "lsgan")
            scaled = self.disc_optimizer.scale_loss(average_over_replicas(per_example))
        variables = self.discriminator.trainable_variables
        self.disc_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return per_example

    def test_step(self, data):
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        fake_b = self.generator(real_a)
        same_b = self.generator(real_b) if self.nce_identity else None
        losses = self.generator_losses(real_a, real_b, fake_b, same_b)
        losses["disc_b"] = discriminator_loss(self.discriminator(real_b), self.discriminator(fake_b), "lsgan")
        return self._track(losses)

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def get_generator(self, direction="a2b", weights="auto"):
        """The generator that translates `direction` (only "a2b": CUT is one-sided).

        Args:
            weights: "auto" (default): the averaged generator where the model keeps one
                (`ema_decay`), else the trained one; "averaged": the averaged one (an error
                without `ema_decay`); "raw": the trained one.
        """
        if direction == "b2a":
            raise ValueError(f"{self._mode_name} translates one way, A to B: it has no b2a generator")
        if direction not in self.directions:
            raise ValueError(f"direction must be one of {', '.join(self.directions)}. Received: {direction!r}")
        if weights not in GENERATOR_WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(GENERATOR_WEIGHTS)}. Received: {weights!r}")
        if weights == "averaged" and self.ema_decay is None:
            raise ValueError("This model keeps no averaged generator (it was built without ema_decay): "
                             "use weights='raw'")
        averaged = weights == "averaged" or (weights == "auto" and self.ema_decay is not None)
        return self.generator_ema if averaged else self.generator

    def update_averaged_generator(self):
        """Moves `generator_ema` one step towards the generator's weights (`models/averaging.py`);
        `train_step` calls it after each generator update."""
        self.ema_updates.assign_add(1)
        update_average(self.generator_ema, self.generator, self.ema_decay, self.ema_updates)

    @property
    def training_optimizers(self):
        """The compiled optimizers, one per trained network: generator, discriminator, feature head."""
        return [self.gen_optimizer, self.disc_optimizer, self.head_optimizer]

    @property
    def _mode_name(self):
        return "FastCUT" if self.flip_equivariance and not self.nce_identity else "CUT"

    def __init__(self, generator, discriminator, feature_head, nce_layers=None, lambda_gan=1.0, lambda_nce=1.0,
                 nce_identity=True, flip_equivariance=False, num_patches=256, temperature=0.07, seed=None,
                 ema_decay=None, **kwargs):
        """Args:
            generator: keras.Model translating A to B (`build_cut_generator`).
            discriminator: keras.Model telling real B from generated B (`build_cut_discriminator`).
            feature_head: `PatchSampleHead` for the tapped layers' channels.
            nce_layers: list of str, the generator's layers PatchNCE compares; default the
                official five (`default_nce_layers`).
            lambda_gan: float, default 1. Weight of the adversarial loss.
            lambda_nce: float, default 1 (CUT; FastCUT 10). Weight of PatchNCE; 0 skips it.
            nce_identity: bool, default True (CUT). Also PatchNCE(real_b, generator(real_b)).
            flip_equivariance: bool, default False (CUT; FastCUT True).
            num_patches: int, default 256. Patches per tapped layer and step.
            temperature: float, default 0.07. PatchNCE's temperature.
            seed: int or None. Seed of the patch and flip draws.
            ema_decay: float in (0, 1) or None (default). Where set, the model also keeps
                `generator_ema`, an average of the generator's weights over training
                (`models/averaging.py`), updated after each generator step, which translation
                uses by default (`get_generator()`). Training itself is unchanged.
        """
        super().__init__(**kwargs)
        for name, network in (("generator", generator), ("discriminator", discriminator),
                              ("feature_head", feature_head)):
            if not isinstance(network, keras.layers.Layer):
                raise ValueError(f"{name} must be a Keras model or layer. Received: {name}={network!r}")
        if lambda_gan < 0 or lambda_nce < 0 or num_patches < 1 or not temperature > 0:
            raise ValueError(
                "Need lambda_gan >= 0, lambda_nce >= 0, num_patches >= 1 and temperature > 0. Received: "
                f"lambda_gan={lambda_gan!r}, lambda_nce={lambda_nce!r}, num_patches={num_patches!r}, "
                f"temperature={temperature!r}"
            )
        self.generator = generator
        self.discriminator = discriminator
        self.feature_head = feature_head
        self.nce_layers = list(nce_layers or default_nce_layers(_residual_blocks(generator)))
        self.lambda_gan = float(lambda_gan)
        self.lambda_nce = float(lambda_nce)
        self.nce_identity = bool(nce_identity)
        self.flip_equivariance = bool(flip_equivariance)
        self.num_patches = int(num_patches)
        self.temperature = float(temperature)
        self.seed = seed
        # The generator's encoder up to the tapped layers: the same layers and weights.
        self.encoder = build_feature_extractor(generator, self.nce_layers)
        # The generator's translation and those features of its input, from one call.
        self.generator_with_features = keras.Model(generator.input, [generator.output, *self.encoder.outputs],
                                                   name=f"{generator.name}_with_features")
        channels = [int(output.shape[-1]) for output in self.encoder.outputs]
        if list(feature_head.channels) != channels:
            raise ValueError(f"feature_head.channels must be the tapped layers' channels {channels}. "
                             f"Received: feature_head.channels={feature_head.channels!r}")
        # Under a tf.distribute strategy its state is mirrored and every replica advances its
        # copy alike, so all draw the same patch ids and flip: the official shares the ids
        # across the batch, and the replicas' update is one device's (test_cut_distribute.py).
        self.seed_generator = keras.random.SeedGenerator(seed, name="patch_seed")
        self.ema_decay = check_decay("ema_decay", ema_decay)
        if self.ema_decay is not None:
            self.generator_ema = averaged_copy(generator, "generator_ema")
            # Replicas compute the same update from the same weights: the first one's is kept.
            self.ema_updates = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False,
                                               name="ema_updates", aggregation="only_first_replica")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}
        # How the step runs, not what it computes (not in the config): plain Keras unless
        # `tf_cyclegan.speed.apply_cpu_speedups` sets them.
        self.stack_network_calls = False
        self.train_function_wrapper = None
        self.built = True  # every network is built; nothing depends on the image size

    def compile(self, gen_optimizer=None, disc_optimizer=None, head_optimizer=None, **kwargs):
        """Configures training.

        Args:
            gen_optimizer, disc_optimizer, head_optimizer: for the generator, the discriminator
                and the feature head; each default `default_optimizer()`, the official's Adam.
            **kwargs: passed to `keras.Model.compile` (`jit_compile`, `steps_per_execution`, ...).
                `optimizer` and `loss` are not accepted: the losses are CUT's own.
        """
        for key in ("optimizer", "loss"):
            if key in kwargs:
                raise ValueError(
                    "CUT.compile takes gen_optimizer, disc_optimizer and head_optimizer and computes its own "
                    f"losses. Received: {key}={kwargs[key]!r}"
                )
        optimizers = [keras.optimizers.get(opt or default_optimizer())
                      for opt in (gen_optimizer, disc_optimizer, head_optimizer)]
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            # compile() would wrap only model.optimizer; every optimizer needs loss scaling.
            optimizers = [_loss_scaled(opt) for opt in optimizers]
        gen_optimizer, self.disc_optimizer, self.head_optimizer = optimizers
        super().compile(optimizer=gen_optimizer, **kwargs)
        # Each optimizer on exactly its own network, now: Keras would otherwise build
        # model.optimizer on every trainable variable and leave the others unbuilt.
        self.gen_optimizer.build(self.generator.trainable_variables)
        self.disc_optimizer.build(self.discriminator.trainable_variables)
        self.head_optimizer.build(self.feature_head.trainable_variables)
        self._compile_kwargs = kwargs

    @property
    def gen_optimizer(self):
        """The generator's optimizer; Keras knows it as `model.optimizer`."""
        return self.optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    def make_train_function(self, force=False):
        """Keras' training function, passed through `train_function_wrapper` where one is set
        (the CPU speed-ups run it with lean graph-optimisation options)."""
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=True)
        if self.train_function_wrapper is not None:
            self.train_function = self.train_function_wrapper(self.train_function)
        return self.train_function

    def _calls(self, network, training, *inputs):
        """`network` on each input: one call each, or with `stack_network_calls` one call on
        them stacked along the batch (the same numbers: these networks treat each image alone)."""
        if self.stack_network_calls:
            return self._call_stacked(network, training, *inputs)
        return [network(x, training=training) for x in inputs]

    @staticmethod
    def _call_stacked(network, training, *inputs):
        """One call of `network` on `inputs` concatenated along the batch; its output (a tensor
        or a list of them) split back, one per input."""
        if len(inputs) == 1:
            return [network(inputs[0], training=training)]
        outputs = network(tf.concat(inputs, axis=0), training=training)
        sizes = [tf.shape(x)[0] for x in inputs]
        parts = [tf.split(t, sizes, axis=0) for t in tf.nest.flatten(outputs)]
        return [tf.nest.pack_sequence_as(outputs, [p[i] for p in parts]) for i in range(len(inputs))]

    def _track(self, losses):
        for name, value in losses.items():
            self.trackers[name].update_state(value)
        logs = {name: self.trackers[name].result() for name in LOSS_NAMES if name in losses}
        return step_logs(logs, self.distribute_strategy)

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {
            **{name: keras.saving.serialize_keras_object(getattr(self, name))
               for name in ("gen_optimizer", "disc_optimizer", "head_optimizer")},
            **{k: v for k, v in self._compile_kwargs.items() if k in ("jit_compile", "steps_per_execution")},
        }

    def compile_from_config(self, config):
        config = dict(config)
        for name in ("gen_optimizer", "disc_optimizer", "head_optimizer"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        self.compile(**config)

    def get_config(self):
        config = super().get_config()
        for name in ("generator", "discriminator", "feature_head"):
            config[name] = keras.saving.serialize_keras_object(getattr(self, name))
        config.update(
            nce_layers=list(self.nce_layers), lambda_gan=self.lambda_gan, lambda_nce=self.lambda_nce,
            nce_identity=self.nce_identity, flip_equivariance=self.flip_equivariance,
            num_patches=self.num_patches, temperature=self.temperature, seed=self.seed,
        )
        if self.ema_decay is not None:  # absent otherwise, as CycleGAN's
            config["ema_decay"] = self.ema_decay
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("generator", "discriminator", "feature_head"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)


def build_cut(mode="cut", filters=64, num_residual_blocks=9, disc_filters=64, disc_num_layers=3, head_units=256,
              nce_layers=None, **kwargs):
    """CUT or FastCUT with the official networks and that mode's defaults, uncompiled.

    Args:
        mode: "cut" (lambda_nce 1, identity NCE) or "fastcut" (lambda_nce 10, flip
            equivariance), the official `--CUT_mode`; `kwargs` override its defaults.
        filters, num_residual_blocks: of the generator (`build_cut_generator`).
        disc_filters, disc_num_layers: of the discriminator (`build_cut_discriminator`).
        head_units: int, default 256. Width of the feature head's MLPs (the official `netF_nc`).
        nce_layers: the generator's layers PatchNCE compares (default the official five,
            which need num_residual_blocks >= 5).
        **kwargs: passed to `CUT` (`lambda_gan`, `lambda_nce`, `nce_identity`,
            `flip_equivariance`, `num_patches`, `temperature`, `seed`).

    Example:
    >>> model = build_cut("cut", filters=4, num_residual_blocks=5, disc_filters=4, head_units=16)
    >>> model.generator.name, model.feature_head.channels
    ('generator', [3, 8, 16, 16, 16])
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {tuple(MODES)}. Received: mode={mode!r}")
    generator = build_cut_generator(filters=filters, num_residual_blocks=num_residual_blocks, name="generator")
    discriminator = build_cut_discriminator(filters=disc_filters, num_layers=disc_num_layers, name="discriminator")
    nce_layers = list(nce_layers or default_nce_layers(num_residual_blocks))
    channels = [int(generator.get_layer(name).output.shape[-1]) for name in nce_layers]
    feature_head = PatchSampleHead(channels, units=head_units, name="feature_head")
    return CUT(generator, discriminator, feature_head, nce_layers=nce_layers, **{**MODES[mode], **kwargs})


def flip_width(images, flip):
    """`images` (NHWC) mirrored left-right where `flip` (a bool or a boolean scalar tensor)."""
    if flip is False:
        return images
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


def default_optimizer(learning_rate=2e-4, beta_1=0.5):
    """The official optimizer of all three networks: PyTorch's Adam(2e-4, betas=(0.5, 0.999),
    eps=1e-8), as `PyTorchAdam` (Keras' Adam adds epsilon elsewhere: see its module)."""
    return PyTorchAdam(learning_rate=learning_rate, beta_1=beta_1, epsilon=1e-8)


def _residual_blocks(generator):
    return sum(1 for layer in generator.layers if layer.name.startswith("res") and layer.name.endswith("_add"))


def _loss_scaled(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)
