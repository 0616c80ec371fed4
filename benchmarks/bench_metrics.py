"""Speed of the disentanglement metrics for the 64×64 shapes2d model, preset shapes2d_64 (the machine may be shared).

    python benchmarks/bench_metrics.py [--quick-only] [--run=predictions/<run>] [--batch_size=1024] [--names=mig,irs]

Prints, for the quick and (unless --quick-only) the published protocol of every metric:
1. wall time per metric and for the whole suite;
2. encoded images/s inside the metrics (observations passed to the representation function over the seconds
   spent in it) against the encoder's bare batched forward pass (a compiled tf.function on one fixed batch),
   measured in the same process just before and after the suite; target ratio >= 0.8;
3. shapes2d rendering images/s (the ground truth's sample_observations_from_factors, 4096 at a time).
Without --run the model is an untrained model of preset shapes2d_64: speed does not depend on
the weights. The published protocol encodes ~2.9M images and fits 11,300 boosted trees for DCI: many minutes.
"""

import argparse
import time

import vae_tf  # first: it imports TensorFlow quietly and turns on its oneDNN kernels
import numpy as np
import tensorflow as tf
from timing import at_least
from vae_tf import baselines, metrics


class Timed:
    """A representation_fn that counts the observations it encodes and the seconds spent encoding them."""

    def __init__(self, representation_fn):
        self.representation_fn = representation_fn
        self.images, self.seconds = 0, 0.0

    def __call__(self, observations):
        start = time.perf_counter()
        codes = self.representation_fn(observations)
        self.seconds += time.perf_counter() - start
        self.images += len(observations)
        return codes


def bare_forward(model, images, seconds=5.0):
    """Images/s of the compiled encoder on one fixed batch already in a tensor, run for about `seconds`."""
    batch = tf.constant(images)
    forward = tf.function(lambda x: model.represent(x))
    forward(batch).numpy()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        forward(batch).numpy()
        count += len(images)
    return count / (time.perf_counter() - start)


def rendering(ground_truth, chunks=5):
    """Images/s of the ground truth's renderer, CHUNK_IMAGES images per call (as the metrics call it)."""
    random_state = np.random.RandomState(0)
    factors = ground_truth.sample_factors(metrics.sampled.CHUNK_IMAGES * (chunks + 1), random_state)
    split = np.split(factors, chunks + 1)
    ground_truth.sample_observations_from_factors(split[0], random_state)  # warm-up
    start = time.perf_counter()
    for chunk in split[1:]:
        ground_truth.sample_observations_from_factors(chunk, random_state)
    return metrics.sampled.CHUNK_IMAGES * chunks / (time.perf_counter() - start)


def suite(ground_truth, representation_fn, bare, quick, names):
    label = "quick" if quick else "published"
    print(f"\n## {label} protocol")
    print("| metric | images | wall s | encoding s | encoded img/s | score |")
    print("|---|---:|---:|---:|---:|---:|")
    total = Timed(representation_fn)
    wall_start = time.perf_counter()
    for name in names:
        timed = Timed(representation_fn)
        start = time.perf_counter()
        result = metrics.evaluate(ground_truth, timed, 0, names=[name], quick=quick)[name]
        wall = time.perf_counter() - start
        total.images += timed.images
        total.seconds += timed.seconds
        print(f"| {name} | {timed.images} | {wall:.1f} | {timed.seconds:.1f} | "
              f"{timed.images / max(timed.seconds, 1e-9):.0f} | {result['score']:.3f} |", flush=True)
        if result.get("num_active_dims") == 0:
            print("(factor_vae: every dimension collapsed, as in an untrained model: it stopped after the variance "
                  "estimate; pass --run=... to time its full work)")
    wall = time.perf_counter() - wall_start
    after = bare()
    return wall, total, after


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run folder to load (default: an untrained shapes2d_64 model)")
    parser.add_argument("--quick-only", action="store_true", help="skip the published protocol (many minutes)")
    parser.add_argument("--batch_size", type=at_least(1), default=1024, help="encoder batch inside the representation")
    parser.add_argument("--names", help="comma-separated metrics to time (default: every one of metrics.METRICS)")
    args = parser.parse_args()
    names = args.names.split(",") if args.names else list(metrics.METRICS)

    if args.run:
        model = vae_tf.load_run(args.run)
        params = model.params
    else:
        params = vae_tf.load_params(None, preset="shapes2d_64")
        model = vae_tf.build_model(params)
    ground_truth = vae_tf.load_ground_truth("shapes2d", image_size=params.image_size)
    representation_fn = baselines.model_representation(model, args.batch_size)
    sample = ground_truth.sample_observations_from_factors(
        ground_truth.sample_factors(args.batch_size, np.random.RandomState(1)), None).astype(np.float32)
    representation_fn(sample)  # trace once

    def bare():
        return bare_forward(model, sample)

    print(f"model: {args.run or 'untrained shapes2d_64 preset model'}, latent {params.latent_size}, "
          f"images {ground_truth.observation_shape}, encoder batch {args.batch_size}, "
          f"{metrics.sampled.CHUNK_IMAGES} images per representation call")
    print(f"shapes2d rendering: {rendering(ground_truth):.0f} images/s")
    for quick in ([True] if args.quick_only else [True, False]):
        before = bare()
        wall, total, after = suite(ground_truth, representation_fn, bare, quick, names)
        reference = (before + after) / 2
        inside = total.images / max(total.seconds, 1e-9)
        print(f"\nsuite wall time: {wall:.1f} s ({total.images} images encoded, {total.seconds:.1f} s encoding)")
        print(f"encoded inside the metrics: {inside:.0f} images/s; bare batched forward pass: {reference:.0f} "
              f"images/s (before {before:.0f}, after {after:.0f}); ratio {inside / reference:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
