"""tf_cyclegan: CycleGAN for unpaired image-to-image translation in TensorFlow and Keras 3.

The public API below loads on first use: `import tf_cyclegan` does not start TensorFlow, so
that the `tf-cyclegan` command answers `--help` and config errors at once. The classes that
`.keras` files name are registered with Keras whenever Keras is in the process: at once if
it is already imported, else as soon as it is (see `tf_cyclegan.registry`). So after
`import tf_cyclegan`, `keras.saving.load_model` finds them, whichever was imported first.
"""

import importlib

__version__ = "0.2.0"

# Public name -> the module that defines it.
_API = {
    "CycleGAN": "tf_cyclegan.models.cyclegan",
    "default_optimizer": "tf_cyclegan.models.cyclegan",
    "build_resnet_generator": "tf_cyclegan.models.resnet_generator",
    "build_patchgan_discriminator": "tf_cyclegan.models.patchgan",
    "CUT": "tf_cyclegan.models.cut",
    "build_cut": "tf_cyclegan.models.cut",
    "build_cut_generator": "tf_cyclegan.models.cut_generator",
    "build_cut_discriminator": "tf_cyclegan.models.cut_discriminator",
    "PatchSampleHead": "tf_cyclegan.models.patch_nce",
    "BlurPool2D": "tf_cyclegan.layers.antialiased_sampling",
    "BlurUpSampling2D": "tf_cyclegan.layers.antialiased_sampling",
    "ImagePool": "tf_cyclegan.models.image_pool",
    "InstanceNormalization": "tf_cyclegan.layers.instance_normalization",
    "ReflectionPadding2D": "tf_cyclegan.layers.reflection_padding",
    "DataPosition": "tf_cyclegan.data.unpaired",
    "make_unpaired_dataset": "tf_cyclegan.data.unpaired",
    "make_tfds_dataset": "tf_cyclegan.data.unpaired",
    "FusedAdam": "tf_cyclegan.layers.legacy",
    "apply_cpu_speedups": "tf_cyclegan.speed",
    "LinearDecay": "tf_cyclegan.training.schedule",
    "resolve_precision": "tf_cyclegan.precision",
    "set_precision": "tf_cyclegan.precision",
    "set_cpu_allocator": "tf_cyclegan.runtime",
    "load_torch_generator": "tf_cyclegan.torch_import.load",
    "load_torch_cyclegan": "tf_cyclegan.torch_import.load",
    "load_torch_cut": "tf_cyclegan.torch_import.load",
}

__all__ = sorted(_API, key=str.lower)


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'tf_cyclegan' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    register_when_keras_loads()  # the rest of the classes, if that import stopped them half-way
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


from tf_cyclegan.registry import register_when_keras_loads  # noqa: E402  (needs nothing above)

register_when_keras_loads()
