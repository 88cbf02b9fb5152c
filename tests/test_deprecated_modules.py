"""The deprecated module paths `tf_cyclegan.cyclegan` and `tf_cyclegan.optimizers` (one file for
both: `tests/test_cyclegan.py` would share its name with `tests/models/test_cyclegan.py`)."""

import importlib
import sys

import pytest


@pytest.mark.parametrize("old, names, new", [
    ("tf_cyclegan.cyclegan", ("CycleGAN", "default_optimizer"), "tf_cyclegan.models.cyclegan"),
    ("tf_cyclegan.optimizers", ("FusedAdam",), "tf_cyclegan.training.fused_adam"),
])
def test_the_old_path_warns_and_gives_the_same_objects(monkeypatch, old, names, new):
    monkeypatch.delitem(sys.modules, old, raising=False)  # a first import, wherever the test runs
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated: import from tf_cyclegan"):
        module = importlib.import_module(old)
    current = importlib.import_module(new)
    for name in names:
        assert getattr(module, name) is getattr(current, name), name
