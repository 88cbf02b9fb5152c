"""Classes that `.keras` files of versions 0.1.0 and 0.2.0 name, kept so that those files load.

A `.keras` file names each custom object by its registered name, and its weights by the
class names of the layers (`layers/conv2d_3/vars`). Version 0.1.0 saved its convolutions as
`tf_cyclegan>Conv2D`, its discriminators' padding as `tf_cyclegan>ZeroPadding2D` and its
optimizers as `tf_cyclegan>FusedAdam`; version 0.2.0 its convolutions as
`tf_cyclegan>LeanConv2D`. All these names stay registered, for classes that compute
exactly what Keras' own do and keep those class names, so that the weights are found where
the old files put them. The CPU speed-ups these classes once carried are attached to
plain Keras objects now (`tf_cyclegan.speed`), to these as to any. New networks use
`keras.layers.Conv2D`, `keras.layers.ZeroPadding2D` and `keras.optimizers.Adam`; nothing
in the package builds these. `load_weights` reads weight files (a run's backups) written
with either convolution class into a network built with the other.
"""

import os
import re
import shutil
import tempfile

import h5py
import keras

from tf_cyclegan.choices import NETWORKS


@keras.saving.register_keras_serializable(package="tf_cyclegan", name="Conv2D")
class Conv2D(keras.layers.Conv2D):
    """Deprecated: `keras.layers.Conv2D` under the name version 0.1.0 saved it by (loads old files)."""


@keras.saving.register_keras_serializable(package="tf_cyclegan", name="LeanConv2D")
class LeanConv2D(keras.layers.Conv2D):
    """Deprecated: `keras.layers.Conv2D` under the name version 0.2.0 saved it by (loads old files).

    Its lean CPU gradient is `tf_cyclegan.speed.lean_conv` now, attached to any `Conv2D`.
    """


@keras.saving.register_keras_serializable(package="tf_cyclegan", name="ZeroPadding2D")
class ZeroPadding2D(keras.layers.ZeroPadding2D):
    """Deprecated: `keras.layers.ZeroPadding2D` under the name version 0.1.0 saved it by.

    Loads from old files and computes exactly Keras' padding (the hand-written gradient it
    once had is gone: it did not pay for itself, docs/performance.md).
    """


@keras.saving.register_keras_serializable(package="tf_cyclegan", name="FusedAdam")
class FusedAdam(keras.optimizers.Adam):
    """Deprecated: `keras.optimizers.Adam` under the name versions 0.1.0 and 0.2.0 saved it by.

    Same arguments, slot variables and numbers as Keras' Adam (old files' optimizer states
    load). Its fused update is `tf_cyclegan.speed.fused_adam` now, attached to any Adam.

    Example:
    >>> FusedAdam(2e-4, beta_1=0.5).beta_1
    0.5
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("FusedAdam does not implement amsgrad; use keras.optimizers.Adam(amsgrad=True)")


_CONV_NAME = re.compile(r"^conv2d(_\d+)?$")
_LEAN_CONV_NAME = re.compile(r"^lean_conv2d(_\d+)?$")


def load_weights(model, path):
    """`model.load_weights(path)`, also across the convolution class names of old versions.

    Keras addresses a layer's weights in a `.weights.h5` file by its class name. The
    networks' convolutions were `Conv2D` up to version 0.1.0 and in this one (groups
    `conv2d_N`) and `LeanConv2D` in version 0.2.0 (groups `lean_conv2d_N`), so a run's
    backups may name them either way, and the model (built new, or loaded from an old
    `.keras` file) may expect either. Where the file and the model disagree, the file is
    loaded from a copy with those groups renamed; the file itself is not touched.
    """
    rename = _renaming(model, path)
    if rename is None:
        model.load_weights(path)
        return
    with tempfile.TemporaryDirectory() as folder:
        copy = os.path.join(folder, "renamed.weights.h5")
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as f:
            _rename_groups(f, *rename)
        model.load_weights(copy)


def _renaming(model, path):
    """(pattern, old prefix, new prefix) taking the file's convolution groups to the model's
    names, or None where they agree (or the file is no HDF5 file: Keras then says why)."""
    names = set()
    try:
        with h5py.File(path, "r") as f:
            f.visit(lambda name: names.add(name.rsplit("/", 1)[-1]))
    except OSError:
        return None
    file_lean = any(_LEAN_CONV_NAME.match(name) for name in names)
    file_plain = any(_CONV_NAME.match(name) for name in names)
    model_lean = any(isinstance(layer, LeanConv2D) for layer in _all_layers(model))
    if file_lean and not file_plain and not model_lean:
        return _LEAN_CONV_NAME, "lean_", ""
    if file_plain and not file_lean and model_lean:
        return _CONV_NAME, "", "lean_"
    return None


def _all_layers(model):
    found, todo = [], [model]
    while todo:
        for layer in getattr(todo.pop(), "layers", []):
            found.append(layer)
            todo.append(layer)
    for name in NETWORKS:  # a CycleGAN's networks are attributes
        network = getattr(model, name, None)
        if network is not None and network is not model:
            found += _all_layers(network)
    return found


def _rename_groups(group, pattern, old_prefix, new_prefix):
    for key in list(group.keys()):
        child = group[key]
        if isinstance(child, h5py.Group):
            _rename_groups(child, pattern, old_prefix, new_prefix)
            if pattern.match(key):
                group.move(key, new_prefix + key[len(old_prefix):])
