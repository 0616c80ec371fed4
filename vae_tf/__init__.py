"""vae_tf: variational autoencoders (VAE, β-VAE, β-TCVAE, FactorVAE, DIP-VAE, InfoVAE, IWAE) in TensorFlow / Keras 3."""

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


if "tensorflow" not in sys.modules:
    _import_tensorflow_quietly()

from vae_tf.datasets import load_dataset, load_ground_truth  # noqa: E402
from vae_tf.errors import TrainingDiverged, TrainingInterrupted, UserError  # noqa: E402
from vae_tf.likelihood import log_likelihood  # noqa: E402
from vae_tf.model import VAE, build_model  # noqa: E402
from vae_tf.params import Params, load_params  # noqa: E402
from vae_tf.presets import PRESETS  # noqa: E402
from vae_tf.runs import load_run  # noqa: E402
from vae_tf.schedules import kl_weight_schedule  # noqa: E402
from vae_tf.training import train  # noqa: E402

__all__ = ["Params", "load_params", "PRESETS", "kl_weight_schedule", "build_model", "VAE", "load_dataset",
           "load_ground_truth", "train", "load_run", "log_likelihood", "UserError", "TrainingDiverged",
           "TrainingInterrupted"]
