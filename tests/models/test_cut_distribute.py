"""CUT under MirroredStrategy: two replicas, each with half the global batch, make the update
one device makes with the whole batch (in a subprocess with two logical CPU devices)."""

import subprocess
import sys
import textwrap

import pytest
from conftest import subprocess_env

_MIRRORED_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tf_cyclegan.models.cut import build_cut

    def trained(strategy, initial=None):
        with strategy.scope():
            # CUT's identity PatchNCE and FastCUT's random flip, both in one model.
            model = build_cut("cut", flip_equivariance=True, filters=4, num_residual_blocks=1, disc_filters=4,
                              head_units=8, num_patches=16,
                              seed=0, ema_decay=0.5, nce_layers=("stem_pad", "down1_conv", "down2_conv", "res1_add"))
            # SGD, not Adam: Adam's update hardly depends on the gradient's scale, so it would
            # hide a gradient summed or averaged the wrong number of times.
            model.compile(*[keras.optimizers.SGD(lr) for lr in (0.05, 0.05, 1e-6)])
        if initial is not None:
            model.set_weights(initial)  # the patch draws' seed state included
        start = [np.asarray(w) for w in model.weights]
        rng = np.random.default_rng(0)
        pairs = tuple(rng.uniform(-1, 1, (4, 32, 32, 3)).astype("float32") for _ in range(2))
        # Global batch 2, two steps: one image per replica under MirroredStrategy.
        data = tf.data.Dataset.from_tensor_slices(pairs).batch(2).apply(tf.data.experimental.assert_cardinality(2))
        if strategy.num_replicas_in_sync == 1:  # the reference: its two steps eagerly, no graph to trace
            for batch in data:
                model.train_step(batch)
        else:  # the replicas' steps in fit's graph, as training runs them
            model.fit(data, epochs=1, verbose=0)
        return start, model

    keras.utils.set_random_seed(0)
    start, single = trained(tf.distribute.get_strategy())
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    _, mirrored = trained(strategy, initial=start)
    def networks(model):  # the trained networks and the average, not the loss trackers' sums
        return {name: getattr(model, name).weights for name in model.network_names + ("generator_ema",)}

    position = {id(v): i for i, v in enumerate(single.weights)}  # paths repeat: the average's are the generator's
    # Per network, its largest difference against its largest move: the head's gradients are
    # far larger than the others' (its normalisation divides by small MLP outputs here).
    rows = []
    for name, weights in networks(single).items():
        move = max(float(np.abs(np.asarray(w) - start[position[id(w)]]).max()) for w in weights)
        gap = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                  for a, b in zip(weights, networks(mirrored)[name]))
        rows.append((gap / move, move, name))
    worst, _, where = max(rows)
    moved = min(move for _, move, _ in rows)
    applied = min(int(np.asarray(o.iterations)) for o in mirrored.training_optimizers)
    # The patch ids and the flip come from one seed state per replica: all must stay equal,
    # as must the averaged generator.
    shared = [mirrored.seed_generator.state] + mirrored.generator_ema.weights
    spread = max(float(np.abs(np.asarray(r) - np.asarray(v.value.values[0])).max())
                 for v in shared for r in v.value.values)
    assert len(shared[0].value.values) == 2 and spread == 0.0, spread
    same_draws = np.array_equal(np.asarray(single.seed_generator.state), np.asarray(mirrored.seed_generator.state))
    print("RESULT", worst, moved, where, applied, same_draws)
""")


@pytest.mark.slow
def test_mirrored_strategy_makes_the_single_device_update():
    out = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], capture_output=True, text=True,
                         env=subprocess_env(), timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    worst, moved, where, applied, same_draws = out.stdout.split("RESULT")[1].split()
    assert int(applied) == 2 and same_draws == "True"
    # `worst`: the largest difference in a network over its largest move (measured 4e-6). A
    # gradient summed over the replicas instead of averaged would be off by about the move;
    # patch ids drawn apart on the replicas would give other losses altogether.
    assert float(moved) > 1e-3
    assert float(worst) < 1e-4, (worst, moved, where)
