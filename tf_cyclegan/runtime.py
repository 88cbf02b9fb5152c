"""TensorFlow's host-memory allocator, a process-wide choice made before TensorFlow starts.

TensorFlow allocates CPU tensors with the C library's `malloc` by default. The CycleGAN
step allocates and frees gigabytes of activations per step; TensorFlow's own
best-fit-with-coalescing (BFC) pool keeps freed blocks for reuse; the README's "Training
speed" section gives what each did to speed and memory on this project's benchmark
machine (about the same peak memory; BFC faster at 256x256). `tf-cyclegan train` and
`tf-cyclegan bench` use BFC unless told otherwise (`train.cpu_allocator: malloc`, or
`--cpu-allocator malloc`). The choice is read once, when TensorFlow creates its devices,
so it must be made before the process's first TensorFlow op; in your own script, call
`set_cpu_allocator("bfc")` first thing, or set `TF_CPU_ALLOCATOR_USE_BFC=true`.

Memory that is not a tensor (graph building and optimisation, kernels' scratch) comes
from the C library's heap, which keeps what is freed: about 100 MB at 128x128 after the
first training step. `returning_freed_memory()`, which `CycleGAN.fit` runs under, hands
it back to the system while training runs.
"""

import contextlib
import ctypes
import functools
import os
import threading
import warnings

CPU_ALLOCATORS = ("auto", "bfc", "malloc")
_ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def set_cpu_allocator(allocator="auto"):
    """Makes TensorFlow allocate host memory with its BFC pool ("bfc") or `malloc`.

    Args:
        allocator: str, "auto" (default), "bfc" or "malloc". "auto" is BFC unless TensorFlow
            has already started or the environment variable `TF_CPU_ALLOCATOR_USE_BFC`
            is set, in which case it changes nothing and says nothing.

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
    if cpu_allocator_in_use() == allocator:
        return True
    warnings.warn(
        f"TensorFlow has already started in this process, so its CPU allocator stays as it is; "
        f"cpu_allocator={allocator!r} takes effect only if chosen before the first TensorFlow op "
        f"(or with the environment variable {_ENV}={str(allocator == 'bfc').lower()}).",
        stacklevel=2,
    )
    return False


def cpu_allocator_in_use():
    """"bfc" or "malloc", as TensorFlow runs now (it reports CPU:0 memory statistics only
    for a BFC pool; oneDNN builds' own allocator is one). Starts TensorFlow if it has not."""
    import tensorflow as tf

    try:
        tf.config.experimental.get_memory_info("CPU:0")
    except ValueError:
        return "malloc"
    return "bfc"


@functools.cache
def has_gpu():
    """Whether TensorFlow sees a GPU (fixed once it has started, so asked once per process)."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


@functools.cache
def onednn_enabled():
    """Whether TensorFlow runs its CPU kernels through oneDNN (fixed once it has started).

    TensorFlow decides this itself: on by default on x86 processors with the instructions
    oneDNN is tuned for (AVX-512 VNNI or bfloat16, AMX: recent Intel server CPUs), off on
    others (this project's benchmark CPU, an AMD EPYC); `TF_ENABLE_ONEDNN_OPTS=0/1` overrides.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # a TensorFlow without the private query: go by the switch alone
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "0").strip().lower() in ("1", "true")
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
