"""Training throughput of the default model, side by side in one run (the machine is shared: read the ratios).

    python benchmarks/bench_training.py [--steps=300] [--rounds=3]

1. `vae_tf.train` (what train.py runs: data pipeline, logging, snapshots included), images/s from its
   own log.csv wall times after a warm-up;
2. (a) the bare compute: the same model's train_step as a plain tf.function loop on one fixed batch;
3. (b) a plain PyTorch loop of the identical architecture, loss, optimizer and batch on the same CPU
   threads (skipped with a note when torch is not installed: `pip install torch==2.13.0`);
4. shapes2d rendering images/s (the data pipeline alone) against training images/s.
Each measurement runs in a process of its own (TensorFlow's and PyTorch's thread pools slow each other
down when they share one), and (a), (b) and train.py alternate over several rounds; the medians are
reported, so load on the machine hits all of them alike.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import vae_tf  # first: it imports TensorFlow quietly and turns on its oneDNN kernels
import numpy as np
import tensorflow as tf
from vae_tf import datasets
from vae_tf.runs import read_log

WARMUP = 20


def images_per_second(function, steps, batch):
    function()
    start = time.perf_counter()
    for _ in range(steps):
        function()
    return steps * batch / (time.perf_counter() - start)


def train_py_throughput(params, steps):
    """Steady state of a default run: one snapshot, validation and checkpoint per 500 steps, as params.py has them
    (the one-off early log_step snapshots are left out)."""
    with tempfile.TemporaryDirectory() as folder:
        run = vae_tf.train(params.__class__(**{**params.to_dict(), "output_dir": folder, "run_name": "bench",
                                               "num_steps": steps, "log_step": []}), progress=False)
        log = read_log(run / "log.csv")
    wall = log["wall_time"]
    return (len(wall) - 1 - WARMUP) * params.batch_size / (wall[-1] - wall[WARMUP])


def bare_step(params, image_shape):
    model = vae_tf.build_model(params)
    batch = tf.constant((np.random.default_rng(0).random((params.batch_size,) + image_shape) > 0.9).astype("float32"))
    step = tf.function(model.train_step)
    step(batch)
    return lambda: float(step(batch)["loss"])


def rendering_throughput(params, batches=50):
    split = datasets.source_for(params).split("train")
    stream = iter(datasets.training_batches(split, 256, seed=1))
    next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * 256 / (time.perf_counter() - start)


WORKERS = {"train.py": lambda params, shape, steps: train_py_throughput(params, steps),
           "bare": lambda params, shape, steps: images_per_second(bare_step(params, shape), steps, params.batch_size),
           "rendering": lambda params, shape, steps: rendering_throughput(params)}


def measure(worker, steps):
    """Run one measurement in a fresh process and return its images/s."""
    here = os.path.dirname(os.path.abspath(__file__))
    command = ([os.path.join(here, "torch_reference.py")] if worker == "torch" else [__file__, f"--worker={worker}"])
    output = subprocess.run([sys.executable, *command, f"--steps={steps}"],
                            capture_output=True, text=True, check=True).stdout
    return float(output.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=520, help="training steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of every measurement")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    params = vae_tf.load_params(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "params.py"))
    image_shape = datasets.image_shape_of(params)
    if args.worker:
        print(WORKERS[args.worker](params, image_shape, args.steps))
        return
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"default model on shapes2d {image_shape}, batch {params.batch_size}, {os.cpu_count()} CPU threads, "
          f"TensorFlow {tf.__version__}, {args.rounds} alternating rounds, medians")
    workers = ["train.py", "bare"] + (["torch"] if have_torch else []) + ["rendering"]
    rates = {worker: [] for worker in workers}
    for _ in range(args.rounds):
        for worker in workers:
            rates[worker].append(measure(worker, args.steps))
    rate = {worker: statistics.median(values) for worker, values in rates.items()}
    names = {"train.py": "vae_tf.train (train.py)", "bare": "(a) bare tf.function step",
             "torch": "(b) plain PyTorch loop", "rendering": "shapes2d rendering"}
    print(f"\n{'what':<28}{'images/s':>10}   rounds")
    for worker in workers:
        print(f"{names[worker]:<28}{rate[worker]:>10.0f}   {' '.join(f'{v:.0f}' for v in rates[worker])}")
    print(f"\ntrain.py / bare compute      {rate['train.py'] / rate['bare']:6.2f}   (target >= 0.9)")
    if have_torch:
        print(f"bare TF / PyTorch            {rate['bare'] / rate['torch']:6.2f}   (target >= 1.5)")
        print(f"train.py / PyTorch           {rate['train.py'] / rate['torch']:6.2f}")
    else:
        print("PyTorch not installed: (b) skipped; `pip install torch==2.13.0` installs its CPU build")
    print(f"rendering / training         {rate['rendering'] / rate['train.py']:6.1f}   (target >= 10)")


if __name__ == "__main__":
    main()
