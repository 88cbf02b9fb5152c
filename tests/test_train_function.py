import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_pairs, tiny_cyclegan

from tf_cyclegan import cyclegan
from tf_cyclegan.train_function import single_graph_train_function


class _StepGraphs:
    """Wraps `model.train_step` to record the types of the ops in each graph it is traced into."""

    def __init__(self, model):
        self.op_types = []
        step = model.train_step

        def recorded(data):
            outputs = step(data)
            graph = tf.compat.v1.get_default_graph()
            self.op_types.append({op.type for op in graph.get_operations()})
            return outputs

        model.train_step = recorded


def test_fit_traces_the_step_into_the_graph_that_reads_the_batch():
    model = tiny_cyclegan()
    model.compile(jit_compile=False)
    graphs = _StepGraphs(model)
    model.fit(random_pairs(count=2), epochs=2, verbose=0)
    # One trace for both epochs, in the graph with the iterator's read: Keras' own function
    # traces the step into an inner function of its own, which has no IteratorGetNext.
    assert len(graphs.op_types) == 1
    assert "IteratorGetNext" in graphs.op_types[0] and "Conv2D" in graphs.op_types[0]


def _trained(single_graph, monkeypatch, **fit_kwargs):
    if not single_graph:
        monkeypatch.setattr(cyclegan, "single_graph_train_function", lambda model: None)
    keras.utils.set_random_seed(1)
    model = tiny_cyclegan()
    model.compile(jit_compile=False)
    history = model.fit(random_pairs(count=3), verbose=0, **fit_kwargs)
    monkeypatch.undo()
    return model, history


def test_training_gives_the_numbers_of_keras_own_function(monkeypatch):
    ours, ours_history = _trained(True, monkeypatch, epochs=2)
    keras_model, keras_history = _trained(False, monkeypatch, epochs=2)
    assert ours_history.history.keys() == keras_history.history.keys()
    for key, values in keras_history.history.items():
        np.testing.assert_allclose(ours_history.history[key], values, rtol=1e-5, err_msg=key)
    for got, want in zip(ours.weights, keras_model.weights):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6, err_msg=got.path)
    assert int(ours.gen_optimizer.iterations.numpy()) == 6  # three batches, two epochs


def test_train_on_batch_trains_once_and_returns_the_losses():
    model = tiny_cyclegan()
    model.compile(jit_compile=False)
    real_a, real_b = next(iter(random_pairs(count=1)))
    logs = model.train_on_batch(real_a.numpy(), real_b.numpy(), return_dict=True)
    assert {"gen_total", "disc_a", "disc_b"} <= set(logs) and np.isfinite(logs["gen_total"])
    assert int(model.gen_optimizer.iterations.numpy()) == 1
    assert int(model.disc_optimizer.iterations.numpy()) == 1


@pytest.mark.parametrize("compile_kwargs", [
    {"jit_compile": True}, {"jit_compile": False, "steps_per_execution": 2},
    {"jit_compile": False, "run_eagerly": True},
])
def test_keras_function_is_kept_where_it_nests_for_a_reason(compile_kwargs):
    model = tiny_cyclegan()
    model.compile(**compile_kwargs)
    assert single_graph_train_function(model) is None


def test_keras_function_is_kept_under_a_distribution_strategy():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = tiny_cyclegan()
        model.compile(jit_compile=False)
        assert single_graph_train_function(model) is None
    assert single_graph_train_function(model) is None  # built for the strategy, wherever asked
    plain = tiny_cyclegan()
    plain.compile(jit_compile=False)
    assert single_graph_train_function(plain) is not None
