"""Deprecated module path: `FusedAdam` is `tf_cyclegan.FusedAdam`, itself kept only for old files.

New code uses `keras.optimizers.Adam`; the fused update is attached by `tf_cyclegan.speed`.
"""

import warnings

from tf_cyclegan.layers.legacy import FusedAdam  # noqa: F401

warnings.warn("tf_cyclegan.optimizers is deprecated: use keras.optimizers.Adam (tf_cyclegan.FusedAdam loads old files)",
              DeprecationWarning, stacklevel=2)
