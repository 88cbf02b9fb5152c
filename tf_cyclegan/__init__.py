"""tf_cyclegan: CycleGAN for unpaired image-to-image translation in TensorFlow and Keras 3."""

__version__ = "0.1.0"

from tf_cyclegan import legacy  # noqa: F401  (registers the names that older .keras files use)
from tf_cyclegan.cyclegan import CycleGAN, default_optimizer
from tf_cyclegan.data import DataPosition, make_tfds_dataset, make_unpaired_dataset
from tf_cyclegan.discriminator import build_patchgan_discriminator
from tf_cyclegan.generator import build_resnet_generator
from tf_cyclegan.image_pool import ImagePool
from tf_cyclegan.layers import InstanceNormalization, ReflectionPadding2D
from tf_cyclegan.optimizers import FusedAdam
from tf_cyclegan.precision import resolve_precision, set_precision
from tf_cyclegan.runtime import set_cpu_allocator
from tf_cyclegan.schedule import LinearDecay

__all__ = [
    "CycleGAN", "DataPosition", "FusedAdam", "ImagePool", "InstanceNormalization", "LinearDecay",
    "ReflectionPadding2D", "build_patchgan_discriminator", "build_resnet_generator", "default_optimizer",
    "make_tfds_dataset", "make_unpaired_dataset", "resolve_precision", "set_cpu_allocator", "set_precision",
]
