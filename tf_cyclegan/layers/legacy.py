"""Classes that `.keras` files saved by version 0.1.0 name, kept so that those files load.

A `.keras` file names each custom object by its registered name, and its weights by the
class names of the layers (`layers/conv2d_3/vars`). Version 0.1.0 saved its convolutions as
`tf_cyclegan>Conv2D` and its discriminators' padding as `tf_cyclegan>ZeroPadding2D`. Both
names stay registered, for classes that keep those class names so that the weights are
found where the old files put them; `load_weights` reads older weight-only files. New
networks use `LeanConv2D` and `keras.layers.ZeroPadding2D`; nothing in the package builds these.
"""

import os
import re
import shutil
import tempfile

import h5py
import keras

from tf_cyclegan.layers.lean_conv import LeanConv2D


@keras.saving.register_keras_serializable(package="tf_cyclegan", name="Conv2D")
class Conv2D(LeanConv2D):
    """Deprecated: `LeanConv2D` under the name version 0.1.0 saved it by (loads old files)."""


@keras.saving.register_keras_serializable(package="tf_cyclegan", name="ZeroPadding2D")
class ZeroPadding2D(keras.layers.ZeroPadding2D):
    """Deprecated: `keras.layers.ZeroPadding2D` under the name version 0.1.0 saved it by.

    Loads from old files and computes exactly Keras' padding (the hand-written gradient it
    once had is gone: it did not pay for itself, docs/performance.md).
    """


_OLD_CONV_NAME = re.compile(r"^conv2d(_\d+)?$")


def load_weights(model, path):
    """`model.load_weights(path)`, also for weight files written before version 0.2.0.

    Keras addresses a layer's weights in a `.weights.h5` file by its class name. The
    networks' convolutions were `Conv2D` (ours, or Keras' before that) and are `LeanConv2D`
    now, so older files (a run's backups, `save_weights` of a generator) keep them under
    `conv2d_N`, where Keras now looks for `lean_conv2d_N`. Such files are loaded from a copy
    with those groups renamed; the file itself is not touched.
    """
    if not _written_before_lean_conv(path):
        model.load_weights(path)
        return
    with tempfile.TemporaryDirectory() as folder:
        copy = os.path.join(folder, "upgraded.weights.h5")
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as f:
            _rename_old_conv_groups(f)
        model.load_weights(copy)


def _written_before_lean_conv(path):
    """Whether the weight file has `conv2d_N` groups and no `lean_conv2d_N` ones."""
    names = set()
    try:
        with h5py.File(path, "r") as f:
            f.visit(lambda name: names.add(name.rsplit("/", 1)[-1]))
    except OSError:
        return False  # not an HDF5 file: Keras says what is wrong with it
    return any(_OLD_CONV_NAME.match(name) for name in names) and not any(
        _OLD_CONV_NAME.match(name[len("lean_"):]) for name in names if name.startswith("lean_"))


def _rename_old_conv_groups(group):
    for key in list(group.keys()):
        child = group[key]
        if isinstance(child, h5py.Group):
            _rename_old_conv_groups(child)
            if _OLD_CONV_NAME.match(key):
                group.move(key, "lean_" + key)
