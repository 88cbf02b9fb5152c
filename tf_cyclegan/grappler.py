"""Graph-optimisation settings for the training step's function on a CPU-only machine.

TensorFlow optimises a `tf.function`'s graph (Grappler) the first time it runs, so the
time Grappler takes is part of the wait before training's first step. Four of its
passes change nothing in the CycleGAN training step when no GPU is present, and took
about 0.9 s of the 1.4 s Grappler spends on the ResNet-9 step at 128x128 (the README's
training-speed section has the measurements):

- the layout optimizer (it converts layouts for GPUs; the step is channels-last already),
- the MLIR "TFG" passes (shape inference, conditional code motion: the step has no
  conditionals),
- the memory optimizer (its swapping and scheduling heuristics target GPU memory),
- the second round of all passes (which only merged 15 more duplicate nodes of ~3,600).

`lean_training_function(function)` runs Keras' training function with those passes off,
for that function only: the options are TensorFlow's per-call function options, set for
the calling thread while the function runs, so the user's other functions keep
TensorFlow's defaults. A pass the user has configured (`tf.config.optimizer
.set_experimental_options`) keeps the user's setting. With a GPU present, nothing changes.
"""

import contextlib
import functools

from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tensorflow.python.eager import context

from tf_cyclegan import runtime

_Rewriter = rewriter_config_pb2.RewriterConfig

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
    lean = config_pb2.ConfigProto()
    lean.CopyFrom(config)
    rewrites = lean.graph_options.rewrite_options
    for field, (unset, value) in LEAN_CPU_REWRITES.items():
        if getattr(rewrites, field) == unset:
            setattr(rewrites, field, value)
    return lean


def function_call_config(config):
    """Runs the `tf.function`s called inside (in this thread) with Grappler `config`.

    TensorFlow reads these options when it calls a function and optimises each function
    once, the first time; a function first called here keeps `config` only as long as it
    is always called with it (a call with other options is optimised anew).
    """
    return _calling_with(_call_options(config))


def _call_options(config):
    """TensorFlow's per-call function options: this thread's executor, Grappler `config`."""
    executor_type = context.context().function_call_options.executor_type
    return context.FunctionCallOptions(executor_type=executor_type, config_proto=config)


@contextlib.contextmanager
def _calling_with(options):
    thread_local = context.context()._thread_local_data
    previous = getattr(thread_local, "function_call_options", None)  # None: TensorFlow's defaults
    thread_local.function_call_options = options
    try:
        yield
    finally:
        thread_local.function_call_options = previous


def lean_training_function(function):
    """Keras' training function (`model.train_function`), run with the lean passes on a
    CPU-only machine; `function` itself where a GPU is present.

    The options are made once, at the first call (from the calling thread's options
    then), so every call passes the same ones and reuses the one optimised graph.
    """
    if runtime.has_gpu():
        return function
    options = None

    @functools.wraps(function)
    def run(*args, **kwargs):
        nonlocal options
        if options is None:
            current = config_pb2.ConfigProto.FromString(context.context().function_call_options.config_proto_serialized)
            options = _call_options(lean_config(current))
        with _calling_with(options):
            return function(*args, **kwargs)

    return run
