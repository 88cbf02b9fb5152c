"""The numbers the networks compute in: one vocabulary for training, translation and bench.

`float32`; or `bfloat16` / `float16`, where the weights stay float32 and the arithmetic runs
in the reduced type (Keras' `mixed_bfloat16` / `mixed_float16` policies); or `auto`, which
picks what runs fastest on this machine: float16 on a GPU (on a CPU it runs several times
slower than float32), bfloat16 on a CPU with bfloat16 instructions (AVX512-BF16 or AMX; on
one without, emulated bfloat16 is slower than float32), float32 otherwise.

Version 0.2.0 named training's precisions by their Keras policies (`mixed_float16`); those
words are still read, with a warning naming the new one.
"""

import warnings

from tf_cyclegan import runtime
from tf_cyclegan.choices import KERAS_POLICIES, OLD_PRECISIONS, PRECISIONS

_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bfloat16(cpuinfo_path="/proc/cpuinfo"):
    """True when the CPU advertises native bfloat16 arithmetic (AVX512-BF16 or AMX)."""
    return bool(set(_BF16_CPU_FLAGS) & runtime.cpu_flags(cpuinfo_path))


def check_precision(precision):
    """`precision` in this vocabulary (an old `mixed_*` word mapped, with a warning), else a
    ValueError naming the value."""
    if precision in OLD_PRECISIONS:
        warnings.warn(f"precision {precision!r} is now called {OLD_PRECISIONS[precision]!r}", stacklevel=3)
        precision = OLD_PRECISIONS[precision]
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}. Received: precision={precision!r}")
    return precision


def resolve_precision(precision="auto"):
    """`precision` itself ("float32", "bfloat16" or "float16"), or for "auto" the fastest here:
    float16 on a GPU, bfloat16 on a CPU with bfloat16 instructions, else float32."""
    precision = check_precision(precision)
    if precision != "auto":
        return precision
    if runtime.has_gpu():
        return "float16"
    return "bfloat16" if cpu_has_bfloat16() else "float32"


def keras_policy(precision):
    """The name of the Keras dtype policy that computes in `precision` ("auto" resolved)."""
    return KERAS_POLICIES[resolve_precision(precision)]


def set_precision(precision="auto"):
    """Sets Keras' global dtype policy for `precision` (before building models) and returns
    the precision it resolved to ("float32", "bfloat16" or "float16")."""
    import keras

    resolved = resolve_precision(precision)
    keras.mixed_precision.set_global_policy(KERAS_POLICIES[resolved])
    return resolved
