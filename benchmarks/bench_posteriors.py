"""What flows, learned priors and stochastic layers cost against the VAE of the same size, side by side in one run (the
machine is shared: read the ratios).

    python benchmarks/bench_posteriors.py [--rounds=3] [--steps=30]

Each case is the likelihood papers' MLP VAE on 28×28×1 binary images (two hidden layers of 300 units in the encoder
and the decoder, latent 40, batch 100, Bernoulli loss), one compiled training step timed over `--steps` steps after a
warm-up, the cases alternating over the rounds; medians are reported. The layered models add z_2 of 20 above the
same z_1 (MLPs of 100 units between). The flows' steps and the layers are unrolled when the step is traced: one
compiled step, no Python loop at run time.
"""

import argparse
import statistics

import numpy as np
from timing import seconds_per_call

CASES = {
    "vae": dict(),
    "iwae K=5": dict(objective="iwae", iwae_samples=5),
    "iwae K=50": dict(objective="iwae", iwae_samples=50),
    "planar K=10": dict(flow="planar", flow_length=10),
    "planar K=40": dict(flow="planar", flow_length=40),
    "iaf K=2": dict(flow="iaf", flow_length=2),
    "mog 500": dict(prior="mog", prior_components=500),
    "vamp 500": dict(prior="vamp", prior_components=500),
    "hierarchical": dict(model="hierarchical", upper_latent_sizes=[20]),
    "ladder": dict(model="ladder", upper_latent_sizes=[20]),
    "ladder, vamp 500 on z_2": dict(model="ladder", upper_latent_sizes=[20], prior="vamp", prior_components=500),
}


def time_steps(case, steps):
    import tensorflow as tf
    import vae_tf

    params = vae_tf.load_params("params.py", overrides=dict(
        dataset="fashion_mnist", image_size=None, binarize=True, encoder_layers=[[300], [300]], decoder="deconv",
        decoder_layers=[[300], [300]], latent_size=40, batch_size=100, mig_step=0,
        **{"objective": "beta_vae", "beta": 1.0, **CASES[case]}))
    model = vae_tf.build_model(params, image_shape=(28, 28, 1))
    x = tf.constant((np.random.default_rng(0).random((100, 28, 28, 1)) > 0.5).astype(np.float32))
    return seconds_per_call(tf.function(lambda: model.train_step(x)), steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    cases = list(CASES)
    times = {case: [] for case in cases}
    for round_number in range(args.rounds):
        for case in cases if round_number % 2 == 0 else reversed(cases):
            times[case].append(time_steps(case, args.steps))
    median = {case: statistics.median(values) for case, values in times.items()}
    print(f"{'model':<24}{'ms/step':>10}{'x vae':>8}")
    for case in cases:
        print(f"{case:<24}{1000 * median[case]:>10.2f}{median[case] / median['vae']:>8.2f}")


if __name__ == "__main__":
    main()
