"""Choosing a `tf.distribute` strategy from the config, and who is who in a cluster.

`fit` drives the one `CycleGAN.train_step` under every strategy. What the step itself
needs under a strategy (the loss averaged over replicas, the pools' per-replica variables,
and the two workarounds of Keras 3 problems with MultiWorkerMirroredStrategy,
keras-team/keras#20585) is in one place, `tf_cyclegan/models/distribution.py`, so
multi-worker training goes through the same `fit`, callbacks and run directory.
"""

import json
import os
import socket
import time

import tensorflow as tf

from tf_cyclegan import runtime
from tf_cyclegan.choices import STRATEGIES
from tf_cyclegan.training.config import ConfigError


def check_tf_config(raw):
    """Parses a `TF_CONFIG` value and checks it, naming what is wrong; returns the dict."""
    try:
        tf_config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error.msg} at character {error.pos}): {raw!r}") from None
    if not isinstance(tf_config, dict) or not isinstance(tf_config.get("cluster"), dict):
        raise ConfigError(f"TF_CONFIG needs a 'cluster' mapping of job names to address lists. Received: {raw!r}")
    cluster = tf_config["cluster"]
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ConfigError(f"TF_CONFIG cluster job '{job}' must be a non-empty list of 'host:port'. "
                              f"Received: {addresses!r}")
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"TF_CONFIG cluster job '{job}' has a bad address {address!r}: expected 'host:port'")
    if not set(cluster) & {"worker", "chief"}:
        raise ConfigError(f"TF_CONFIG cluster needs a 'worker' (or 'chief') job. Received jobs: {sorted(cluster)}")
    task = tf_config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ConfigError(f"TF_CONFIG needs a 'task' with 'type' and 'index'. Received: {task!r}")
    if task["type"] not in cluster:
        raise ConfigError(f"TF_CONFIG task type {task['type']!r} is not a job of the cluster ({sorted(cluster)})")
    index = task["index"]
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise ConfigError(f"TF_CONFIG task index {index!r} is out of range: job '{task['type']}' has "
                          f"{len(cluster[task['type']])} address(es)")
    return tf_config


def _cluster_resolver():
    if "TF_CONFIG" in os.environ:
        check_tf_config(os.environ["TF_CONFIG"])
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if "SLURM_JOB_ID" in os.environ:
        return tf.distribute.cluster_resolver.SlurmClusterResolver()
    raise ConfigError("distribute.strategy=multi_worker needs TF_CONFIG (see docs/distributed.md) or a Slurm job")


def _cluster_tasks(spec):
    """The training tasks of a cluster spec dict in order: the chief, then the workers."""
    return [(job, i) for job in ("chief", "worker") if job in spec for i in range(len(spec[job]))]


def wait_for_workers(addresses, index, timeout_s):
    """Checks, before TensorFlow starts waiting (which it does unbounded, holding the GIL),
    that every worker of the cluster is up: each listens on its own TF_CONFIG port and
    connects to all the others'. Raises `ConfigError` naming the workers not heard from.

    Args:
        addresses: 'host:port' of every task, in cluster order.
        index: this task's position in `addresses`.
        timeout_s: how long to wait for the others.
    """
    host, port = addresses[index].rsplit(":", 1)
    others = {i: address for i, address in enumerate(addresses) if i != index}
    reached, heard_from = set(), set()
    deadline = time.monotonic() + timeout_s
    try:
        listener = socket.create_server(("", int(port)), reuse_port=hasattr(socket, "SO_REUSEPORT"))
    except OSError as error:
        raise ConfigError(f"Cannot listen on {addresses[index]} (this worker's TF_CONFIG address): "
                          f"{error.strerror}") from None
    listener.settimeout(0.2)
    with listener:
        while (len(reached) < len(others) or len(heard_from) < len(others)) and time.monotonic() < deadline:
            for i in set(others) - reached:
                peer_host, peer_port = others[i].rsplit(":", 1)
                try:
                    with socket.create_connection((peer_host, int(peer_port)), timeout=0.5) as connection:
                        connection.sendall(str(index).encode())
                    reached.add(i)
                except OSError:
                    pass
            try:
                connection, _ = listener.accept()
                with connection:
                    connection.settimeout(2)
                    received = connection.recv(16).decode()
                if received.isdigit():
                    heard_from.add(int(received))
            except OSError:
                pass
    missing = sorted((set(others) - reached) | (set(others) - heard_from))
    if missing:
        names = ", ".join(f"task {i} at {others[i]}" for i in missing)
        raise ConfigError(f"Timed out after {timeout_s} s waiting for {names} (from TF_CONFIG). Check the "
                          "addresses and that every worker is running (distribute.timeout_s sets this limit).")


def make_strategy(name="auto", tpu=None, timeout_s=300):
    """The `tf.distribute.Strategy` that `distribute.strategy` names.

    Args:
        name: "auto" (MirroredStrategy with more than one GPU, else the default),
            "none", "mirrored" (all local GPUs, or CPU), "multi_worker" (from TF_CONFIG or
            Slurm), "tpu".
        tpu: TPU name or address for "tpu" (None: the local or Colab TPU).
        timeout_s: bound on every wait for other machines, including the collectives.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"distribute.strategy must be one of {', '.join(STRATEGIES)}. Received: {name!r}")
    if name == "auto":
        name = "mirrored" if runtime.gpu_count() > 1 else "none"
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        resolver = _cluster_resolver()
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)

        spec = resolver.cluster_spec()
        tasks = _cluster_tasks(spec.as_dict())
        addresses = [spec.task_address(job, i) for job, i in tasks]
        wait_for_workers(addresses, tasks.index((resolver.task_type, resolver.task_id)), timeout_s)
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def worker_layout(strategy):
    """(number of input pipelines, this one's index, whether this process is the chief).

    One input pipeline per machine; the chief (the `chief` task, else worker 0) alone
    writes the run directory.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
        return 1, 0, True
    tasks = _cluster_tasks(resolver.cluster_spec().as_dict())
    task = (resolver.task_type, resolver.task_id or 0)
    if task not in tasks:
        return 1, 0, True
    index = tasks.index(task)
    return len(tasks), index, index == 0
