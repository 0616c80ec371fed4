"""What the semi-amortized VAE (Kim et al. 2018, `--svi_steps=K`) costs, side by side with plain training in one run
(the machine is shared: read the ratios).

    python benchmarks/bench_svi.py [--rounds=3] [--steps=20] [--decoder=deconv] [--svi_steps=5,20]

The model is bench_aggressive.py's (a VAE at 28×28×1, the Fashion-MNIST preset's conv encoder, latent 32, batch 64,
Bernoulli loss; the decoder `--decoder`, deconv or a PixelCNN of four [16, 3, 1] gated layers); one compiled training
step of each case is timed over `--steps` steps after a warm-up, the cases alternating over the rounds, and the
medians are reported: plain training, then K SVI steps unrolled in the step and differentiated through.
"""

import argparse
import statistics

import numpy as np
from bench_aggressive import DECODERS, ENCODER
from timing import at_least, seconds_per_call


def time_steps(decoder, svi_steps, steps):
    import tensorflow as tf
    import vae_tf

    model = vae_tf.build_model(vae_tf.load_params("params.py", overrides=dict(
        dataset="fashion_mnist", image_size=None, encoder_layers=ENCODER, decoder=decoder,
        decoder_layers=DECODERS[decoder], latent_size=32, batch_size=64, objective="beta_vae", beta=1.0, mig_step=0,
        svi_steps=svi_steps)), image_shape=(28, 28, 1))
    x = tf.constant((np.random.default_rng(0).random((64, 28, 28, 1)) > 0.5).astype(np.float32))
    return seconds_per_call(tf.function(lambda: model.train_step(x)), steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=at_least(1), default=3)
    parser.add_argument("--steps", type=at_least(1), default=20)
    parser.add_argument("--decoder", choices=sorted(DECODERS), default="deconv")
    parser.add_argument("--svi_steps", default="5,20", help="comma-separated K to time beside plain training")
    args = parser.parse_args()
    cases = [0] + [int(k) for k in args.svi_steps.split(",")]
    times = {case: [] for case in cases}
    for round_number in range(args.rounds):
        for case in cases if round_number % 2 == 0 else reversed(cases):
            times[case].append(time_steps(args.decoder, case, args.steps))
    median = {case: statistics.median(values) for case, values in times.items()}
    print(f"decoder {args.decoder}")
    print(f"{'svi_steps':<10}{'ms':>10}{'x plain':>10}")
    for case in cases:
        print(f"{case:<10}{1000 * median[case]:>10.1f}{median[case] / median[0]:>10.2f}")


if __name__ == "__main__":
    main()
