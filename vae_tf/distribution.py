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
        # Every MirroredStrategy numbers its collectives from the same keys, and TensorFlow remembers a key's shape
        # for the process: a second run in one process (a notebook, a sweep) whose step gathers other shapes would
        # fail, so each strategy starts past the keys of the one before (tensorflow/tensorflow#62790).
        tf.distribute.MirroredStrategy._collective_key_base += 10_000
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    if "TF_CONFIG" not in os.environ:
        raise UserError("strategy multi_worker needs the TF_CONFIG environment variable listing the workers "
                        "(see docs/devices.md)")
    try:
        json.loads(os.environ["TF_CONFIG"])
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise UserError(f"TF_CONFIG cannot be used ({error}); it needs cluster.worker (a list of host:port) "
                        f"and task.type / task.index (see docs/devices.md)") from None


def is_chief(strategy):
    """Whether this process writes the run folder: the only process, or the chief (else worker 0) of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if "chief" in resolver.cluster_spec().as_dict():
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def precision_warning(precision):
    """One line saying why `precision` will run slowly on this machine's devices, or None.

    bfloat16 is fast on CPUs with AVX-512 BF16 or AMX and on GPUs from compute capability 8.0 (Ampere), float16 on
    GPUs from 7.0 (Volta); elsewhere TensorFlow emulates them: the results stay right, the speed goes.
    """
    if precision == "float32":
        return None
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        needed = (8, 0) if precision == "mixed_bfloat16" else (7, 0)
        capability = min(tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0)
                         for gpu in gpus)
        if capability >= needed:
            return None
        return (f"warning: {precision} needs a GPU of compute capability {needed[0]}.{needed[1]} or newer for speed "
                f"(this one has {capability[0]}.{capability[1]}); use float32")
    if precision == "mixed_float16":
        return "warning: mixed_float16 is for GPUs; on a CPU it is emulated and slower than float32: use mixed_bfloat16 or float32"
    flags = _cpu_flags()
    if flags is None or flags & {"avx512_bf16", "amx_bf16"}:
        return None
    return ("warning: this CPU has neither AVX-512 BF16 nor AMX, so mixed_bfloat16 is emulated and slower than "
            "float32: use float32")


def _cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo; None where there is no such file (not Linux)."""
    try:
        with open("/proc/cpuinfo") as info:
            return set(next((line for line in info if line.startswith("flags")), "").split()[2:])
    except OSError:
        return None
