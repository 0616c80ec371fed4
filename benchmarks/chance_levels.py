"""Chance levels of the array metrics: what each scores on codes that know nothing of the factors.

    python benchmarks/chance_levels.py [--n=10000] [--dims=10] [--seed=0]

Codes: `dims` independent standard Gaussian dimensions; factors: shapes2d's five (3 shapes, 6 scales,
40 orientations, 32 x-positions, 32 y-positions) drawn uniformly at random, independently of the codes. Prints, per
array metric, the score measured (the default metrics at their published protocol, the two downstream tasks at the
quick one, whose largest training size fits in n rows) beside the chance level recorded in `vae_tf.metrics.SUITE`,
which `python -m vae_tf.metrics --help` shows: a score near it does not tell a disentangled code from noise.
11 minutes on this machine's 2 shared cores, 7 of them DCI's 100 boosting rounds (docs/metrics.md quotes the output).
"""

import argparse
import sys

import numpy as np
from timing import at_least

from vae_tf.metrics import ARRAY_METRICS, DEFAULT_METRICS, SUITE, evaluate_arrays, markdown_table

# vae_tf.shapes2d.FACTOR_SIZES, written out: importing that module imports TensorFlow, which no metric needs.
SHAPES2D_FACTOR_SIZES = (3, 6, 40, 32, 32)


def noise_and_factors(n, dims, seed):
    """Codes [n, dims] of Gaussian noise and shapes2d's factors [n, 5] drawn uniformly, independent of each other."""
    state = np.random.RandomState(seed)
    codes = state.randn(n, dims)
    factors = np.column_stack([state.randint(size, size=n) for size in SHAPES2D_FACTOR_SIZES])
    return codes, factors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=at_least(1), default=10000, help="observations (default: %(default)s)")
    parser.add_argument("--dims", type=at_least(1), default=10, help="noise dimensions (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="the noise's and every metric's seed (default: "
                                                            "%(default)s)")
    args = parser.parse_args()
    codes, factors = noise_and_factors(args.n, args.dims, args.seed)
    rows = []
    for name in ARRAY_METRICS:
        quick = name not in DEFAULT_METRICS  # the downstream tasks' published 10,000 training rows + a third held out
        score = evaluate_arrays(codes, factors, [name], random_state=args.seed, quick=quick)[name]["score"]
        rows.append([name, "quick" if quick else "published", f"{score:.3f}", f"{SUITE[name].chance:.2f}",
                     f"{score - SUITE[name].chance:+.3f}"])
        print(f"{name}: {score:.3f}", file=sys.stderr, flush=True)  # DCI alone takes minutes
    print(f"{args.dims} Gaussian noise dimensions, shapes2d's factors drawn uniformly, n = {args.n}, seed "
          f"{args.seed}:\n")
    print(markdown_table(["metric", "protocol", "noise codes", "chance (suite.py)", "difference"], rows), end="")


if __name__ == "__main__":
    main()
