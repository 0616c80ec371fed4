"""vae_tf: variational autoencoders (VAE, β-VAE, β-TCVAE, FactorVAE, DIP-VAE, InfoVAE, IWAE) in TensorFlow / Keras 3."""

import importlib
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow 2.21 ships with its oneDNN CPU kernels off; on for this model they train ~1.6x faster
# (benchmarks/bench_training.py). Set TF_ENABLE_ONEDNN_OPTS=0 to opt out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# The CUDA build of TensorFlow prints GPU-probe lines to stderr on machines without a GPU, before its
# log level applies; they would bury our one-line error messages. Import it and probe the devices with
# stderr captured, then pass on every line that is not one of those known, harmless probe lines.
_PROBE_NOISE = re.compile(r"cudart_stub|absl::InitializeLog|cuInit|cuda_platform|cuda_dnn|cuda_fft|cuda_blas|"
                          r"computation_placer|rebuild TensorFlow with the appropriate compiler flags|"
                          r"oneDNN custom operations are on|cpu_feature_guard")


def _import_tensorflow_quietly():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            tf.config.list_physical_devices()
        finally:  # whatever happens, stderr comes back with every line that is not probe noise
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _PROBE_NOISE.search(line)))


def import_tensorflow():
    """Import TensorFlow once, its GPU-probe noise filtered out; every public name below does this first."""
    if "tensorflow" not in sys.modules:
        _import_tensorflow_quietly()


# Public names -> the module defining them, loaded on first use: `python train.py --help` and `--list-presets`
# answer without importing TensorFlow, while `vae_tf.train` and the others work as if imported here.
_PUBLIC = {"Params": "params", "load_params": "params", "PRESETS": "presets", "kl_weight_schedule": "schedules",
           "build_model": "models", "VAE": "models", "load_dataset": "datasets", "load_ground_truth": "datasets",
           "train": "training", "load_run": "checkpoints", "log_likelihood": "likelihood", "UserError": "errors",
           "TrainingDiverged": "errors", "TrainingInterrupted": "errors"}
_WITHOUT_TENSORFLOW = ("UserError", "TrainingDiverged", "TrainingInterrupted")
__all__ = list(_PUBLIC)


def __getattr__(name):
    # Only the public names: `from vae_tf import figures` must find submodules through the import system.
    if name not in _PUBLIC:
        raise AttributeError(f"module 'vae_tf' has no attribute {name!r}")
    if name not in _WITHOUT_TENSORFLOW:
        import_tensorflow()
    value = getattr(importlib.import_module(f"vae_tf.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
