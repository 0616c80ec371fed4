"""Where training runs: one device, mirrored replicas on local devices, or several machines (tf.distribute)."""

import json
import os

import tensorflow as tf

from vae_tf.errors import UserError


def configure_devices(params):
    """Split the CPU and set op determinism; must run before TensorFlow executes its first op."""
    if params.cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * params.cpu_devices)
        except RuntimeError:
            if len(tf.config.list_logical_devices("CPU")) != params.cpu_devices:
                raise UserError(f"cpu_devices={params.cpu_devices} must be set before TensorFlow starts; "
                                f"run training in a fresh process (python train.py)") from None
    if params.deterministic:
        tf.config.experimental.enable_op_determinism()


def make_strategy(params):
    if params.strategy == "default":
        return tf.distribute.get_strategy()
    if params.strategy == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    if "TF_CONFIG" not in os.environ:
        raise UserError("strategy multi_worker needs the TF_CONFIG environment variable listing the workers "
                        "(see README, 'Several devices and machines')")
    try:
        json.loads(os.environ["TF_CONFIG"])
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise UserError(f"TF_CONFIG cannot be used ({error}); it needs cluster.worker (a list of host:port) "
                        f"and task.type / task.index (see README, 'Several devices and machines')") from None


def is_chief(strategy):
    """Whether this process writes the run folder: the only process, or the chief (else worker 0) of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if "chief" in resolver.cluster_spec().as_dict():
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0
