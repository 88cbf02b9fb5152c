"""The layers the CycleGAN networks need and Keras does not ship, one concept a module."""

from tf_cyclegan.layers.instance_normalization import InstanceNormalization
from tf_cyclegan.layers.lean_conv import LeanConv2D
from tf_cyclegan.layers.legacy import Conv2D, ZeroPadding2D  # noqa: F401  (registered for version 0.1.0's files)
from tf_cyclegan.layers.reflection_padding import ReflectionPadding2D

__all__ = ["InstanceNormalization", "LeanConv2D", "ReflectionPadding2D"]
