"""What each objective costs, and how fast log_likelihood is, side by side in one run (read the ratios).

    python benchmarks/bench_objectives.py [--steps=150] [--rounds=3] [--quick]

1. Training images/s of the 64×64 model (preset shapes2d_64, batch 64) with each objective: its compiled `train_step`
   looped on one fixed batch of shapes2d images, each objective in a process of its own, the objectives
   alternating over the rounds; medians, and the ratio to beta_vae.
2. The pieces: the KL decomposition every step now logs, and FactorVAE's discriminator update, each timed alone
   as a compiled function on the step's shapes, as a share of a beta_vae step.
3. `vae_tf.log_likelihood` on the shipped predictions/shapes2d_small (32×32): images/s at K = 5000, decoder
   evaluations/s, and the mean estimate as K grows, with the ELBO.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import vae_tf  # first: it imports TensorFlow quietly and turns on its oneDNN kernels
import numpy as np
import tensorflow as tf
from vae_tf.objectives import OBJECTIVES
from timing import at_least, seconds_per_call

SMALL_RUN = "predictions/shapes2d_small"


def conv64_model(objective):
    params = vae_tf.load_params(None, preset="shapes2d_64",
                                overrides=dict(objective=objective, **({"beta": 1.0} if objective == "iwae" else {})))
    batch = next(iter(vae_tf.load_dataset("shapes2d", split="train").batch(params.batch_size)))
    return vae_tf.build_model(params, dataset_size=737280), batch, params


def worker(objective, steps):
    """One objective's training images/s, in this process."""
    model, batch, params = conv64_model(objective)
    step = tf.function(model.train_step)
    return params.batch_size / seconds_per_call(lambda: step(batch)["loss"], steps, warmup=2)


def pieces(steps):
    """Seconds per call of a beta_vae step, of the logged decomposition, and of FactorVAE's discriminator update."""
    from vae_tf.losses import kl_decomposition, log_importance_weights
    from vae_tf.objectives import Batch

    model, batch, params = conv64_model("beta_vae")
    step = tf.function(model.train_step)
    mean, log_std = model.encode(batch)
    z = mean + tf.exp(log_std) * tf.random.normal(tf.shape(mean))
    weights = log_importance_weights(params.batch_size, 737280, "mss")
    decomposition = tf.function(lambda: kl_decomposition(z, mean, log_std, weights)["total_correlation"])
    factor = conv64_model("factor_vae")[0].objective
    step_counter = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def discriminator():
        figures, apply = factor.auxiliary_update(Batch(batch, mean, log_std, z, None, None, None, 0, 1), step_counter)
        apply()
        return figures["discriminator_loss"]

    return {"step": seconds_per_call(lambda: step(batch)["loss"], steps, warmup=2),
            "decomposition": seconds_per_call(decomposition, steps, warmup=2),
            "discriminator": seconds_per_call(discriminator, steps, warmup=2)}


def likelihood(images=20):
    model = vae_tf.load_run(SMALL_RUN)
    x = next(iter(vae_tf.load_dataset("shapes2d", split="test", image_size=32, shuffle=False).batch(images))).numpy()
    vae_tf.log_likelihood(model, x[:2], 100)  # trace
    start = time.perf_counter()
    estimate = vae_tf.log_likelihood(model, x, 5000)
    seconds = time.perf_counter() - start
    by_k = {k: float(np.mean(vae_tf.log_likelihood(model, x, k))) for k in (1, 10, 100, 1000)}
    by_k[5000] = float(np.mean(estimate))
    from vae_tf.likelihood import elbo
    return {"images_per_s": images / seconds, "decoder_evaluations_per_s": images * 5000 / seconds, "by_k": by_k,
            "elbo": float(np.mean(elbo(model, x)))}


def in_subprocess(*args):
    output = subprocess.run([sys.executable, __file__, "--worker", *map(str, args)], capture_output=True, text=True,
                            check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=at_least(1), default=150, help="timed train steps per measurement")
    parser.add_argument("--rounds", type=at_least(1), default=3,
                        help="rounds over all objectives (medians are reported)")
    parser.add_argument("--quick", action="store_true", help="30 steps, 1 round: a smoke run, not a measurement")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one measurement, printed as JSON for the parent
        kind, *rest = args.worker
        result = {"pieces": lambda: pieces(int(rest[0])), "likelihood": likelihood}.get(
            kind, lambda: worker(kind, int(rest[0])))()
        print(json.dumps(result))
        return
    steps, rounds = (30, 1) if args.quick else (args.steps, args.rounds)
    rates = {name: [] for name in OBJECTIVES}
    for round_number in range(rounds):
        for name in OBJECTIVES:
            rates[name].append(in_subprocess(name, steps))
        print(f"round {round_number + 1}: " + ", ".join(f"{n} {r[-1]:.0f}" for n, r in rates.items()), flush=True)
    median = {name: statistics.median(r) for name, r in rates.items()}
    part = in_subprocess("pieces", steps)
    measured = in_subprocess("likelihood")
    print(f"\n`python benchmarks/bench_objectives.py --steps={steps} --rounds={rounds}` "
          f"(default model, 64×64×1, batch 64; medians of {rounds} rounds)\n")
    print("| objective | images/s | ratio to beta_vae |\n| --- | --- | --- |")
    for name, rate in median.items():
        print(f"| `{name}` | {rate:.0f} | {rate / median['beta_vae']:.2f} |")
    print(f"\nA beta_vae step: {part['step'] * 1e3:.1f} ms; the KL decomposition logged every step: "
          f"{part['decomposition'] * 1e3:.2f} ms ({part['decomposition'] / part['step']:.1%} of it); FactorVAE's "
          f"discriminator update: {part['discriminator'] * 1e3:.1f} ms ({part['discriminator'] / part['step']:.0%}).")
    print(f"log_likelihood on {SMALL_RUN}, 20 test images, K = 5000: {measured['images_per_s']:.2f} images/s "
          f"({measured['decoder_evaluations_per_s']:.0f} decoder evaluations/s); mean estimate by K: "
          + ", ".join(f"{k}: {v:.2f}" for k, v in measured["by_k"].items()) + f" nats; ELBO {measured['elbo']:.2f}.")


if __name__ == "__main__":
    main()
