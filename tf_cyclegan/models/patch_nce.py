"""PatchNCE: CUT's contrastive loss between patches of the input and of its translation.

https://arxiv.org/abs/2007.15651, section 3, following the official code (`models/networks.py:
PatchSampleF` with `netF mlp_sample`, `models/patchnce.py:PatchNCELoss`). For each tapped
encoder layer, the same patch locations are sampled from the input's features (the keys)
and from the translation's (the queries); each location is projected by a small MLP and
L2-normalised; a query should pick out its own key among the keys of the other locations
of the same image (a cross-entropy over `temperature`-scaled cosine similarities).
"""

import keras
import tensorflow as tf

from tf_cyclegan.models.initializers import xavier_initializer


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class PatchSampleHead(keras.layers.Layer):
    """CUT's feature head F: samples patches of each tapped feature map, projects each with a
    two-layer MLP (Dense, ReLU, Dense) of its own, and L2-normalises the result.

    The official head builds its MLPs on the first batch it sees; this one is told the
    tapped layers' channel counts, so it is built (and can be saved) before any data.

    It computes in float32 whatever the global policy (its `dtype` is always "float32",
    files saved under another policy included): under mixed_float16 its gradients, which the
    L2 normalisation makes large where a projection is short, overflow float16 at any loss
    scale, so the head would never be updated. Its cost is a few small matrix products.

    Args:
        channels: list of int. Channels of each tapped feature map, in order.
        units: int, default 256 (the official `netF_nc`). Width of both Dense layers.

    Call with `features` (a list of `(batch, height, width, channels[i])` maps) and
    `patch_ids` (a list of int vectors of flat `height * width` positions, the same for
    every image of the batch); returns a list of `(batch, len(patch_ids[i]), units)` float32.

    Example:
    >>> head = PatchSampleHead(channels=[3, 8], units=16)
    >>> features = [keras.ops.ones((2, 6, 6, 3)), keras.ops.ones((2, 4, 4, 8))]
    >>> [tuple(s.shape) for s in head(features, [keras.ops.arange(5), keras.ops.arange(3)])]
    [(2, 5, 16), (2, 3, 16)]
    """

    def __init__(self, channels, units=256, **kwargs):
        super().__init__(**{**kwargs, "dtype": "float32"})
        if not channels or any(int(c) < 1 for c in channels) or units < 1:
            raise ValueError(f"Need channels (each >= 1) and units >= 1. Received: channels={channels!r}, "
                             f"units={units!r}")
        self.channels = [int(c) for c in channels]
        self.units = int(units)
        # One MLP per tapped layer: mlp{i}_dense1 (ReLU), mlp{i}_dense2; the official mlp_{i}.0, .2.
        self.hidden_layers, self.output_layers = [], []
        for i, c in enumerate(self.channels):
            hidden = keras.layers.Dense(self.units, activation="relu", kernel_initializer=xavier_initializer(),
                                        name=f"mlp{i}_dense1", dtype=self.dtype_policy)
            output = keras.layers.Dense(self.units, kernel_initializer=xavier_initializer(), name=f"mlp{i}_dense2",
                                        dtype=self.dtype_policy)
            hidden.build((None, c))
            output.build((None, self.units))
            self.hidden_layers.append(hidden)
            self.output_layers.append(output)
        self.built = True

    def call(self, features, patch_ids):
        if len(features) != len(self.channels) or len(patch_ids) != len(self.channels):
            raise ValueError(f"Expected {len(self.channels)} feature maps and patch id vectors. Received: "
                             f"{len(features)} feature maps and {len(patch_ids)} id vectors")
        return [self._project(feature, ids, hidden, output)
                for feature, ids, hidden, output in zip(features, patch_ids, self.hidden_layers, self.output_layers)]

    @staticmethod
    def _project(feature, ids, hidden, output):
        shape = tf.shape(feature)
        flat = tf.reshape(feature, (shape[0], shape[1] * shape[2], feature.shape[-1]))  # row-major, as the official
        sampled = tf.cast(tf.gather(flat, ids, axis=1), tf.float32)
        projected = output(hidden(sampled))
        # The official Normalize: x / (||x|| + 1e-7), not tf.math.l2_normalize's x / max(||x||, eps).
        # The root of a zero sum has no gradient (NaN, in PyTorch too); a patch whose ReLU MLP
        # gives exactly zero happens with narrow heads, so the sum is floored far below any value.
        squared = tf.reduce_sum(tf.square(projected), axis=-1, keepdims=True)
        return projected / (tf.sqrt(tf.maximum(squared, 1e-30)) + 1e-7)

    def get_config(self):
        return {**super().get_config(), "channels": list(self.channels), "units": self.units}


def sample_patch_ids(features, num_patches=256, seed=None):
    """For each feature map, `min(num_patches, height * width)` distinct flat positions drawn
    uniformly, shared by all images of the batch (the official draws a permutation and keeps
    its head). Drawn as the top-k of uniform noise, which XLA compiles; needs static sizes.

    Args:
        features: list of `(batch, height, width, channels)` tensors.
        num_patches: int, default 256 (the official `num_patches`).
        seed: int, `keras.random.SeedGenerator` or None, passed to `keras.random.uniform`.
    """
    ids = []
    for feature in features:
        height, width = feature.shape[1], feature.shape[2]
        if height is None or width is None:
            raise ValueError(f"Sampling patches needs feature maps of known size. Received: shape={feature.shape}")
        count = min(num_patches, height * width)
        noise = keras.random.uniform((height * width,), seed=seed)
        ids.append(tf.math.top_k(noise, k=count, sorted=False).indices)
    return ids


def patch_nce_loss(query, key, temperature=0.07):
    """The official `PatchNCELoss` per patch: `(batch, patches)` float32.

    Each query's positive is the key at its own location; its negatives are the keys of the
    other locations of the same image (`nce_includes_all_negatives_from_minibatch False`).
    The keys are constants (`stop_gradient`, the official `detach`): only the translation's
    side learns. As the official, a query's similarity to its own key appears once more among
    the negatives, filled with -10 (about exp(-143) after the temperature: nothing).

    Args:
        query: `(batch, patches, dim)` L2-normalised features of the translation.
        key: `(batch, patches, dim)` L2-normalised features of the input, same locations.
        temperature: float, default 0.07 (the official `nce_T`).
    """
    query = tf.cast(query, tf.float32)
    key = tf.stop_gradient(tf.cast(key, tf.float32))
    positive = tf.reduce_sum(query * key, axis=-1, keepdims=True)
    negative = tf.matmul(query, key, transpose_b=True)
    diagonal = tf.eye(tf.shape(query)[1], batch_shape=[1], dtype=tf.bool)
    negative = tf.where(diagonal, tf.constant(-10.0), negative)
    logits = tf.concat([positive, negative], axis=-1) / temperature
    return tf.reduce_logsumexp(logits, axis=-1) - logits[..., 0]
