"""Representations to compare a model against: the comparison rows of the β-VAE paper's metric table.

Each builder returns a `Baseline(representation_fn, ground_truth)`: the representation and the ground truth
to evaluate it on. Every row is evaluated on the data set's own ground truth except `ground_truth_factors`,
which is the identity on `FactorObservations(ground_truth)`, a ground truth whose observations are the
factor indices themselves: the factors cannot honestly be read back from images (several factor vectors
render the same image, e.g. a square turned by 90°), so that row scores what a perfect code would.
"""

import warnings
from typing import Callable, NamedTuple

import numpy as np
import tensorflow as tf
from sklearn.decomposition import PCA, FastICA
from sklearn.exceptions import ConvergenceWarning

from vae_tf.errors import UserError
from vae_tf.metrics import DEFAULT_METRICS, evaluate, random_state_of, seed_from
from vae_tf.models import build_model

NUM_FIT_SAMPLES = 10000  # observations PCA and ICA are fitted on
NUM_COMPONENTS = 10  # PCA / ICA components, the β-VAE paper's and the default model's latent size


class Baseline(NamedTuple):
    representation_fn: Callable
    ground_truth: object


class FactorObservations:
    """The ground-truth interface (docs/datasets.md) of `ground_truth` with the factor indices as observations
    (float [n, num_factors]): the identity representation on it is the ground-truth row."""

    def __init__(self, ground_truth):
        self.inner = ground_truth
        self.num_factors = ground_truth.num_factors
        self.factors_num_values = list(ground_truth.factors_num_values)
        self.observation_shape = (ground_truth.num_factors,)

    def sample_factors(self, num, random_state):
        return self.inner.sample_factors(num, random_state)

    def sample_observations_from_factors(self, factors, random_state):
        return np.asarray(factors, dtype=np.float64)


def identity(observations):
    """Observations as they come, one row each."""
    return np.asarray(observations)


def flatten(observations):
    """Raw pixels: each observation flattened to one row [n, H·W·C]."""
    observations = np.asarray(observations)
    return observations.reshape(len(observations), -1)


def _fit_sample(ground_truth, random_state, num_samples):
    factors = ground_truth.sample_factors(num_samples, random_state)
    return flatten(ground_truth.sample_observations_from_factors(factors, random_state))


def _fit_pca(ground_truth, random_state, num_components, num_samples):
    data = _fit_sample(ground_truth, random_state, num_samples)
    return PCA(num_components, random_state=seed_from(random_state)).fit(data), data


def pca(ground_truth, random_state=0, num_components=NUM_COMPONENTS, num_samples=NUM_FIT_SAMPLES):
    """PCA (sklearn) fitted on `num_samples` sampled observations -> codes [n, num_components]."""
    fitted, _ = _fit_pca(ground_truth, random_state_of(random_state), num_components, num_samples)
    return lambda observations: fitted.transform(flatten(observations))


def fast_ica(ground_truth, random_state=0, num_components=NUM_COMPONENTS, num_samples=NUM_FIT_SAMPLES):
    """FastICA (sklearn defaults: logcosh, parallel, at most 200 iterations) fitted on `num_samples` sampled
    observations -> codes [n, num_components].

    FastICA whitens by projecting onto the top principal components; doing that projection with a PCA first
    is the same model and keeps the fit cheap on images (4096 pixels). On shapes2d FastICA stops at its
    iteration limit before its tolerance (1e-4); the components are those 200 iterations reach.
    """
    random_state = random_state_of(random_state)
    projection, data = _fit_pca(ground_truth, random_state, num_components, num_samples)
    ica = FastICA(num_components, whiten="unit-variance", random_state=seed_from(random_state))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ica.fit(projection.transform(data))
    return lambda observations: ica.transform(projection.transform(flatten(observations)))


def model_representation(model, batch_size=1024):
    """A VAE's code as a representation_fn: images [n, H, W, C] -> codes [n, latent_size + categoricals], the Gaussian
    posterior mean then each categorical's most probable category (`VAE.represent`), encoded `batch_size` at a time by
    one compiled tf.function."""
    image_shape = model.image_shape

    @tf.function(input_signature=[tf.TensorSpec((None,) + image_shape, tf.float32)], autograph=False)
    def posterior_mean(images):
        return model.represent(images)

    def representation(observations):
        observations = np.asarray(observations, dtype=np.float32)
        if observations.shape[1:] != image_shape:
            raise UserError(f"observations of shape {observations.shape[1:]} do not fit the model's input "
                            f"{image_shape}; load the ground truth at the run's image_size and channels")
        codes = [posterior_mean(observations[i:i + batch_size]).numpy()
                 for i in range(0, len(observations), batch_size)]
        return np.concatenate(codes) if codes else np.zeros((0, model.latent.representation_size), np.float32)

    return representation


def untrained_model(params):
    """The posterior mean of a freshly initialised model of `params`' architecture (seeded by params.seed)."""
    return model_representation(build_model(params))


# name -> builder(ground_truth, params, random_state, num_samples) -> Baseline, in the β-VAE paper's row order
BASELINES = {
    "ground_truth_factors": lambda gt, params, rs, n: Baseline(identity, FactorObservations(gt)),
    "raw_pixels": lambda gt, params, rs, n: Baseline(flatten, gt),
    "pca": lambda gt, params, rs, n: Baseline(pca(gt, rs, num_samples=n), gt),
    "ica": lambda gt, params, rs, n: Baseline(fast_ica(gt, rs, num_samples=n), gt),
    "untrained_model": lambda gt, params, rs, n: Baseline(untrained_model(params), gt),
}


def baseline_representations(ground_truth, params, random_state=0, names=None, num_samples=NUM_FIT_SAMPLES):
    """{name: Baseline(representation_fn, ground_truth to evaluate it on)} for the rows `names`
    (default: all of BASELINES). PCA and ICA are fitted on `num_samples` observations drawn with
    `random_state`; the untrained model uses `params`' architecture, image size and seed."""
    names = list(BASELINES) if names is None else list(names)
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise UserError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    # an int seed gives each row its own RandomState, so a row does not depend on which others were built
    return {name: BASELINES[name](ground_truth, params, random_state_of(random_state), num_samples) for name in names}


# raw pixels have one dimension per pixel (4096 on shapes2d): DCI's boosted trees and SAP's per-dimension
# classifiers over them take hours, the other metrics' per-dimension and pairwise figures minutes, and the β-VAE
# paper scored its baselines on its own metric only
PIXEL_METRICS = ("beta_vae", "factor_vae", "mig")


def evaluate_baselines(ground_truth, params, random_state=0, names=None, metrics=None, quick=False,
                       progress=False, num_samples=NUM_FIT_SAMPLES):
    """{baseline: {metric: result}}: the rows of the baseline table, ready for `metrics.format_table`.

    `metrics=None` runs the default ones (metrics.DEFAULT_METRICS); raw_pixels gets only those of them in
    PIXEL_METRICS."""
    built = baseline_representations(ground_truth, params, random_state, names, num_samples)
    wanted = list(DEFAULT_METRICS) if metrics is None else list(metrics)
    return {name: evaluate(baseline.ground_truth, baseline.representation_fn, random_state,
                           [m for m in wanted if m in PIXEL_METRICS] if name == "raw_pixels" else wanted, quick,
                           progress, label=name)
            for name, baseline in built.items()}
