"""Deprecated module path: the optimizer is `tf_cyclegan.training.fused_adam` (or `tf_cyclegan.FusedAdam`)."""

import warnings

from tf_cyclegan.training.fused_adam import FusedAdam  # noqa: F401

warnings.warn("tf_cyclegan.optimizers is deprecated: import from tf_cyclegan (or tf_cyclegan.training.fused_adam)",
              DeprecationWarning, stacklevel=2)
