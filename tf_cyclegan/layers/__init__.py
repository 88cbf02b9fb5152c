"""The layers the CycleGAN networks need and Keras does not ship, one concept a module."""

from tf_cyclegan.layers.antialiased_sampling import BlurPool2D, BlurUpSampling2D
from tf_cyclegan.layers.instance_normalization import InstanceNormalization
from tf_cyclegan.layers.legacy import Conv2D, FusedAdam, LeanConv2D, ZeroPadding2D  # noqa: F401  (old files' names)
from tf_cyclegan.layers.reflection_padding import ReflectionPadding2D

__all__ = ["BlurPool2D", "BlurUpSampling2D", "InstanceNormalization", "ReflectionPadding2D"]
