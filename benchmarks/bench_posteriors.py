"""What flows, learned priors and stochastic layers cost against the VAE of the same size, side by side in one run (the
machine is shared: read the ratios).

    python benchmarks/bench_posteriors.py [--rounds=3] [--steps=30] [--likelihood_images=20]   # 0 leaves a table out

Each case is the likelihood table's model (docs/experiments/likelihood.md), the preset `fashion_mnist_mlp`: an MLP of
two gated hidden layers of 300 units in the encoder and the decoder, latent 40, batch 100, Bernoulli loss on 28×28×1
binary images, with the model, flow, prior and objective of its row's command (not the two-layer rows' `nan_policy`);
one compiled training step timed over `--steps` steps after a warm-up, without XLA and with it (`jit_compile=True`, as
most of the table's rows trained), the cases alternating over the rounds; medians are reported. The layered models add
z_2 of 40 above the same z_1, MLPs of 300 units between them. The flows' steps and the layers are unrolled when the step
is traced: one compiled step, no Python loop at run time.

Then `vae_tf.log_likelihood` with K = 5,000 on `--likelihood_images` images (0: left out) for the priors, images a
second against the VAE's, alternating likewise: a learned prior's components are computed once per call of
`log_likelihood`, not in each compiled call (the VampPrior's 500 pseudo-inputs through the encoder); the VAE at
1,337 decoder rows per call, what a bound of 2²⁰ output pixels gave it, against its default (`WIDEST_TENSOR`); and the
VAE and the VampPrior compiled with XLA (`jit_compile=True`, as a run that trains with it is evaluated).
"""

import argparse
import statistics
import time

import numpy as np
from timing import at_least, seconds_per_call

CASES = {
    "vae": dict(),
    "iwae K=5": dict(objective="iwae", iwae_samples=5, kl_schedule="constant"),
    "iwae K=50": dict(objective="iwae", iwae_samples=50, kl_schedule="constant"),
    "planar K=10": dict(flow="planar", flow_length=10),
    "planar K=40": dict(flow="planar", flow_length=40),
    "iaf K=2": dict(flow="iaf", flow_length=2),
    "mog 500": dict(prior="mog", prior_components=500),
    "vamp 500": dict(prior="vamp", prior_components=500),
    "hierarchical": dict(model="hierarchical", upper_latent_sizes=[40], upper_layer_units=300),
    "ladder": dict(model="ladder", upper_latent_sizes=[40], upper_layer_units=300),
    "hierarchical, vamp 500": dict(model="hierarchical", upper_latent_sizes=[40], upper_layer_units=300, prior="vamp",
                                   prior_components=500),
}


# label: (case, decoder rows per call (None: log_likelihood's default), jit_compile)
LIKELIHOOD_CASES = {"vae": ("vae", None, False), "mog 500": ("mog 500", None, False),
                    "vamp 500": ("vamp 500", None, False),
                    "hierarchical, vamp 500": ("hierarchical, vamp 500", None, False),
                    "vae, 1337 rows": ("vae", 2 ** 20 // (28 * 28), False),  # the old bound: 2²⁰ output pixels
                    "vae, XLA": ("vae", None, True), "vamp 500, XLA": ("vamp 500", None, True)}


def build(case, jit_compile=False):
    import vae_tf

    params = vae_tf.load_params("params.py", preset="fashion_mnist_mlp",
                                overrides=dict(jit_compile=jit_compile, **CASES[case]))
    return vae_tf.build_model(params, image_shape=(28, 28, 1))


def binary_images(n):
    return (np.random.default_rng(0).random((n, 28, 28, 1)) > 0.5).astype(np.float32)


def time_steps(label, steps):
    """Seconds per training step of `label`: a case, or a case and ", XLA" (the step compiled with XLA)."""
    import tensorflow as tf

    case, jit_compile = label.removesuffix(", XLA"), label.endswith(", XLA")
    model, x = build(case, jit_compile), tf.constant(binary_images(100))
    return seconds_per_call(tf.function(lambda: model.train_step(x), jit_compile=jit_compile), steps)


def likelihood_rate(label, images):
    """Images a second of `log_likelihood` at K = 5,000, after a call on the same images that traces it (XLA compiles
    each shape of call: the last call of `images` is smaller)."""
    import vae_tf

    case, rows, jit_compile = LIKELIHOOD_CASES[label]
    model, x = build(case, jit_compile), binary_images(images)
    vae_tf.log_likelihood(model, x, 5000, batch_size=rows)
    start = time.perf_counter()
    vae_tf.log_likelihood(model, x, 5000, batch_size=rows)
    return images / (time.perf_counter() - start)


def alternating_medians(cases, rounds, measure):
    """{case: the median of `measure(case)` over `rounds`}, the cases in turn, in reverse every other round."""
    values = {case: [] for case in cases}
    for round_number in range(rounds):
        for case in cases if round_number % 2 == 0 else reversed(cases):
            values[case].append(measure(case))
    return {case: statistics.median(measured) for case, measured in values.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=at_least(1), default=3)
    parser.add_argument("--steps", type=at_least(0), default=30, help="timed steps per case (0: no step table)")
    parser.add_argument("--likelihood_images", type=at_least(0), default=20,
                        help="images per case (0: no likelihood table)")
    args = parser.parse_args()
    if args.steps:
        labels = [label for case in CASES for label in (case, f"{case}, XLA")]
        median = alternating_medians(labels, args.rounds, lambda label: time_steps(label, args.steps))
        print(f"{'model':<24}{'ms/step':>10}{'x vae':>8}{'XLA ms':>10}{'x vae':>8}{'XLA gain':>10}"
              f"  (time: above 1 is slower; gain: above 1 is faster with XLA)")
        for case in CASES:
            graph, xla = median[case], median[f"{case}, XLA"]
            print(f"{case:<24}{1000 * graph:>10.2f}{graph / median['vae']:>8.2f}{1000 * xla:>10.2f}"
                  f"{xla / median['vae, XLA']:>8.2f}{graph / xla:>10.2f}")
    if not args.likelihood_images:
        return
    median = alternating_medians(list(LIKELIHOOD_CASES), args.rounds,
                                 lambda label: likelihood_rate(label, args.likelihood_images))
    print(f"\nlog_likelihood, K = 5000, {args.likelihood_images} images\n"
          f"{'model':<24}{'images/s':>10}{'x vae':>8}  (rate: above 1 is faster)")
    for case, rate in median.items():
        print(f"{case:<24}{rate:>10.2f}{rate / median['vae']:>8.2f}")


if __name__ == "__main__":
    main()
