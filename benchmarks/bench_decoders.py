"""What the PixelCNN decoder costs against the conv decoders, side by side in one run (the machine is shared: read the
ratios).

    python benchmarks/bench_decoders.py [--rounds=3] [--steps=30] [--depth=5] [--filters=32] [--kernel=5]

Each case is a VAE at 28×28×1 (the Fashion-MNIST preset's conv encoder, latent 32, batch 64, Bernoulli loss), one
compiled training step timed over `--steps` steps after a warm-up, the cases alternating over the rounds; medians are
reported:
  deconv      the transposed-conv decoder mirroring the encoder
  broadcast   the spatial broadcast decoder (four [64, 3, 1] convs)
  pixelcnn    the gated PixelCNN decoder, `--depth` gated layers [filters, kernel, 1] (teacher forcing: one pass
              per step), z projected alike at every pixel (pixelcnn_conditioning "global")
  spatial     the same with pixelcnn_conditioning "spatial" (a map of z and each pixel's coordinates)
and, once, the time to sample 64 images pixel by pixel from the globally conditioned PixelCNN (784 passes in one
compiled loop).
"""

import argparse
import statistics
import time

import numpy as np
from timing import seconds_per_call

ENCODER = [[32, 4, 2], [64, 4, 2], [256]]


def model_of(case, layers):
    import vae_tf

    decoder = "pixelcnn" if case == "spatial" else case
    return vae_tf.build_model(vae_tf.load_params("params.py", overrides=dict(
        dataset="fashion_mnist", image_size=None, encoder_layers=ENCODER, decoder=decoder,
        decoder_layers=layers if decoder == "pixelcnn" else (None if decoder == "deconv" else [[64, 3, 1]] * 4),
        pixelcnn_conditioning="spatial" if case == "spatial" else "global",
        latent_size=32, batch_size=64, objective="beta_vae", beta=1.0, mig_step=0)), image_shape=(28, 28, 1))


def time_steps(case, layers, steps):
    import tensorflow as tf

    model = model_of(case, layers)
    x = tf.constant((np.random.default_rng(0).random((64, 28, 28, 1)) > 0.5).astype(np.float32))
    step = tf.function(lambda: model.train_step(x))
    return seconds_per_call(step, steps)


def time_sampling(layers):
    model = model_of("pixelcnn", layers)
    codes = np.random.default_rng(1).standard_normal((64, 32)).astype(np.float32)
    model.decode(codes[:2])  # tracing
    start = time.perf_counter()
    model.decode(codes).numpy()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--depth", type=int, default=5, help="the PixelCNN's gated layers")
    parser.add_argument("--filters", type=int, default=32, help="channels per stack of each gated layer")
    parser.add_argument("--kernel", type=int, default=5, help="each gated layer's (odd) kernel")
    args = parser.parse_args()
    layers = [[args.filters, args.kernel, 1]] * args.depth
    cases = ["deconv", "broadcast", "pixelcnn", "spatial"]
    times = {case: [] for case in cases}
    for round_number in range(args.rounds):
        for case in cases if round_number % 2 == 0 else reversed(cases):
            times[case].append(time_steps(case, layers, args.steps))
    median = {case: statistics.median(values) for case, values in times.items()}
    print(f"{'decoder':<12}{'ms/step':>10}{'x deconv':>10}")
    for case in cases:
        print(f"{case:<12}{1000 * median[case]:>10.1f}{median[case] / median['deconv']:>10.2f}")
    print(f"\nsampling 64 images of 28x28 from the PixelCNN {layers}: {time_sampling(layers):.1f} s "
          f"(784 passes, one compiled loop)")


if __name__ == "__main__":
    main()
