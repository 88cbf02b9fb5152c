import os
import subprocess
import sys

import keras
import pytest
from conftest import FIXTURES, subprocess_env

from tf_cyclegan import registry


def _python(code):
    """Runs `code` in a fresh Python (this process has imported everything already)."""
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_importing_the_package_starts_neither_tensorflow_nor_keras():
    code = ("import sys, tf_cyclegan; tf_cyclegan.__version__; dir(tf_cyclegan); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    assert _python(code) == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("imports", [
    "import tf_cyclegan, keras",
    "import keras, tf_cyclegan",
    "import tf_cyclegan, tensorflow, keras",  # TensorFlow imports Keras inside its own import
    "import tf_cyclegan, importlib.util; importlib.util.find_spec('keras'); import keras",  # a look-up only
    "from tf_cyclegan import FusedAdam; import keras",
])
def test_a_saved_model_loads_with_keras_alone_whichever_is_imported_first(imports):
    # Version 0.1.0's file names tf_cyclegan>FusedAdam, >Conv2D and >ZeroPadding2D besides the model.
    path = os.path.join(FIXTURES, "cyclegan_0.1.0.keras")
    assert _python(f"{imports}\nimport sys\nmodel = keras.saving.load_model({path!r})\n"
                   "hooks = [f for f in sys.meta_path if type(f).__module__ == 'tf_cyclegan.registry']\n"
                   "print(type(model).__module__, type(model.gen_optimizer).__name__, len(hooks))") == (
        "tf_cyclegan.models.cyclegan FusedAdam 0")


@pytest.mark.parametrize("name, module", [
    ("tf_cyclegan>CycleGAN", "tf_cyclegan.models.cyclegan"),
    ("tf_cyclegan>ImagePool", "tf_cyclegan.models.image_pool"),
    ("tf_cyclegan>FusedAdam", "tf_cyclegan.layers.legacy"),
    ("tf_cyclegan>InstanceNormalization", "tf_cyclegan.layers.instance_normalization"),
    ("tf_cyclegan>ReflectionPadding2D", "tf_cyclegan.layers.reflection_padding"),
    ("tf_cyclegan>LeanConv2D", "tf_cyclegan.layers.legacy"),
    ("tf_cyclegan>Conv2D", "tf_cyclegan.layers.legacy"),
    ("tf_cyclegan>ZeroPadding2D", "tf_cyclegan.layers.legacy"),
])
def test_every_class_a_keras_file_names_is_registered(name, module):
    assert registry.register_serializable_classes() is True
    registered = keras.saving.get_registered_object(name)
    assert registered is not None and registered.__module__ == module


def test_with_keras_loaded_no_import_hook_is_left_behind():
    registry.register_when_keras_loads()  # Keras is in this process: registers at once
    assert not [finder for finder in sys.meta_path if isinstance(finder, registry._AfterKerasImport)]
    assert registry._AfterKerasImport().find_spec("numpy", None) is None  # it finds nothing itself
