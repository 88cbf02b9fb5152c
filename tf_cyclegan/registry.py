"""Registering the package's serializable classes with Keras, without importing Keras first.

`.keras` files name each custom class by its registered name (`tf_cyclegan>CycleGAN`);
Keras finds it only if the class's module was imported. `import tf_cyclegan` stays light
(it does not start TensorFlow), so the modules are imported when Keras is: at once if
Keras is already in the process, else right after `import keras` (or the `import tensorflow`
that imports it) completes, by an import hook that removes itself when it has run. Nothing
else about the import changes.

Covered: `import tf_cyclegan` before or after `import keras`, and any `from tf_cyclegan import
...`. Not covered: a process whose first Keras import comes from inside one of the package's
own submodules imported directly (`from tf_cyclegan.layers import ...` before Keras): the
modules that import from it cannot load while it is half-imported; import `tf_cyclegan.registry`
and call `register_serializable_classes()` there, or touch any public name, before loading.
"""

import importlib
import importlib.abc
import importlib.util
import logging
import sys

logger = logging.getLogger(__name__)

# Every module that defines a registered class, leaves first (each only needs those before it).
SERIALIZABLE_MODULES = (
    "tf_cyclegan.layers",
    "tf_cyclegan.models.image_pool",
    "tf_cyclegan.models.cyclegan",
    "tf_cyclegan.models.patch_nce",
    "tf_cyclegan.models.cut",
)


def register_serializable_classes():
    """Imports every module that registers a class with Keras (imports Keras and TensorFlow).

    Returns whether all of them are registered now. A module being imported further up this
    very import (it imported Keras) registers its classes when it completes; one that needs
    such a module whole waits for the next call (`tf_cyclegan.__getattr__` makes one).
    """
    complete = True
    for name in SERIALIZABLE_MODULES:
        if _initializing(sys.modules.get(name)):
            complete = False
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            if not any(_initializing(module) for module in _our_modules()):
                raise
            complete = False  # it imports from a module that is still being imported
    return complete


def _initializing(module):
    return module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False)


def _our_modules():
    return [module for name, module in list(sys.modules.items()) if name.startswith("tf_cyclegan.")]


def _keras_ready(just_loaded=None):
    """Keras and the TensorFlow it runs on are both imported whole (not half-way through);
    `just_loaded` names one that has just run its code (its import is about to complete)."""
    def whole(name):
        return name == just_loaded or not _initializing(sys.modules.get(name))

    return "keras" in sys.modules and whole("keras") and whole("tensorflow")


class _ThenRegister(importlib.abc.Loader):
    """Keras' (or TensorFlow's) own loader, followed by the registration once both are whole."""

    def __init__(self, loader, finder):
        self._loader = loader
        self._finder = finder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        module.__loader__ = module.__spec__.loader = self._loader  # the module as if untouched
        if not _keras_ready(just_loaded=module.__name__):
            return  # one imports the other inside its own import: wait for the outer one to finish
        _remove(self._finder)
        try:
            register_serializable_classes()
        except Exception as error:  # never let ours break `import keras`
            logger.warning("tf_cyclegan could not register its Keras classes (%s): call "
                           "tf_cyclegan.registry.register_serializable_classes() before loading .keras files", error)


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when `keras` or `tensorflow` is imported, wraps the loader the
    other finders give so that the classes register once both are loaded; then it is removed.
    A mere look-up (`importlib.util.find_spec("keras")`) leaves it in place."""

    _WATCHED = ("keras", "tensorflow")

    def __init__(self):
        self._finding = False

    def find_spec(self, fullname, path, target=None):
        if fullname not in self._WATCHED or self._finding:
            return None
        self._finding = True  # the look-up below asks every finder again, this one included
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ThenRegister(spec.loader, self)
        return spec


def _remove(finder):
    try:
        sys.meta_path.remove(finder)
    except ValueError:
        pass


def register_when_keras_loads():
    """Registers the classes now if Keras is loaded, else once `import keras` completes."""
    if _keras_ready():
        register_serializable_classes()
        return
    if not any(isinstance(finder, _AfterKerasImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())
