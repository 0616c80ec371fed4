"""Training throughput, side by side in one run (the machine is shared: read the ratios).

    python benchmarks/bench_training.py [--rounds=3] [--only=conv64,tiny,...]

For each model, `vae_tf.train` (what train.py runs: data pipeline, log, progress bar, validations, snapshots and
checkpoints every 500 steps, as params.py has them; MIG scoring, an evaluation taking seconds, is off) against a
bare loop of the same model's train_step compiled with tf.function on one fixed batch, which returns to the host
after every step (`float(loss)`):
  conv64    the β-VAE project's 64×64 model on shapes2d (preset shapes2d_64, params.py's default before the 32×32
            DIP-VAE-II), plus a plain PyTorch loop of it (`pip install torch==2.13.0`; skipped without torch), the
            training stream alone and the time to draw the 64×64 training split
  default   params.py's model (32×32, DIP-VAE-II), and the time a run takes to draw its 32×32 training split
  tiny      16×16 shapes2d, one hidden layer of 64, latent 2: a step costs next to nothing, as on a GPU, so this
            measures the host loop; also a bare loop that runs all its steps in one call (no host sync), and the
            training stream alone at 16×16 (the data each step gathers)
  tiny_loop the tiny model with no snapshot, validation or checkpoint before the end: the host loop, data and log
            alone
  bfloat16  conv64 with precision mixed_bfloat16 (and its loss gap to float32 after the same steps)
  xla       conv64 with jit_compile True
  planar    the likelihood table's gated MLP 300-300 (preset fashion_mnist_mlp) with ten planar flow steps, on
            shapes2d at 28x28; planar_xla the same with jit_compile True: small ops, where XLA's fusion pays on a CPU
  VAE_0     the MLP preset at 28×28, and celeba: the beta-VAE project's CelebA model at 64×64×3 (both fed shapes2d
            rendered at that size: the same compute, no download)
Every measurement runs in a process of its own, and all of them alternate over the rounds; medians are reported.
On a machine with a GPU it runs unchanged, on the GPU (the header names the devices).
"""

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

import vae_tf  # first: it imports TensorFlow quietly and turns on its oneDNN kernels
import numpy as np
import tensorflow as tf
from timing import at_least
from vae_tf import datasets, shapes2d
from vae_tf.runs import read_log

HERE = os.path.dirname(os.path.abspath(__file__))
PARAMS = os.path.join(HERE, "..", "params.py")
WARMUP = 20
LOSS_WINDOW = 100  # the bfloat16 loss gap: mean loss over the last LOSS_WINDOW steps of a measurement
TINY = dict(image_size=16, encoder_layers=[[64]], decoder_layers=None, latent_size=2)
# About 10 s of tiny steps: a run's one-off costs (drawing its first snapshot figure, about a second on a thread of
# its own; the first runs of the validation and checkpoint functions) are a small part of it, as in a real run.
TINY_STEPS = 12000
# The likelihood table's gated MLP with ten planar flow steps, on shapes2d at 28x28 (no download), no validation.
PLANAR = dict(dataset="shapes2d", image_size=28, flow="planar", flow_length=10, validation_step=0, plot_step=0,
              validation_tolerance=0)
# name: (preset, overrides, steps per measurement)
MODELS = {
    "conv64": ("shapes2d_64", {}, 520),
    "default": (None, {}, 1500),
    "tiny": ("shapes2d_64", dict(TINY), TINY_STEPS),
    "tiny_loop": ("shapes2d_64", dict(TINY, plot_step=0, validation_step=0, checkpoint_step=TINY_STEPS), TINY_STEPS),
    "bfloat16": ("shapes2d_64", dict(precision="mixed_bfloat16"), 520),
    "xla": ("shapes2d_64", dict(jit_compile=True), 520),
    "VAE_0": ("VAE_0", dict(dataset="shapes2d", image_size=28), 1500),
    "celeba": ("VAE", dict(dataset="shapes2d", image_size=64, channels=3), 300),
    "planar": ("fashion_mnist_mlp", PLANAR, 1500),
    "planar_xla": ("fashion_mnist_mlp", dict(PLANAR, jit_compile=True), 1500),
}
# compared with float32 / graph train.py, not a bare loop
BASELINE = {"bfloat16": "conv64", "xla": "conv64", "planar_xla": "planar"}


def params_of(model):
    preset, overrides, _ = MODELS[model]
    return vae_tf.load_params(PARAMS, preset=preset, overrides={"log_step": [], "mig_step": 0, **overrides})


def train_py(model, steps):
    """images/s of vae_tf.train after a warm-up, and its mean loss over the last LOSS_WINDOW steps."""
    params = params_of(model)
    with tempfile.TemporaryDirectory() as folder:
        run = vae_tf.train(params.__class__(**{**params.to_dict(), "output_dir": folder, "run_name": "bench",
                                               "num_steps": steps, "validation_tolerance": 0}), progress=True)
        log = read_log(run / "log.csv")
    wall = log["wall_time"]
    return (len(wall) - 1 - WARMUP) * params.batch_size / (wall[-1] - wall[WARMUP]), np.mean(log["loss"][-LOSS_WINDOW:])


def _bare_model(model):
    params = params_of(model)
    shape = datasets.image_shape_of(params)
    net = vae_tf.build_model(params)
    batch = tf.constant((np.random.default_rng(0).random((params.batch_size,) + shape) > 0.9).astype("float32"))
    return params, net, batch


def bare(model, steps):
    """images/s of a tf.function train_step loop that returns the loss to the host every step."""
    params, net, batch = _bare_model(model)
    step = tf.function(net.train_step)
    float(step(batch)["loss"])
    start = time.perf_counter()
    for _ in range(steps):
        float(step(batch)["loss"])
    return steps * params.batch_size / (time.perf_counter() - start), float("nan")


def bare_one_call(model, steps):
    """images/s of all the steps in one compiled call: the device's pace with no host in the loop."""
    params, net, batch = _bare_model(model)

    @tf.function
    def run(n):
        for _ in tf.range(n):
            loss = net.train_step(batch)["loss"]
        return loss

    float(run(tf.constant(2)))
    start = time.perf_counter()
    float(run(tf.constant(steps)))
    return steps * params.batch_size / (time.perf_counter() - start), float("nan")


def stream(model, steps):
    """images/s of the training stream alone (positions, gather, unpack), compiled as in the training step."""
    batches = datasets.TrainingStream(datasets.source_for(params_of(model)).split("train"), 256, seed=1)
    batch = tf.function(lambda step: tf.reduce_sum(batches.batch(step)))
    float(batch(tf.constant(0, tf.int64)))
    start = time.perf_counter()
    for step in range(1, 51):
        float(batch(tf.constant(step, tf.int64)))
    return 50 * 256 / (time.perf_counter() - start), float("nan")


def draw(model, steps):
    """images/s of drawing the shapes2d training split into memory, what a run does once at its start (the XLA
    renderer compiled first, as in a fresh process)."""
    params = params_of(model)
    size, positions = datasets.image_shape_of(params)[0], datasets.partition_positions(shapes2d.NUM_IMAGES, "train")
    shapes2d.render_packed(positions[:1], size)  # compiles
    start = time.perf_counter()
    shapes2d.render_packed(positions, size)
    return len(positions) / (time.perf_counter() - start), float("nan")


WORKERS = {"train.py": train_py, "bare": bare, "one_call": bare_one_call, "stream": stream, "draw": draw}


def measure(worker, model):
    """One measurement in a fresh process: (images/s, loss)."""
    steps = MODELS[model][2]
    command = ([os.path.join(HERE, "torch_reference.py"), f"--steps={steps}"] if worker == "torch" else
               [__file__, f"--worker={worker}", f"--model={model}"])
    output = subprocess.run([sys.executable, *command], capture_output=True, text=True, check=True).stdout
    values = [float(v) for v in output.split()[-2:]]
    return (values[-1], float("nan")) if worker == "torch" else tuple(values)


def plan(models, have_torch):
    """The (worker, model) measurements the table needs."""
    wanted = []
    for model in models:
        wanted.append(("train.py", model))
        if model not in BASELINE:
            wanted.append(("bare", model))
    if "tiny" in models:
        wanted += [("one_call", "tiny"), ("stream", "tiny")]
    if "conv64" in models:
        wanted += ([("torch", "conv64")] if have_torch else []) + [("stream", "conv64"), ("draw", "conv64")]
    if "default" in models:
        wanted += [("draw", "default")]
    return wanted


def report(models, rates, losses):
    rate = {key: statistics.median(values) for key, values in rates.items()}
    print(f"\n{'model':<12}{'what':<30}{'images/s':>10}{'steps/s':>9}   rounds (images/s)")
    for (worker, model), values in rates.items():
        batch = params_of(model).batch_size
        print(f"{model:<12}{worker:<30}{rate[(worker, model)]:>10.0f}{rate[(worker, model)] / batch:>9.1f}   "
              f"{' '.join(f'{v:.0f}' for v in values)}")
    print()
    for model in models:
        if model in BASELINE:
            base = BASELINE[model]
            line = f"{model} train.py / float32 graph train.py"
            print(f"{line:<52}{rate[('train.py', model)] / rate[('train.py', base)]:6.2f}")
            if model == "bfloat16":
                gap = statistics.median(losses[("train.py", model)]) / statistics.median(losses[("train.py", base)]) - 1
                print(f"{'bfloat16 loss gap to float32 (last 100 of 520 steps)':<52}{gap:+7.2%}")
            continue
        target = {"conv64": "   (target >= 0.95)", "default": "   (target >= 0.95)",
                  "tiny": "   (target >= 1.5)", "tiny_loop": "   (the host loop alone)"}.get(model, "")
        print(f"{model + ' train.py / bare loop (sync every step)':<52}"
              f"{rate[('train.py', model)] / rate[('bare', model)]:6.2f}{target}")
    if ("one_call", "tiny") in rate:
        print(f"{'tiny bare loop in one call / synced every step':<52}"
              f"{rate[('one_call', 'tiny')] / rate[('bare', 'tiny')]:6.2f}")
    if ("torch", "conv64") in rate:
        print(f"{'conv64 train.py / PyTorch loop':<52}{rate[('train.py', 'conv64')] / rate[('torch', 'conv64')]:6.2f}")
        print(f"{'conv64 bare TF / PyTorch loop':<52}{rate[('bare', 'conv64')] / rate[('torch', 'conv64')]:6.2f}")
    if ("stream", "tiny") in rate:
        print(f"{'training stream at 16x16 / tiny train.py':<52}{rate[('stream', 'tiny')] / rate[('train.py', 'tiny')]:6.1f}")
    if ("stream", "conv64") in rate:
        print(f"{'training stream at 64x64 / conv64 train.py':<52}"
              f"{rate[('stream', 'conv64')] / rate[('train.py', 'conv64')]:6.1f}")
    for model in ("default", "conv64"):
        if ("draw", model) in rate:
            size = datasets.image_shape_of(params_of(model))[0]
            seconds = len(datasets.partition_positions(shapes2d.NUM_IMAGES, "train")) / rate[("draw", model)]
            print(f"{f'drawing the {size}x{size} training split (seconds, once a run)':<52}{seconds:6.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=at_least(1), default=3, help="alternating rounds of every measurement")
    parser.add_argument("--only", default=",".join(MODELS), help="comma-separated models: " + ", ".join(MODELS))
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(*WORKERS[args.worker](args.model, MODELS[args.model][2]))
        return
    models = [m for m in args.only.split(",") if m]
    unknown = set(models) - set(MODELS)
    if unknown:
        parser.error(f"unknown model(s) {', '.join(sorted(unknown))}; choose from {', '.join(MODELS)}")
    models += [BASELINE[m] for m in models if m in BASELINE and BASELINE[m] not in models]
    have_torch = importlib.util.find_spec("torch") is not None
    devices = [d.name for d in tf.config.list_logical_devices() if d.device_type in ("GPU", "TPU")] or ["CPU"]
    print(f"devices {', '.join(devices)}, {os.cpu_count()} CPU threads, TensorFlow {tf.__version__}, "
          f"{args.rounds} alternating rounds, medians")
    if "conv64" in models and not have_torch:
        print("PyTorch not installed: its loop is skipped; `pip install torch==2.13.0` installs its CPU build")
    wanted = plan(models, have_torch)
    rates, losses = {key: [] for key in wanted}, {key: [] for key in wanted}
    for _ in range(args.rounds):
        for key in wanted:
            rate, loss = measure(*key)
            rates[key].append(rate)
            losses[key].append(loss)
    report(models, rates, losses)


if __name__ == "__main__":
    main()
