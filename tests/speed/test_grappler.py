import threading
import types

import keras
import pytest
from conftest import random_pairs, tiny_cyclegan
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tensorflow.python.eager import context

from tf_cyclegan import runtime
from tf_cyclegan.speed import apply_cpu_speedups, grappler

Rewriter = rewriter_config_pb2.RewriterConfig
LEAN = {
    "layout_optimizer": Rewriter.OFF, "memory_optimization": Rewriter.NO_MEM_OPT,
    "meta_optimizer_iterations": Rewriter.ONE, "disable_tfg_optimizer": True,
}


def _rewrites(serialized):
    return config_pb2.ConfigProto.FromString(serialized).graph_options.rewrite_options


def test_lean_config_turns_off_the_four_passes_and_keeps_everything_else():
    config = config_pb2.ConfigProto(allow_soft_placement=True, intra_op_parallelism_threads=3)
    config.graph_options.rewrite_options.remapping = Rewriter.OFF
    lean = grappler.lean_config(config)
    rewrites = lean.graph_options.rewrite_options
    assert {field: getattr(rewrites, field) for field in LEAN} == LEAN
    assert rewrites.remapping == Rewriter.OFF and rewrites.constant_folding == Rewriter.DEFAULT
    assert lean.allow_soft_placement and lean.intra_op_parallelism_threads == 3
    assert config.graph_options.rewrite_options.layout_optimizer == Rewriter.DEFAULT  # a copy


def test_lean_config_keeps_passes_the_user_configured():
    config = config_pb2.ConfigProto()
    config.graph_options.rewrite_options.layout_optimizer = Rewriter.ON
    config.graph_options.rewrite_options.memory_optimization = Rewriter.HEURISTICS
    config.graph_options.rewrite_options.meta_optimizer_iterations = Rewriter.TWO
    rewrites = grappler.lean_config(config).graph_options.rewrite_options
    assert rewrites.layout_optimizer == Rewriter.ON
    assert rewrites.memory_optimization == Rewriter.HEURISTICS
    assert rewrites.meta_optimizer_iterations == Rewriter.TWO
    assert rewrites.disable_tfg_optimizer


def test_the_lean_passes_apply_only_inside_and_only_in_this_thread():
    ctx = context.context()
    before = ctx.function_call_options.config_proto_serialized
    seen_elsewhere = []
    with grappler._calling_with_lean_passes()():
        assert _rewrites(ctx.function_call_options.config_proto_serialized).disable_tfg_optimizer
        other = threading.Thread(
            target=lambda: seen_elsewhere.append(ctx.function_call_options.config_proto_serialized))
        other.start()
        other.join()
    assert not _rewrites(seen_elsewhere[0]).disable_tfg_optimizer
    assert ctx.function_call_options.config_proto_serialized == before


def test_the_options_are_restored_after_an_error():
    ctx = context.context()
    before = ctx.function_call_options.config_proto_serialized
    with pytest.raises(RuntimeError), grappler._calling_with_lean_passes()():
        raise RuntimeError("boom")
    assert ctx.function_call_options.config_proto_serialized == before


class _NoThreadLocalData:  # a TensorFlow whose eager context keeps the options elsewhere
    function_call_options = context.context().function_call_options


class _NoOptions:  # a TensorFlow whose eager context has no per-call options
    _thread_local_data = None


@pytest.mark.parametrize("stand_in", [_NoThreadLocalData, _NoOptions])
def test_without_tensorflows_per_call_options_the_function_runs_with_the_defaults(monkeypatch, stand_in):
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    eager_context = types.SimpleNamespace(context=stand_in, FunctionCallOptions=context.FunctionCallOptions)
    monkeypatch.setattr(grappler, "_eager_context", eager_context)
    assert grappler._calling_with_lean_passes() is None
    calls = []
    run = grappler.lean_training_function(lambda x: calls.append(x) or x)
    assert run(3) == 3 and run(4) == 4 and calls == [3, 4]


def test_with_a_gpu_the_training_function_is_left_as_it_is(monkeypatch):
    monkeypatch.setattr(runtime, "has_gpu", lambda: True)

    def function(iterator):
        return iterator

    assert grappler.lean_training_function(function) is function


@pytest.mark.slow
def test_fit_traces_and_runs_the_training_step_with_the_lean_passes(monkeypatch):
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)  # the lean passes apply on CPU-only machines
    model = tiny_cyclegan()
    model.compile()
    apply_cpu_speedups(model, "on")
    seen = []
    train_step = type(model).train_step

    def recording_train_step(self, data):
        seen.append(context.context().function_call_options.config_proto_serialized)
        return train_step(self, data)

    class Recorder(keras.callbacks.Callback):  # runs in fit, outside the training function
        def on_train_batch_begin(self, batch, logs=None):
            outside.append(context.context().function_call_options.config_proto_serialized)

    outside = []
    monkeypatch.setattr(type(model), "train_step", recording_train_step)
    before = context.context().function_call_options.config_proto_serialized
    model.fit(random_pairs(2), epochs=1, verbose=0, callbacks=[Recorder()])
    function = model.train_function
    model.fit(random_pairs(2), epochs=1, verbose=0)

    assert seen, "train_step was never traced"
    rewrites = _rewrites(seen[0])
    assert {field: getattr(rewrites, field) for field in LEAN} == LEAN
    assert outside and not _rewrites(outside[0]).disable_tfg_optimizer
    assert model.train_function is function  # made and wrapped once, reused by later fits
    assert context.context().function_call_options.config_proto_serialized == before
