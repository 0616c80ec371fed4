"""What the PixelCNN decoder costs against the conv decoders, side by side in one run (the machine is shared: read the
ratios).

    python benchmarks/bench_decoders.py [--rounds=3] [--steps=30] [--depth=5] [--filters=32] [--kernel=5]
        [--sample_images=16]

Each case is a VAE at 28×28×1 (the Fashion-MNIST preset's conv encoder, latent 32, batch 64, Bernoulli loss), one
compiled training step timed over `--steps` steps after a warm-up, the cases alternating over the rounds; medians are
reported:
  deconv      the transposed-conv decoder mirroring the encoder
  broadcast   the spatial broadcast decoder (four [64, 3, 1] convs)
  pixelcnn    the gated PixelCNN decoder, `--depth` gated layers [filters, kernel, 1] (teacher forcing: one pass
              per step), z projected alike at every pixel (pixelcnn_conditioning "global")
  spatial     the same with pixelcnn_conditioning "spatial" (a map of z and each pixel's coordinates)
  pixelcnn_bfloat16   pixelcnn with precision "mixed_bfloat16" (pays on CPUs with AVX-512 BF16 or AMX)
and the time to sample `--sample_images` images pixel by pixel from the globally conditioned PixelCNN, two ways in
turn, each one compiled loop:
  rows        `vae_tf.pixelcnn.sample`: the vertical stack once a row on the rows it reaches, the horizontal stack
              once a pixel on its row
  whole       the definition: the whole decoder over the whole canvas once a pixel (784 passes)
"""

import argparse
import statistics
import time

import numpy as np
from timing import at_least, seconds_per_call

ENCODER = [[32, 4, 2], [64, 4, 2], [256]]


def model_of(case, layers):
    import vae_tf

    decoder = "pixelcnn" if case.startswith(("spatial", "pixelcnn")) else case
    return vae_tf.build_model(vae_tf.load_params("params.py", overrides=dict(
        dataset="fashion_mnist", image_size=None, encoder_layers=ENCODER, decoder=decoder,
        decoder_layers=layers if decoder == "pixelcnn" else (None if decoder == "deconv" else [[64, 3, 1]] * 4),
        pixelcnn_conditioning="spatial" if case == "spatial" else "global",
        latent_size=32, batch_size=64, objective="beta_vae", beta=1.0, mig_step=0,
        precision="mixed_bfloat16" if case.endswith("bfloat16") else "float32")), image_shape=(28, 28, 1))


def time_steps(case, layers, steps):
    import tensorflow as tf

    model = model_of(case, layers)
    x = tf.constant((np.random.default_rng(0).random((64, 28, 28, 1)) > 0.5).astype(np.float32))
    step = tf.function(lambda: model.train_step(x))
    return seconds_per_call(step, steps)


def whole_pass_sampler(decoder):
    """The sampler by definition: each pixel drawn from a pass of the whole decoder over the canvas so far, with the
    uniform draws `vae_tf.pixelcnn.sample` uses (the two give the same images)."""
    import tensorflow as tf

    @tf.function(autograph=False)
    def sample(code, seed):
        height, width, channels = decoder.input[1].shape[1:]
        rows = tf.shape(code)[0]
        uniform = tf.random.stateless_uniform(tf.stack([rows, height, width, channels]), seed=seed)

        def draw(i, canvas):
            row, column = i // width, i % width
            probability = tf.sigmoid(decoder([code, canvas])[:, row, column, :])
            pixel = tf.cast(uniform[:, row, column, :] < probability, canvas.dtype)
            place = tf.reshape(tf.one_hot(i, height * width), [1, height, width, 1])
            return i + 1, canvas + place * pixel[:, None, None, :]

        canvas = tf.zeros(tf.stack([rows, height, width, channels]))
        return tf.while_loop(lambda i, _: i < height * width, draw, (tf.constant(0), canvas),
                             parallel_iterations=1)[1]

    return sample


def time_sampling(layers, images, rounds):
    """Median seconds to sample `images` images, {"rows": ..., "whole": ...}, the two alternating over `rounds`;
    raises if they draw different images."""
    import tensorflow as tf

    from vae_tf.pixelcnn import compiled_sampler

    decoder = model_of("pixelcnn", layers).decoder
    samplers = {"rows": compiled_sampler(decoder), "whole": whole_pass_sampler(decoder)}
    codes = tf.constant(np.random.default_rng(1).standard_normal((images, 32)).astype(np.float32))
    seed = tf.constant([1, 2], tf.int64)
    drawn = {name: sampler(codes, seed).numpy() for name, sampler in samplers.items()}  # tracing
    if not np.array_equal(drawn["rows"], drawn["whole"]):
        raise AssertionError("the row sampler and the whole-pass sampler drew different images")
    times = {name: [] for name in samplers}
    for round_number in range(rounds):
        for name in samplers if round_number % 2 == 0 else reversed(samplers):
            start = time.perf_counter()
            samplers[name](codes, seed).numpy()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=at_least(1), default=3)
    parser.add_argument("--steps", type=at_least(1), default=30)
    parser.add_argument("--depth", type=at_least(1), default=5, help="the PixelCNN's gated layers")
    parser.add_argument("--filters", type=at_least(1), default=32, help="channels per stack of each gated layer")
    parser.add_argument("--kernel", type=at_least(1), default=5, help="each gated layer's (odd) kernel")
    parser.add_argument("--sample_images", type=at_least(1), default=16, help="images each sampler draws")
    args = parser.parse_args()
    layers = [[args.filters, args.kernel, 1]] * args.depth
    cases = ["deconv", "broadcast", "pixelcnn", "spatial", "pixelcnn_bfloat16"]
    times = {case: [] for case in cases}
    for round_number in range(args.rounds):
        for case in cases if round_number % 2 == 0 else reversed(cases):
            times[case].append(time_steps(case, layers, args.steps))
    median = {case: statistics.median(values) for case, values in times.items()}
    print(f"{'decoder':<20}{'ms/step':>10}{'x deconv':>10}")
    for case in cases:
        print(f"{case:<20}{1000 * median[case]:>10.1f}{median[case] / median['deconv']:>10.2f}")
    sampling = time_sampling(layers, args.sample_images, args.rounds)
    print(f"\nsampling {args.sample_images} images of 28x28 from the PixelCNN {layers} (the same images both ways):")
    print(f"{'sampler':<12}{'s':>10}{'x rows':>10}")
    for name, seconds in sampling.items():
        print(f"{name:<12}{seconds:>10.2f}{seconds / sampling['rows']:>10.1f}")


if __name__ == "__main__":
    main()
