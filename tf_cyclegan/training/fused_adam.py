"""Deprecated module path (version 0.2.0): `FusedAdam` is `tf_cyclegan.FusedAdam`, kept only for old files.

New code uses `keras.optimizers.Adam`; the fused update is attached by `tf_cyclegan.speed`.
"""

import warnings

from tf_cyclegan.layers.legacy import FusedAdam  # noqa: F401

warnings.warn("tf_cyclegan.training.fused_adam is deprecated: use keras.optimizers.Adam "
              "(tf_cyclegan.FusedAdam loads old files)", DeprecationWarning, stacklevel=2)
