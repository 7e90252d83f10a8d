"""Choosing the tf.distribute strategy from the original's flags.

* TPU (`--accelerator_type=TPU --master=...`): TPUStrategy.
* `TF_CONFIG` naming a cluster of several tasks: MultiWorkerMirroredStrategy.
* GPU (or auto with GPUs present): one GPU -> OneDeviceStrategy; several ->
  MirroredStrategy over `--devices_per_worker` of them (all by default).
* CPU: OneDeviceStrategy; `--devices_per_worker=N>1` splits the CPU into N
  logical devices and mirrors over them (useful to test data parallelism).
"""

import json
import os

import tensorflow as tf
from absl import logging

ACCELERATORS = ("auto", "CPU", "GPU", "TPU")


def _cluster_size() -> int:
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("cluster", {})
    return sum(len(tasks) for name, tasks in cluster.items() if name in ("chief", "worker"))


def _split_cpu(count: int) -> list[str]:
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
        raise RuntimeError("Splitting the CPU into logical devices must happen before "
                           "TensorFlow runs anything; call get_strategy first.") from error
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def get_strategy(accelerator_type: str = "auto", master: str = "",
                 devices_per_worker: int = 0) -> tf.distribute.Strategy:
    """The strategy for this process (see the module docstring).

    Args:
      accelerator_type: auto | CPU | GPU | TPU.
      master: TPU address or name (TPUStrategy only).
      devices_per_worker: devices to mirror over on this host; 0 = all GPUs
        (GPU/auto) or one CPU.
    """
    if accelerator_type not in ACCELERATORS:
        raise ValueError(f"--accelerator_type={accelerator_type!r}; choose from {ACCELERATORS}.")
    if accelerator_type == "TPU":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=master or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if accelerator_type == "CPU" and devices_per_worker > 1:
        devices = _split_cpu(devices_per_worker)
    else:
        devices = None
    if _cluster_size() > 1:
        communication = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=communication)
        logging.info("MultiWorkerMirroredStrategy: %d replicas in sync",
                     strategy.num_replicas_in_sync)
        return strategy
    if devices is None:
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        if accelerator_type == "CPU" or not gpus:
            if accelerator_type == "GPU":
                raise RuntimeError("--accelerator_type=GPU but TensorFlow sees no GPU.")
            return tf.distribute.OneDeviceStrategy("/cpu:0")
        devices = gpus[:devices_per_worker] if devices_per_worker > 0 else gpus
    if len(devices) == 1:
        return tf.distribute.OneDeviceStrategy(devices[0])
    logging.info("MirroredStrategy over %s", devices)
    return tf.distribute.MirroredStrategy(devices)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the task that writes checkpoints, summaries and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def task_id(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id or 0) if resolver is not None else 0
