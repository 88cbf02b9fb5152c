"""What this process's TensorFlow runs on: the CPU allocator, oneDNN, GPUs, CPU features.

TensorFlow allocates CPU tensors with the C library's `malloc` by default (or, where it runs
oneDNN's kernels, with oneDNN's own pooling allocator). The CycleGAN step allocates and
frees gigabytes of activations per step; TensorFlow's best-fit-with-coalescing (BFC) pool
keeps freed blocks for reuse. `set_cpu_allocator` chooses between them; TensorFlow reads the
choice once, when it creates its devices, so it must be made before the process's first
TensorFlow op. It is process-wide, so the library never makes it on its own: `tf-cyclegan
train` and `tf-cyclegan bench` make it as the first step of their `main` (`train.cpu_allocator`,
`--cpu-allocator`); in your own script call `set_cpu_allocator("bfc")` first thing, or set
`TF_CPU_ALLOCATOR_USE_BFC=true`.

Memory that is not a tensor (graph building and optimisation, kernels' scratch) comes
from the C library's heap, which keeps what is freed. `returning_freed_memory()` hands it
back to the system while inside; `tf-cyclegan train` runs training under it.

Each question here is asked in one place, so a test can switch the answer
(`has_gpu`, `onednn_enabled`) and run the branch another machine would take.
"""

import contextlib
import ctypes
import functools
import os
import sys
import threading
import warnings

import keras

CPU_ALLOCATORS = ("auto", "bfc", "malloc")
_ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def set_cpu_allocator(allocator="auto"):
    """Makes TensorFlow allocate host memory with its BFC pool ("bfc") or `malloc`.

    Args:
        allocator: str, "auto" (default), "bfc" or "malloc". "auto" is BFC unless TensorFlow
            has already started or the environment variable `TF_CPU_ALLOCATOR_USE_BFC`
            is set, in which case it changes nothing and says nothing. "malloc" is
            TensorFlow's own default, which is oneDNN's allocator where TensorFlow runs oneDNN
            (`cpu_allocator_in_use` then says "onednn").

    Returns:
        bool: True if the allocator asked for is (or will be) in use; False when TensorFlow
        has already created its devices with another, which fixes the allocator for good
        (with a warning unless `allocator` is "auto"), or "auto" found nothing to do.
    """
    if allocator not in CPU_ALLOCATORS:
        raise ValueError(f"cpu_allocator must be one of {CPU_ALLOCATORS}. Received: {allocator!r}")
    started = _tensorflow_started()
    if allocator == "auto":
        if started or _ENV in os.environ:
            return False
        allocator = "bfc"
    if not started:
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
    has no public query for it; its private one is asked, and where a TensorFlow lacks it,
    the same rule is applied here (`onednn_default`).
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # no public API says whether oneDNN is on
        return onednn_default()
    return bool(_pywrap_util_port.IsMklEnabled())


def _tensorflow_started():
    """True once TensorFlow's eager context (and with it the CPU allocator) exists."""
    try:
        from tensorflow.python.eager import context
    except ImportError:
        return False
    ctx = context.context_safe()
    return ctx is not None and getattr(ctx, "_context_handle", None) is not None


@functools.cache
def _malloc_trim():
    """glibc's `malloc_trim`, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def returning_freed_memory(period=0.25, trim=None):
    """Returns the C heap's freed pages to the system every `period` seconds while inside.

    glibc keeps the pages of freed heap blocks (graph building, Grappler, kernels'
    scratch) mapped for reuse, and fragmentation leaves many of them unused: at 128x128
    they put about 45 MB on the training process's peak memory (the README's training-speed
    section). A daemon thread calls `malloc_trim(0)`, which releases whole free pages; the
    call releases the GIL and took 0.5 ms (median; 6.5 ms at most) in a 128-px training
    run. Only under TensorFlow's BFC allocator (the default here): with `malloc` as
    TensorFlow's allocator every tensor lives in that heap, and trimming it made steps
    15-20% slower, as freed tensor memory had to be faulted in again. Where there is no
    glibc it does nothing.

    Args:
        period: seconds between trims; 0 or less does nothing.
        trim: the trimming function, called with 0 (default: glibc's `malloc_trim`).
    """
    trim = trim or _malloc_trim()
    if trim is None or period <= 0 or cpu_allocator_in_use() != "bfc":
        yield
        return
    stop = threading.Event()

    def run():
        while not stop.wait(period):
            trim(0)

    thread = threading.Thread(target=run, name="tf_cyclegan-return-freed-memory", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class ReturningFreedMemory(keras.callbacks.Callback):
    """Runs `fit` inside `returning_freed_memory()`: a Keras callback.

    The trimming starts with training, once a `tf.distribute` strategy and TensorFlow are
    set up (asking which allocator runs starts TensorFlow, which must not happen before a
    multi-worker strategy exists), and stops when training ends; `close()` stops it where
    `fit` ended on an exception. `tf-cyclegan train` and `bench` add it to their own `fit`.

    Args:
        period: seconds between trims, as for `returning_freed_memory`.
    """

    def __init__(self, period=0.25):
        super().__init__()
        self.period = period
        self._running = None

    def on_train_begin(self, logs=None):
        if self._running is None:
            self._running = returning_freed_memory(self.period)
            self._running.__enter__()

    def on_train_end(self, logs=None):
        self.close()

    def close(self):
        """Stops the trimming thread, if it runs."""
        if self._running is not None:
            running, self._running = self._running, None
            running.__exit__(None, None, None)
