"""What this process's TensorFlow runs on: the CPU allocator, oneDNN, GPUs, CPU features.

TensorFlow allocates CPU tensors with the C library's `malloc` by default (or, where it runs
oneDNN's kernels, with oneDNN's own pooling allocator). `set_cpu_allocator` can choose its
best-fit-with-coalescing (BFC) pool instead; TensorFlow reads the choice once, when it
creates its devices, so it must be made before the process's first TensorFlow op. It is
process-wide and, for the CycleGAN step, not a gain on either CPU this project measures
(docs/performance.md), so nothing makes it unless asked: `train.cpu_allocator` /
`tf-cyclegan bench --cpu-allocator`, or `set_cpu_allocator("bfc")` first thing in a script.

Each question here is asked in one place, so a test can switch the answer
(`has_gpu`, `onednn_enabled`) and run the branch another machine would take.
"""

import functools
import os
import sys
import warnings

from tf_cyclegan.choices import ALLOCATORS as CPU_ALLOCATORS

_ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def set_cpu_allocator(allocator="auto"):
    """Makes TensorFlow allocate host memory with its BFC pool ("bfc") or `malloc` ("malloc").

    Args:
        allocator: str, "auto" (default), "bfc" or "malloc". "auto" leaves TensorFlow's own
            choice and says nothing. "malloc" is TensorFlow's own default, which is oneDNN's
            allocator where TensorFlow runs oneDNN (`cpu_allocator_in_use` then says "onednn").

    Returns:
        bool: True if the allocator asked for is (or will be) in use; False for "auto", and
        when TensorFlow has already created its devices with another, which fixes the
        allocator for good (with a warning).
    """
    if allocator not in CPU_ALLOCATORS:
        raise ValueError(f"cpu_allocator must be one of {CPU_ALLOCATORS}. Received: {allocator!r}")
    if allocator == "auto":
        return False
    if not _tensorflow_started():
        os.environ[_ENV] = "true" if allocator == "bfc" else "false"
        return True
    in_use = cpu_allocator_in_use()
    if in_use == allocator or (allocator, in_use) == ("malloc", "onednn"):
        return True
    warnings.warn(
        f"TensorFlow has already started in this process, so its CPU allocator stays as it is; "
        f"cpu_allocator={allocator!r} takes effect only if chosen before the first TensorFlow op "
        f"(or with the environment variable {_ENV}={str(allocator == 'bfc').lower()}).",
        stacklevel=2,
    )
    return False


def cpu_allocator_in_use():
    """"bfc", "malloc" or "onednn", as TensorFlow runs now. Starts TensorFlow if it has not.

    TensorFlow reports CPU:0 memory statistics only for a pooling allocator: its BFC pool or,
    where it runs oneDNN's kernels and BFC was not asked for, oneDNN's own allocator (a BFC
    pool for large blocks, `malloc` for small ones), which takes the place of `malloc` there.
    Which of the two is told by the choice TensorFlow read (`TF_CPU_ALLOCATOR_USE_BFC`).
    """
    import tensorflow as tf

    try:
        tf.config.experimental.get_memory_info("CPU:0")
    except ValueError:
        return "malloc"
    if onednn_enabled() and not _BOOL_WORDS.get(os.environ.get(_ENV, "").strip().lower(), False):
        return "onednn"
    return "bfc"


@functools.cache
def gpu_count():
    """How many GPUs TensorFlow can use, asked once per process. The physical list: asking it
    does not start TensorFlow's runtime, so the user can still configure devices afterwards."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def has_gpu():
    """Whether TensorFlow sees a GPU: what every "GPU or CPU" branch of the package asks."""
    return gpu_count() > 0


# TensorFlow's rule (tensorflow/core/util/port.cc, IsMklEnabled and DefaultOneDnnPolicy): in its
# x86 builds for Linux and Windows, oneDNN is on by default on Windows, and on Linux on CPUs with
# any of these features; on Linux aarch64 on a Neoverse V1; never where TensorFlow is built
# without it (macOS). TF_ENABLE_ONEDNN_OPTS overrides it where it is built in.
ONEDNN_DEFAULT_CPU_FLAGS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
_NEOVERSE_V1_PART = "0xd40"
_BOOL_WORDS = {"1": True, "true": True, "0": False, "false": False}


def cpu_flags(cpuinfo_path="/proc/cpuinfo"):
    """The CPU's feature flags as Linux reports them (a frozenset; empty where unreadable)."""
    return frozenset(_cpuinfo_field("flags", cpuinfo_path).split())


def _cpuinfo_field(name, cpuinfo_path="/proc/cpuinfo"):
    try:
        with open(cpuinfo_path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def onednn_default(flags=None, environ=None, platform=None, machine=None, cpu_part=None):
    """Whether TensorFlow turns oneDNN on, by its own rule (see ONEDNN_DEFAULT_CPU_FLAGS): the
    arguments default to this machine's CPU flags, environment, OS, architecture and CPU part."""
    import platform as platform_module

    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    machine = (platform_module.machine() if machine is None else machine).lower()
    if platform == "darwin" or not (machine in ("x86_64", "amd64") or machine in ("aarch64", "arm64")):
        return False  # TensorFlow is built without oneDNN there
    if platform.startswith("win"):
        default = True
    elif machine in ("aarch64", "arm64"):
        default = (_cpuinfo_field("CPU part") if cpu_part is None else cpu_part).lower() == _NEOVERSE_V1_PART
    else:
        default = bool(set(ONEDNN_DEFAULT_CPU_FLAGS) & (cpu_flags() if flags is None else set(flags)))
    return _BOOL_WORDS.get(environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower(), default)


@functools.cache
def onednn_enabled():
    """Whether TensorFlow runs its CPU kernels through oneDNN (fixed once it has started).

    TensorFlow decides this itself: on by default on Linux x86 processors with the instructions
    oneDNN is tuned for (AVX-512 VNNI or bfloat16, AVX-VNNI, AMX: recent Intel server CPUs),
    off on others (an AMD EPYC, for one); `TF_ENABLE_ONEDNN_OPTS=0/1` overrides. TensorFlow
    has no public query for it; its private one is asked (`tensorflow.python.util.
    _pywrap_util_port.IsMklEnabled`; missing public API: a query for the kernel library in
    use), and where a TensorFlow lacks it, the same rule is applied here (`onednn_default`).
    """
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # no public API says whether oneDNN is on
        return onednn_default()


def _tensorflow_started():
    """True once TensorFlow's eager context (and with it the CPU allocator) exists.

    Private TensorFlow API (`tensorflow.python.eager.context.context_safe` and the context's
    `_context_handle`); missing public API: asking whether the runtime has started without
    starting it. Fallback: False (the choice is then made through the environment, which
    TensorFlow reads if it has not started).
    """
    try:
        from tensorflow.python.eager import context
    except ImportError:
        return False
    if not hasattr(context, "context_safe"):
        return False
    ctx = context.context_safe()
    return ctx is not None and getattr(ctx, "_context_handle", None) is not None
