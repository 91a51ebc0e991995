"""Distribution strategies: one device, several GPUs (or logical CPUs), several machines.

On a machine without GPUs, `cpu_replicas=N` splits the CPU into N logical devices so
`MirroredStrategy` runs for real (what is tested on 2 logical CPUs is what runs on 8 GPUs).
`multi_worker` reads the cluster from TF_CONFIG. TensorFlow is imported when a strategy is
made: the names are the `--strategy` flag's choices, defined before TensorFlow loads.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from absl import logging

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


def check_tf_config() -> dict:
    """The parsed TF_CONFIG, or ValueError saying what is wrong with it."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise ValueError(
            "--strategy=multi_worker needs TF_CONFIG, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        cfg = json.loads(raw)
        workers = cfg["cluster"]["worker"]
        task = cfg["task"]
        if task["type"] not in ("worker", "chief") or not 0 <= int(task["index"]) < len(workers) + 1:
            raise ValueError(f"task {task} does not fit the cluster")
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"TF_CONFIG is not valid ({e}): it needs cluster.worker (a list of host:port) and task.type/task.index"
        ) from e
    return cfg


def make_strategy(name: str, cpu_replicas: int = 0, num_gpus: int = -1) -> tf.distribute.Strategy:
    """Builds the strategy; must run before any other TensorFlow op (device setup)."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"unknown --strategy={name!r}; known: {', '.join(STRATEGIES)}")
    if name == "multi_worker":
        check_tf_config()
        communication = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=communication)
    gpus = tf.config.list_physical_devices("GPU")
    if num_gpus >= 0:
        gpus = gpus[:num_gpus]
        tf.config.set_visible_devices(gpus, "GPU")
    if not gpus and cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
    if name == "one_device" or (name == "auto" and len(gpus) <= 1 and cpu_replicas <= 1):
        device = "/gpu:0" if gpus else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if gpus:
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(len(gpus))])
    n = max(cpu_replicas, 1)
    logging.info("mirrored over %d logical CPU devices", n)
    return tf.distribute.MirroredStrategy(
        [f"/cpu:{i}" for i in range(n)], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one process that writes the run directory (no cluster: this one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )
