"""Graph-optimisation settings for the training step's function on a CPU-only machine (a speed device).

TensorFlow optimises a `tf.function`'s graph (Grappler) the first time it runs, so the
time Grappler takes is part of the wait before training's first step. Four of its
passes change nothing in the CycleGAN training step when no GPU is present, and take
most of that time (docs/performance.md has what they cost the first step):

- the layout optimizer (it converts layouts for GPUs; the step is channels-last already),
- the MLIR "TFG" passes (shape inference, conditional code motion: the step has no
  conditionals),
- the memory optimizer (its swapping and scheduling heuristics target GPU memory),
- the second round of all passes (which finds next to nothing left to merge).

`lean_training_function(function)` runs Keras' training function with those passes off,
for that function only: the options are TensorFlow's per-call function options, set for
the calling thread while the function runs, so the user's other functions keep
TensorFlow's defaults. A pass the user has configured (`tf.config.optimizer
.set_experimental_options`) keeps the user's setting. With a GPU present, nothing changes.
"""

import contextlib
import functools

import tensorflow as tf

from tf_cyclegan import runtime

try:  # TensorFlow's per-call function options: private, and the only per-function way in
    from tensorflow.python.eager import context as _eager_context
except ImportError:  # pragma: no cover - a TensorFlow that moved it: the defaults, unchanged
    _eager_context = None

_Rewriter = tf.compat.v1.ConfigProto().graph_options.rewrite_options.__class__

# field: (its "not set" value, the value the training function gets on CPU)
LEAN_CPU_REWRITES = {
    "layout_optimizer": (_Rewriter.DEFAULT, _Rewriter.OFF),
    "memory_optimization": (_Rewriter.DEFAULT_MEM_OPT, _Rewriter.NO_MEM_OPT),
    "meta_optimizer_iterations": (_Rewriter.DEFAULT_NUM_ITERS, _Rewriter.ONE),
    "disable_tfg_optimizer": (False, True),
}


def lean_config(config):
    """A copy of `config` (a `tf.compat.v1.ConfigProto`) with the passes above turned off,
    except those it already sets."""
    lean = tf.compat.v1.ConfigProto()
    lean.CopyFrom(config)
    rewrites = lean.graph_options.rewrite_options
    for field, (unset, value) in LEAN_CPU_REWRITES.items():
        if getattr(rewrites, field) == unset:
            setattr(rewrites, field, value)
    return lean


def _calling_with_lean_passes():
    """A context manager factory that runs the `tf.function`s called inside it (in this
    thread) with the lean passes, or None where this TensorFlow does not offer per-call
    options the way 2.21 does (then the training function keeps TensorFlow's defaults).

    This module's one use of private TensorFlow API: the eager context's per-thread
    function-call options (`tensorflow.python.eager.context`: `context()`,
    `function_call_options`, `FunctionCallOptions`, `_thread_local_data`). Missing public
    API: per-`tf.function` Grappler options (`tf.config.optimizer.set_experimental_options`
    is process-wide). Fallback: TensorFlow's defaults. The options are made once, here (from the calling thread's
    options now), so every call passes the same ones and reuses the one optimised graph.
    """
    try:
        current = _eager_context.context().function_call_options
        config = tf.compat.v1.ConfigProto.FromString(current.config_proto_serialized)
        options = _eager_context.FunctionCallOptions(
            executor_type=current.executor_type, config_proto=lean_config(config))
        _eager_context.context()._thread_local_data.function_call_options  # noqa: B018 - where they are set
    except (AttributeError, TypeError, ValueError):
        return None

    @contextlib.contextmanager
    def calling():
        thread_local = _eager_context.context()._thread_local_data
        previous = getattr(thread_local, "function_call_options", None)  # None: TensorFlow's defaults
        thread_local.function_call_options = options
        try:
            yield
        finally:
            thread_local.function_call_options = previous

    return calling


def lean_training_function(function):
    """Keras' training function (`model.train_function`), run with the lean passes on a
    CPU-only machine; `function` itself where a GPU is present or TensorFlow offers no
    per-call options."""
    if runtime.has_gpu() or _eager_context is None:
        return function
    calling = None

    @functools.wraps(function)
    def run(*args, **kwargs):
        nonlocal calling
        if calling is None:
            calling = _calling_with_lean_passes() or contextlib.nullcontext
        with calling():
            return function(*args, **kwargs)

    return run
