"""Deprecated module path: the model is `tf_cyclegan.models.cyclegan` (or `tf_cyclegan.CycleGAN`)."""

import warnings

from tf_cyclegan.models.cyclegan import CycleGAN, default_optimizer  # noqa: F401

warnings.warn("tf_cyclegan.cyclegan is deprecated: import from tf_cyclegan (or tf_cyclegan.models.cyclegan)",
              DeprecationWarning, stacklevel=2)
