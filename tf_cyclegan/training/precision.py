"""Choosing the mixed-precision policy for the device at hand.

mixed_float16 pays off only on GPUs (on a CPU it runs several times slower than float32);
on CPUs with bfloat16 instructions (AVX512-BF16, AMX) mixed_bfloat16 runs faster than float32.
"""

import keras

from tf_cyclegan import runtime

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bfloat16(cpuinfo_path="/proc/cpuinfo"):
    """True when the CPU advertises native bfloat16 arithmetic (AVX512-BF16 or AMX)."""
    return bool(set(_BF16_CPU_FLAGS) & runtime.cpu_flags(cpuinfo_path))


def resolve_precision(precision="auto"):
    """Maps `auto` to mixed_float16 on a GPU, mixed_bfloat16 on a bfloat16 CPU, else float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}. Received: precision={precision!r}")
    if precision != "auto":
        return precision
    if runtime.has_gpu():
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bfloat16() else "float32"


def set_precision(precision="auto"):
    """Sets Keras' global dtype policy (before building models) and returns the policy's name."""
    policy = resolve_precision(precision)
    keras.mixed_precision.set_global_policy(policy)
    return policy
