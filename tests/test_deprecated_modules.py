"""The deprecated module paths `tf_cyclegan.cyclegan`, `tf_cyclegan.optimizers` and
`tf_cyclegan.training.fused_adam` (one file for all: `tests/test_cyclegan.py` would share its
name with `tests/models/test_cyclegan.py`)."""

import importlib
import sys

import pytest


@pytest.mark.parametrize("old, names, new, advice", [
    ("tf_cyclegan.cyclegan", ("CycleGAN", "default_optimizer"), "tf_cyclegan.models.cyclegan",
     "import from tf_cyclegan"),
    ("tf_cyclegan.optimizers", ("FusedAdam",), "tf_cyclegan.layers.legacy", "use keras.optimizers.Adam"),
    ("tf_cyclegan.training.fused_adam", ("FusedAdam",), "tf_cyclegan.layers.legacy", "use keras.optimizers.Adam"),
])
def test_the_old_path_warns_and_gives_the_same_objects(monkeypatch, old, names, new, advice):
    monkeypatch.delitem(sys.modules, old, raising=False)  # a first import, wherever the test runs
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated: {advice}"):
        module = importlib.import_module(old)
    current = importlib.import_module(new)
    for name in names:
        assert getattr(module, name) is getattr(current, name), name
