"""What M2 and ADGM cost against the VAE of the same size, and how their sum over the classes grows, side by side in
one run (the machine is shared: read the ratios).

    python benchmarks/bench_semi_supervised.py [--rounds=3] [--steps=60] [--classes=3,10,50]

Each case is params.py's encoder and broadcast decoder at 32x32, batch 64, one compiled training step timed over
`--steps` steps after a warm-up, the cases alternating over the rounds; medians are reported:
  vae          the beta-VAE of that size (one batch of 64)
  m2 K         M2 with K classes: a labelled batch of 64 and an unlabelled one of 64 whose bound sums the K classes
               out in one decoder call over 64·K rows
  adgm K       ADGM with K classes: M2's two batches, with q(a|x) and q(y|a,x) once per image, and q(z|a,y,x),
               the decoder and p(a|x,y,z) once over the 64·K rows
  decoder K    the decoder alone, forward and backward over 64·K rows: what the sum over the classes must cost at
               most, against K Python iterations of model calls
M2 and ADGM with K classes other than shapes2d's three shapes is built on a stand-in label of K values (the benchmark times
the computation, not what it learns).
"""

import argparse
import statistics

import numpy as np
from timing import at_least, seconds_per_call

BATCH = 64


def model_of(kind, classes):
    import vae_tf

    overrides = {"image_size": 32, "mig_step": 0, "objective": "beta_vae", "batch_size": BATCH}
    if kind != "vae":
        overrides.update(model=kind, labels=classes * 10, label_factor="shape")
    params = vae_tf.load_params("params.py", overrides=overrides)
    if kind != "vae" and classes != 3:  # a stand-in label of `classes` values
        import vae_tf.datasets
        real = vae_tf.datasets.class_names
        vae_tf.datasets.class_names = lambda p: [str(c) for c in range(classes)]
        try:
            return vae_tf.build_model(params, dataset_size=663_552)
        finally:
            vae_tf.datasets.class_names = real
    return vae_tf.build_model(params, dataset_size=663_552)


def time_steps(kind, classes, steps):
    """Seconds per training step of `kind` (vae, m2, adgm, decoder) with `classes` classes."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant((rng.random((BATCH, 32, 32, 1)) > 0.5).astype(np.float32))
    if kind == "decoder":
        model = model_of("m2", classes)
        codes = tf.constant(rng.standard_normal((BATCH * classes, model.latent.code_size)).astype(np.float32))
        target = tf.constant((rng.random((BATCH * classes, 32, 32, 1)) > 0.5).astype(np.float32))

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(model.reconstruction_fn(target, model.decoder(codes, training=True)))
            return tape.gradient(loss, model.decoder.trainable_variables)
    else:
        model = model_of(kind, classes)
        data = x if kind == "vae" else (x, x, tf.constant(rng.integers(classes, size=BATCH)))
        step = tf.function(lambda: model.train_step(data))
    return seconds_per_call(step, steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=at_least(1), default=3)
    parser.add_argument("--steps", type=at_least(1), default=60)
    parser.add_argument("--classes", default="3,10,50")
    args = parser.parse_args()
    classes = [int(c) for c in args.classes.split(",")]
    kinds = ("m2", "adgm", "decoder")
    cases = [("vae", 3)] + [(kind, k) for k in classes for kind in kinds]
    times = {case: [] for case in cases}
    for round_number in range(args.rounds):
        for case in cases if round_number % 2 == 0 else reversed(cases):
            times[case].append(time_steps(*case, args.steps))
    median = {case: statistics.median(values) for case, values in times.items()}
    vae = median[("vae", 3)]
    print(f"{'case':<14}{'ms/step':>10}{'x the VAE':>11}")
    print(f"{'vae':<14}{1000 * vae:>10.1f}{1.0:>11.2f}")
    for k in classes:
        for kind in kinds:
            print(f"{kind + ' ' + str(k):<14}{1000 * median[(kind, k)]:>10.1f}{median[(kind, k)] / vae:>11.2f}")
    print("\nEach step beyond the VAE's, against the decoder over 64·K rows (the sum over the classes' own cost):")
    for k in classes:
        for kind in ("m2", "adgm"):
            extra = median[(kind, k)] - vae
            print(f"  K = {k:>2}: {kind.upper()} - VAE = {1000 * extra:.1f} ms, decoder over {BATCH * k} rows = "
                  f"{1000 * median[('decoder', k)]:.1f} ms, ratio {extra / median[('decoder', k)]:.2f}")


if __name__ == "__main__":
    main()
