import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import subprocess_env

from tf_cyclegan import runtime
from tf_cyclegan.training.config import ConfigError, load_config
from tf_cyclegan.training.distribute import check_tf_config, make_strategy, wait_for_workers, worker_layout
from tf_cyclegan.training.train import train_and_evaluate

_ENV = subprocess_env()


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


@pytest.mark.parametrize("raw, message", [
    ("{not json", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "needs a 'cluster'"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "needs a 'task'"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}', "index 1 is out of range"),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', "bad address '127.0.0.1'"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "task type 'ps' is not a job"),
])
def test_bad_tf_config_is_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        check_tf_config(raw)


def test_a_worker_that_never_comes_is_a_clear_error_within_the_timeout():
    ports = _free_ports(2)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"Timed out after 2 s waiting for task 1 at 127.0.0.1:{ports[1]}"):
        wait_for_workers([f"127.0.0.1:{p}" for p in ports], 0, timeout_s=2)
    assert time.monotonic() - started < 10


def test_single_process_strategies():
    assert worker_layout(make_strategy("none")) == (1, 0, True)
    assert make_strategy("auto").num_replicas_in_sync == max(1, runtime.gpu_count())  # one replica a GPU
    with pytest.raises(ConfigError, match="one of auto, none"):
        make_strategy("parameter_server")


_MIRRORED_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from conftest import random_pairs, tiny_cyclegan
    from tf_cyclegan.speed import apply_cpu_speedups

    def optimizer(policy):
        # SGD, not Adam: Adam's update hardly depends on the gradient's scale, so it would
        # hide a gradient summed or averaged the wrong number of times. Under mixed_float16
        # a loss scale small enough that no step of these tiny networks overflows.
        sgd = keras.optimizers.SGD(0.01)
        return keras.optimizers.LossScaleOptimizer(sgd, initial_scale=16.0) if policy == "mixed_float16" else sgd

    def trained(strategy, policy, initial=None):
        with strategy.scope():
            model = tiny_cyclegan(pool_size=0, ema_decay=0.5)  # the averaged generators too
            model.compile(gen_optimizer=optimizer(policy), disc_optimizer=optimizer(policy))
            # The step as `train` runs it on a CPU. (With the switch off, each image set goes
            # through a network in its own call, and float16 rounding then differs by about 22%
            # of the change here against 10% stacked; float32 stays within 5% either way.)
            apply_cpu_speedups(model, "on")
            model.build((2, 32, 32, 3))
        if initial is not None:
            model.set_weights(initial)
        start = [np.asarray(w) for w in model.weights]
        # Global batch 2, two steps: one image per replica under MirroredStrategy. (The
        # cardinality is stated: with an unknown one, fit calls the training function once
        # more at the end, where the optimizers count one more iteration before the end of
        # the data is found.)
        data = random_pairs(count=4).unbatch().batch(2).apply(tf.data.experimental.assert_cardinality(2))
        if strategy.num_replicas_in_sync == 1:  # the reference: its two steps eagerly, no graph to trace
            for batch in data:
                model.train_step(batch)
        else:  # the replicas' steps in fit's graph, as training runs them
            model.fit(data, epochs=1, verbose=0)
        return start, model

    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored_strategy.num_replicas_in_sync == 2
    for policy in sys.argv[1:]:  # one process for every policy: a TensorFlow start costs seconds
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(0)
        start, single = trained(tf.distribute.get_strategy(), policy)
        _, mirrored = trained(mirrored_strategy, policy, initial=start)
        # The four networks' weights (not the optimizers' and loss trackers' counts).
        def networks(model):
            return model.gen_a2b.weights + model.gen_b2a.weights + model.disc_a.weights + model.disc_b.weights

        position = {id(v): i for i, v in enumerate(single.weights)}
        names = [v.path for v in networks(single)]
        before = [start[position[id(v)]] for v in networks(single)]
        after_single = [np.asarray(w) for w in networks(single)]
        after_mirrored = [np.asarray(w) for w in networks(mirrored)]
        moved = max(float(np.abs(a - b).max()) for a, b in zip(after_single, before))
        worst, where = max((float(np.abs(a - b).max()), name)
                           for a, b, name in zip(after_single, after_mirrored, names))
        applied = min(int(np.asarray(getattr(o, "inner_optimizer", o).iterations))
                      for o in (mirrored.gen_optimizer, mirrored.disc_optimizer))
        # Every replica holds the same average (bit for bit), updated once a step.
        averaged = mirrored.gen_a2b_ema.weights + mirrored.gen_b2a_ema.weights
        spread = max(float(np.abs(np.asarray(r) - np.asarray(v.value.values[0])).max())
                     for v in averaged for r in v.value.values)
        assert len(averaged[0].value.values) == 2 and spread == 0.0, spread
        assert int(np.asarray(mirrored.ema_updates)) == 2
        print("RESULT", policy, worst, moved, where, applied)
""")


@pytest.mark.slow
def test_mirrored_over_two_devices_makes_the_same_update_as_one_device():
    policies = ["float32", "mixed_float16"]
    out = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT, *policies], capture_output=True, text=True,
                         env=_ENV, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = [line.split()[1:] for line in out.stdout.splitlines() if line.startswith("RESULT")]
    assert [policy for policy, *_ in results] == policies
    for policy, worst, moved, where, applied in results:
        assert int(applied) == 2, policy  # both steps applied by both optimizers: none skipped, none lost
        # All four networks: the largest difference is float noise next to how far the steps
        # moved (4-filter instance norms amplify rounding, float16's most: about 10% of the
        # change; a gradient off by the replica count would differ by about half the change).
        assert float(moved) > 1e-4, policy
        print(policy, "worst", worst, "moved", moved, where)
        assert float(worst) < (0.2 if policy == "mixed_float16" else 5e-2) * float(moved), (policy, worst, moved,
                                                                                            where)


def _worker_overrides(root, strategy, epochs):
    return {
        "data": {"root": str(root), "load_size": 36, "crop_size": 32, "num_samples": 1},
        "model": {"filters": 4, "num_residual_blocks": 1, "disc_filters": 4, "pool_size": 2},
        "train": {"epochs": epochs, "epochs_decay": 0, "verbose": 0, "seed": 1},
        "checkpoint": {"every_n_epochs": 0},
        "distribute": {"strategy": strategy, "timeout_s": 120},
    }


_WORKER_SCRIPT = textwrap.dedent("""
    import json, logging, sys
    import numpy as np
    from tf_cyclegan.training.config import load_config
    from tf_cyclegan.training.train import train_and_evaluate

    run_dir, out, overrides = sys.argv[1:4]
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)  # what a failure shows
    model = train_and_evaluate(load_config(overrides=json.loads(overrides)), run_dir)["model"]
    # The four networks (each worker's image pools are its own, by design).
    networks = model.gen_a2b.weights + model.gen_b2a.weights + model.disc_a.weights + model.disc_b.weights
    np.savez(out, *[np.asarray(w) for w in networks])
""")


def _weights(path):
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


@pytest.mark.slow
def test_two_workers_train_in_step_and_the_chief_backup_resumes_on_one_device(demo_root, tmp_path, caplog):
    ports = _free_ports(2)
    run_dir = tmp_path / "run"
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER_SCRIPT, str(run_dir), str(tmp_path / f"worker{i}.npz"),
                          json.dumps(_worker_overrides(demo_root, "multi_worker", 2))],
                         env=subprocess_env(TF_CONFIG=_tf_config(ports, i)), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    for worker in workers:
        assert worker.returncode == 0, "\n---\n".join(output[-2500:] for output in outputs)
    chief, other = _weights(tmp_path / "worker0.npz"), _weights(tmp_path / "worker1.npz")
    assert len(chief) == len(other)
    for a, b in zip(chief, other):
        np.testing.assert_array_equal(a, b)
    # The chief alone wrote the run: 6 pairs, a global batch of 2, so 3 steps an epoch.
    assert {"model.keras", "backup", "logs", "log.csv"} <= set(os.listdir(run_dir))
    with open(os.path.join(run_dir, "backup", sorted(os.listdir(run_dir / "backup"))[-1], "progress.json")) as f:
        progress = json.load(f)
    assert (progress["epoch"], progress["global_step"], progress["global_batch_size"]) == (2, 6, 2)

    # One more epoch on one device with no strategy (in this process): it resumes from the chief's backup.
    with caplog.at_level(logging.INFO):
        train_and_evaluate(load_config(overrides=_worker_overrides(demo_root, "none", 3)), str(run_dir))
    assert "Resuming" in caplog.text and "at epoch 3, batch 1" in caplog.text
    rows = (run_dir / "log.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2"]
