"""Which shapes2d factors a run's code holds: the cross-validated R² of a linear regression of each ordinal factor
(scale, x, y) from the posterior means of random images (docs/experiments/collapse.md).

    python experiments/factor_probe.py predictions/collapse_shapes2d/pixelcnn4x16 predictions/collapse_shapes2d/deconv

The images are rendered at each run's size from uniform factors (`--images`, seed `--seed`) and binarised once with
that seed, as the analysis binarises its test images. R² does not depend on the means' scale: a code whose means
move by a hair with x has x's R² near 1 and almost no information about it; read it beside I(x; z). Shape
(categorical) and orientation (cyclic, and a symmetric shape's angles look alike) are left out.
"""

import argparse

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import cross_val_score

import vae_tf
from vae_tf.shapes2d import FACTOR_NAMES, Shapes2DGroundTruth

PROBED = ("scale", "position_x", "position_y")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for run in args.runs:
        model = vae_tf.load_run(run)
        rng = np.random.RandomState(args.seed)
        truth = Shapes2DGroundTruth(size=model.params.image_size or 64)
        factors = truth.sample_factors(args.images, rng)
        images = truth.sample_observations_from_factors(factors, rng)
        images = (rng.random_sample(images.shape) < images).astype(np.float32)
        means = np.concatenate([model.encode(images[i:i + 500])[0].numpy() for i in range(0, args.images, 500)])
        scores = {name: cross_val_score(LinearRegression(), means, factors[:, FACTOR_NAMES.index(name)], cv=4).mean()
                  for name in PROBED}
        print(run, " ".join(f"{name} R2={score:.2f}" for name, score in scores.items()))


if __name__ == "__main__":
    main()
