"""What a validation's I(x; z) costs, side by side in one run (the machine is shared: read the ratios).

    python benchmarks/bench_validation.py [--rounds=5] [--images=3000] [--sizes=40,80]

Every `validation_step` steps a run's LatentActivity job (vae_tf/jobs.py) estimates I(x; z) on its validation images,
on the host, between two training calls: the training waits for it. For posteriors [images, size] like those of the
likelihood preset (3,000 validation images, latent 40; the hierarchy's two layers of 40 give 80), this times
  decomposition   latent_space.kl_parts, whose index_code_mi it took until 2026-11: n × n × size densities in blocks
  matmul          latent_space.index_code_mi: two matrix products give the n × n log q(z_i|x_j)
alternating over the rounds in ABBA order, and prints each median and the ratio. Both give the same I(x; z) at the
same draws (tests/test_losses.py); each value is printed beside its time.
"""

import argparse
import statistics
import time

import numpy as np

from vae_tf import latent_space  # vae_tf first: it imports TensorFlow quietly, its oneDNN kernels on
from timing import at_least

CASES = {"decomposition": lambda mean, log_std: latent_space.kl_parts(mean, log_std)["index_code_mi"],
         "matmul": latent_space.index_code_mi}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=at_least(1), default=5)
    parser.add_argument("--images", type=at_least(1), default=3000)
    parser.add_argument("--sizes", default="40,80", help="comma-separated latent sizes")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for size in map(int, args.sizes.split(",")):
        mean = rng.standard_normal((args.images, size))
        log_std = 0.3 * rng.standard_normal((args.images, size)) - 1.0
        CASES["decomposition"](mean[:100], log_std[:100])  # TensorFlow's first calls, outside the clock
        seconds, values = {case: [] for case in CASES}, {}
        for round_number in range(args.rounds):
            for case in CASES if round_number % 2 == 0 else list(CASES)[::-1]:  # ABBA: a drift hits both alike
                start = time.perf_counter()
                values[case] = CASES[case](mean, log_std)
                seconds[case].append(time.perf_counter() - start)
        median = {case: statistics.median(times) for case, times in seconds.items()}
        print(f"{args.images} codes of {size} dimensions, medians over {args.rounds} rounds:")
        for case in CASES:
            print(f"  {case:<14} {median[case]:7.3f} s   I(x; z) = {values[case]:.12f} nats")
        print(f"  decomposition / matmul = {median['decomposition'] / median['matmul']:.1f}")


if __name__ == "__main__":
    main()
