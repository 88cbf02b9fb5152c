import json
import subprocess
import sys
import threading
import time
import warnings

import keras
import pytest
import tensorflow as tf
from conftest import random_pairs, subprocess_env, tiny_cyclegan

from tf_cyclegan import runtime
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


class _CountingTrim:
    def __init__(self):
        self.calls = 0

    def __call__(self, pad):
        assert pad == 0
        self.calls += 1
        return 1


def _trimmer_threads():
    return [t for t in threading.enumerate() if t.name == "tf_cyclegan-return-freed-memory"]


def test_freed_memory_is_returned_periodically_only_inside_and_only_under_bfc(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_allocator_in_use", lambda: "bfc")
    trim = _CountingTrim()
    with runtime.returning_freed_memory(period=0.01, trim=trim):
        deadline = time.time() + 10
        while trim.calls < 3 and time.time() < deadline:
            time.sleep(0.01)
        assert trim.calls >= 3 and len(_trimmer_threads()) == 1
    calls = trim.calls
    time.sleep(0.05)
    assert trim.calls == calls and not _trimmer_threads()

    # With malloc as TensorFlow's allocator the heap holds the tensors: left alone.
    monkeypatch.setattr(runtime, "cpu_allocator_in_use", lambda: "malloc")
    with runtime.returning_freed_memory(period=0.01, trim=trim):
        time.sleep(0.05)
        assert not _trimmer_threads()
    assert trim.calls == calls


@pytest.mark.skipif(runtime._malloc_trim() is None, reason="no glibc malloc_trim here")
def test_glibc_malloc_trim_is_callable():
    assert runtime._malloc_trim()(0) in (0, 1)


def test_cyclegan_fit_runs_with_freed_memory_returned(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_allocator_in_use", lambda: "bfc")
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(len(_trimmer_threads()))

    model = tiny_cyclegan()
    model.compile()
    model.fit(random_pairs(count=1), epochs=1, verbose=0, callbacks=[Probe()])
    assert seen == [1] and not _trimmer_threads()


@pytest.mark.parametrize("switch, expected", [("1", True), ("0", False)])
def test_onednn_is_reported_as_tensorflow_was_told_to_run_it(switch, expected):
    # A fresh process each: TensorFlow reads the switch once.
    env = subprocess_env(TF_ENABLE_ONEDNN_OPTS=switch)
    code = "from tf_cyclegan.runtime import onednn_enabled; print(onednn_enabled())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(expected)
