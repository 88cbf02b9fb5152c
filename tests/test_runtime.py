import json
import subprocess
import sys
import warnings

import pytest
import tensorflow as tf
from conftest import subprocess_env

from tf_cyclegan import runtime
from tf_cyclegan.runtime import cpu_allocator_in_use, onednn_enabled, set_cpu_allocator

_CHILD = """
import json, sys
from tf_cyclegan.runtime import cpu_allocator_in_use, onednn_enabled, set_cpu_allocator
import tensorflow as tf
applied = set_cpu_allocator(sys.argv[1])
tf.ones([1000]).numpy()
print(json.dumps({"applied": applied, "in_use": cpu_allocator_in_use(), "onednn": onednn_enabled()}))
"""


@pytest.mark.slow
@pytest.mark.onednn
@pytest.mark.parametrize("choice, switch", [
    ("bfc", "0"),  # oneDNN off, whatever the CPU
    ("malloc", "0"),
    ("malloc", "1"),  # oneDNN on, whatever the CPU
    ("auto", None),  # as this process runs
])
def test_a_fresh_process_uses_the_allocator_chosen_before_its_first_op_and_reports_onednn_as_told(choice, switch):
    # A fresh process each: TensorFlow reads the allocator choice when it creates its devices,
    # and TF_ENABLE_ONEDNN_OPTS when it loads. Where it runs oneDNN, its default allocator
    # ("malloc") is oneDNN's own.
    env = subprocess_env() if switch is None else subprocess_env(TF_ENABLE_ONEDNN_OPTS=switch)
    env.pop("TF_CPU_ALLOCATOR_USE_BFC", None)
    done = subprocess.run([sys.executable, "-c", _CHILD, choice], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    onednn = onednn_enabled() if switch is None else switch == "1"
    default = "onednn" if onednn else "malloc"  # TensorFlow's own
    expected = {"bfc": "bfc", "auto": default, "malloc": default}[choice]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"applied": choice != "auto", "in_use": expected, "onednn": onednn}


def test_after_tensorflow_started_the_choice_is_refused_with_a_warning():
    tf.ones([2]).numpy()  # this test process has started TensorFlow
    in_use = cpu_allocator_in_use()
    chosen = "bfc" if in_use == "bfc" else "malloc"  # "onednn" is what "malloc" gives under oneDNN
    other = "malloc" if chosen == "bfc" else "bfc"
    with pytest.warns(UserWarning, match="already started"):
        assert set_cpu_allocator(other) is False
    assert cpu_allocator_in_use() == in_use
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set_cpu_allocator(chosen) is True  # already so: nothing to refuse
        assert set_cpu_allocator("auto") is False  # auto stays silent


def test_unknown_allocator_is_named():
    with pytest.raises(ValueError, match="'tcmalloc'"):
        set_cpu_allocator("tcmalloc")


@pytest.mark.parametrize("flags, switch, platform, machine, expected", [
    ({"avx2", "fma"}, None, "linux", "x86_64", False),  # an AMD EPYC: Eigen's kernels
    ({"avx2", "avx512f", "avx512_vnni"}, None, "linux", "x86_64", True),
    ({"avx2", "amx_tile", "amx_bf16"}, None, "linux", "x86_64", True),  # Sapphire Rapids
    ({"avx2", "avx_vnni"}, None, "linux", "x86_64", True),
    (set(), None, "win32", "AMD64", True),  # on by default on Windows x86
    ({"avx2", "amx_tile"}, "1", "darwin", "x86_64", False),  # macOS builds have no oneDNN, whatever the switch
    ({"avx2"}, "1", "linux", "x86_64", True),
    ({"avx2", "amx_tile"}, "0", "linux", "x86_64", False),
    ({"avx2", "amx_tile"}, "False", "linux", "x86_64", False),
    ({"avx2"}, "TRUE", "linux", "x86_64", True),
    ({"avx2", "amx_tile"}, "maybe", "linux", "x86_64", True),  # not a boolean: TensorFlow keeps its default
])
def test_the_fallback_follows_tensorflows_default_rule(flags, switch, platform, machine, expected):
    environ = {} if switch is None else {"TF_ENABLE_ONEDNN_OPTS": switch}
    assert runtime.onednn_default(flags=flags, environ=environ, platform=platform, machine=machine) is expected


@pytest.mark.parametrize("cpu_part, expected", [("0xd40", True), ("0xd0c", False)])
def test_on_arm_linux_only_a_neoverse_v1_gets_onednn_by_default(cpu_part, expected):
    assert runtime.onednn_default(environ={}, platform="linux", machine="aarch64", cpu_part=cpu_part) is expected


@pytest.mark.onednn
def test_the_fallback_agrees_with_tensorflow_on_this_machine():
    # The rule applied to this CPU and environment gives what this process's TensorFlow runs.
    assert runtime.onednn_default() is runtime.onednn_enabled()


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_tile\nbugs\t\t: spectre\n")
    assert runtime.cpu_flags(tmp_path / "cpuinfo") == {"fpu", "avx2", "amx_tile"}
    assert runtime.cpu_flags(tmp_path / "missing") == frozenset()


def test_the_private_tensorflow_names_runtime_reads_exist_in_this_tensorflow():
    # Pins runtime.py's two private reads: a TensorFlow that renames them fails here instead of
    # quietly taking the fallbacks (the rule of `onednn_default`; "not started").
    from tensorflow.python.eager import context
    from tensorflow.python.util import _pywrap_util_port

    assert callable(_pywrap_util_port.IsMklEnabled)
    assert callable(context.context_safe)
    tf.constant(0)  # TensorFlow has started now
    assert context.context_safe()._context_handle is not None
    assert runtime._tensorflow_started()
