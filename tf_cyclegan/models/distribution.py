"""What the CycleGAN step needs from `tf.distribute` and Keras' distributed `fit`, in one place.

`CycleGAN.train_step` is written for one replica; under a strategy, `fit` runs it on each.
Four things make that right, and they all live here:

- `average_over_replicas`: each replica's loss is its local mean divided by the replica
  count, so that the sum of the replicas' gradients (what `tf.distribute` forms) is the
  gradient of the global mean. Needed as long as gradients are summed across replicas.
- `replica_local`: the image pools' variables are sync-on-read (each replica keeps its own
  pool); in-place scatter updates need this replica's own `tf.Variable`.
- `step_logs`: under MultiWorkerMirroredStrategy Keras averages a step's outputs across
  workers along axis 0, which scalars lack (keras-team/keras#20585); each gets a length-1
  axis there. Remove when Keras reduces scalar step outputs across workers.
- `build_without_peeking`: Keras' pre-`fit` build under a strategy peeks at a batch and
  averages it across replicas, which fails under MultiWorkerMirroredStrategy ("Attempt to
  convert a value (PerReplica...)", keras-team/keras#20585) and uses up a pass of the
  dataset; CycleGAN builds its pools from the local part of that batch instead. Remove
  (and `CycleGAN._maybe_symbolic_build` with it) when keras-team/keras#20585 is fixed.
"""

import keras
import tensorflow as tf


def average_over_replicas(per_example_loss):
    """Mean over the local batch, divided by the replica count: summing the replicas'
    gradients (what `tf.distribute` does) then gives the gradient of the global mean."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return tf.reduce_mean(per_example_loss) / replicas


def replica_local(variable):
    """The `tf.Variable` behind a Keras variable; under `tf.distribute`, this replica's copy.

    Sync-on-read variables have no scatter updates of their own. This replica's copy is
    found with public API where the replica's id is known when the step is traced (the
    default strategy, MirroredStrategy, MultiWorkerMirroredStrategy: a worker's replicas
    are its local copies, in order). Where it is not (TPUStrategy), TensorFlow's private
    `_get_on_device_or_primary` is asked; missing public API: a replica's own component
    of a distributed variable in replica context.
    """
    value = variable.value
    if not isinstance(value, tf.distribute.DistributedValues):
        return value
    context = tf.distribute.get_replica_context()
    local = tf.distribute.get_strategy().experimental_local_results(value)
    replica_id = None if context is None else tf.get_static_value(context.replica_id_in_sync_group)
    if replica_id is None:
        return value._get_on_device_or_primary()
    return local[int(replica_id) % len(local)]


def is_multi_worker(strategy):
    """Whether `strategy` spans more than one worker process (Keras' own test for
    reducing step outputs across workers, written with public API: a
    MultiWorkerMirroredStrategy whose cluster has more than one chief or worker task)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return sum(len(spec.get(job, ())) for job in ("chief", "worker")) > 1


def step_logs(logs, strategy):
    """The step's logs as `fit` can reduce them under `strategy` (see the module's docstring)."""
    if is_multi_worker(strategy):
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


def build_without_peeking(model, iterator):
    """Builds `model` (its pools) from the local part of the first batch of a distributed
    `fit` iterator, where it is not built yet; see the module's docstring."""
    if model.built or iterator is None:
        return
    strategy = model.distribute_strategy
    for _, _, batches in iterator:
        batch = next(batches)
        break
    local = tf.nest.map_structure(
        lambda x: strategy.experimental_local_results(x)[0]
        if isinstance(x, tf.distribute.DistributedValues) else x,
        batch,
    )
    real_a, _, _ = keras.utils.unpack_x_y_sample_weight(local)
    with strategy.scope():
        model.build(tuple(real_a.shape))
