import json
import subprocess
import sys
import warnings

import pytest
import tensorflow as tf

from conftest import subprocess_env
from tf_cyclegan.runtime import cpu_allocator_in_use, set_cpu_allocator

_CHILD = """
import json, sys, warnings
from tf_cyclegan.runtime import cpu_allocator_in_use, set_cpu_allocator
import tensorflow as tf
applied = set_cpu_allocator(sys.argv[1])
tf.ones([1000]).numpy()
print(json.dumps({"applied": applied, "in_use": cpu_allocator_in_use()}))
"""


@pytest.mark.parametrize("choice, expected", [("bfc", "bfc"), ("malloc", "malloc"), ("auto", "bfc")])
def test_the_choice_made_before_the_first_op_is_the_allocator_tensorflow_uses(choice, expected):
    # A fresh process each: TensorFlow reads the choice once, when it creates its devices.
    env = subprocess_env()
    env.pop("TF_CPU_ALLOCATOR_USE_BFC", None)
    done = subprocess.run([sys.executable, "-c", _CHILD, choice], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"applied": True, "in_use": expected}


def test_after_tensorflow_started_the_choice_is_refused_with_a_warning():
    tf.ones([2]).numpy()  # this test process has started TensorFlow
    in_use = cpu_allocator_in_use()
    other = "bfc" if in_use == "malloc" else "malloc"
    with pytest.warns(UserWarning, match="already started"):
        assert set_cpu_allocator(other) is False
    assert cpu_allocator_in_use() == in_use
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set_cpu_allocator(in_use) is True  # already so: nothing to refuse
        assert set_cpu_allocator("auto") is False  # auto stays silent


def test_unknown_allocator_is_named():
    with pytest.raises(ValueError, match="'tcmalloc'"):
        set_cpu_allocator("tcmalloc")
