"""What aggressive inference training (He et al. 2019, `--aggressive=True`) costs, side by side with plain training in
one run (the machine is shared: read the ratios).

    python benchmarks/bench_aggressive.py [--rounds=3] [--steps=30] [--decoder=deconv] [--run=predictions/<run>]

Each case is a VAE at 28×28×1 (the Fashion-MNIST preset's conv encoder, latent 32, batch 64, Bernoulli loss; the
decoder `--decoder`, deconv or a PixelCNN of four [16, 3, 1] gated layers), one compiled training step timed over
`--steps` steps after a warm-up, the cases alternating over the rounds; medians are reported:
  plain       an update of both networks
  encoder     an aggressive run's inner update of the encoder alone
  decoder     an aggressive run's update of the decoder alone, which ends an inner loop
An outer step of the aggressive phase is k encoder updates and one decoder update; k is the run's own (at most 99).
With `--run`, k is read from that aggressive run's log.csv (the mean length of its inner loops); else the cost is
printed for k = 20 (the shortest: the first window of 10 is compared with nothing), 30 and 99.
"""

import argparse
import csv
import statistics

import numpy as np
from timing import at_least, seconds_per_call

ENCODER = [[32, 4, 2], [64, 4, 2], [256]]
DECODERS = {"deconv": None, "pixelcnn": [[16, 3, 1]] * 4}


def model_of(decoder, aggressively):
    import vae_tf

    return vae_tf.build_model(vae_tf.load_params("params.py", overrides=dict(
        dataset="fashion_mnist", image_size=None, encoder_layers=ENCODER, decoder=decoder,
        decoder_layers=DECODERS[decoder], latent_size=32, batch_size=64, objective="beta_vae", beta=1.0, mig_step=0,
        aggressive=aggressively)), image_shape=(28, 28, 1))


def time_steps(case, decoder, steps):
    import tensorflow as tf

    model = model_of(decoder, case != "plain")
    if case == "decoder":  # every step ends an inner loop: the decoder's update, again and again
        step_once = model.train_step

        def train_step(x):
            model.aggressive.decoder_due.assign(True)
            return step_once(x)
    else:
        train_step = model.train_step
    x = tf.constant((np.random.default_rng(0).random((64, 28, 28, 1)) > 0.5).astype(np.float32))
    return seconds_per_call(tf.function(lambda: train_step(x)), steps)


def inner_loop_length(run):
    """The mean number of encoder updates per decoder update over the aggressive phase of a run's log.csv."""
    with open(f"{run}/log.csv", newline="") as file:
        counts = [float(row["encoder_updates"]) for row in csv.DictReader(file) if float(row["aggressive"]) == 1.0]
    # A decoder update resets the count to 0: the counts just before the resets are the loops' lengths.
    lengths = [before for before, after in zip(counts, counts[1:]) if after == 0 and before > 0]
    if not lengths:
        raise SystemExit(f"{run}/log.csv shows no whole inner loop: train it longer, or leave --run out")
    return statistics.mean(lengths), len(lengths)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=at_least(1), default=3)
    parser.add_argument("--steps", type=at_least(1), default=30)
    parser.add_argument("--decoder", choices=sorted(DECODERS), default="deconv")
    parser.add_argument("--run", help="an aggressive run folder, whose inner loops' mean length is k")
    args = parser.parse_args()
    cases = ["plain", "encoder", "decoder"]
    times = {case: [] for case in cases}
    for round_number in range(args.rounds):
        for case in cases if round_number % 2 == 0 else reversed(cases):
            times[case].append(time_steps(case, args.decoder, args.steps))
    median = {case: statistics.median(values) for case, values in times.items()}
    print(f"decoder {args.decoder}")
    print(f"{'update':<10}{'ms':>10}{'x plain':>10}")
    for case in cases:
        print(f"{case:<10}{1000 * median[case]:>10.1f}{median[case] / median['plain']:>10.2f}")
    if args.run:
        k, loops = inner_loop_length(args.run)
        ks, source = [k], f"{args.run}'s {loops} inner loops"
    else:
        ks, source = [20, 30, 99], "k chosen"
    print(f"\nan outer step of the aggressive phase, k encoder updates then one decoder update ({source}):")
    for k in ks:
        outer = k * median["encoder"] + median["decoder"]
        print(f"k = {k:5.1f}: {1000 * outer:8.1f} ms, {outer / median['plain']:6.1f} x a plain update")


if __name__ == "__main__":
    main()
