"""The gap metrics: per factor, how far its best code dimension stands above the second best (MIG and SAP)."""

import numpy as np
from sklearn import metrics as sk_metrics, svm

from vae_tf.errors import UserError
from vae_tf.metrics.checks import check_protocol, random_state_of, seed_from
from vae_tf.metrics.information import histogram_bins
from vae_tf.metrics.probes import fit_quietly
from vae_tf.metrics.sampled import _encode, checked


def top_two_gap(matrix):
    """Per column of [d, F]: largest minus second-largest entry (0 for the second when d == 1)."""
    ordered = np.sort(matrix, axis=0)[::-1]
    second = ordered[1] if len(ordered) > 1 else np.zeros(matrix.shape[1])
    return ordered[0] - second


def mig(ground_truth, representation_fn, random_state, *, num_train=10000, num_bins=20, **unknown):
    """The Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in Variational
    Autoencoders"), on discretised codes as in disentanglement_lib.

    Codes of `num_train` random observations are binned per dimension into `num_bins` equal-width bins; the
    mutual information I(code_j; factor_k) (sklearn mutual_info_score, nats) is computed for every pair; per
    factor, the gap between its two most informative dimensions divided by the factor's entropy H(factor_k);
    the score is the mean over factors.

    Protocol (mig.gin): num_train=10000, histogram_discretizer with num_bins=20 (mig.py, utils.py).
    A factor whose sampled values are all equal (entropy 0) scores 0.

    Returns score, per_factor (the normalised gaps), top_dims (each factor's most informative dimension).
    """
    check_protocol(mig, unknown, num_train=(num_train, 1), num_bins=(num_bins, 1))
    random_state, representation_fn = random_state_of(random_state), checked(representation_fn)
    factors = np.asarray(ground_truth.sample_factors(num_train, random_state))
    binned = histogram_bins(_encode(ground_truth, representation_fn, factors, random_state), num_bins)
    information = np.array([[sk_metrics.mutual_info_score(factors[:, k], binned[:, j])
                             for k in range(factors.shape[1])] for j in range(binned.shape[1])])  # [d, F]
    entropy = np.array([sk_metrics.mutual_info_score(factor, factor) for factor in factors.T])
    gaps = np.divide(top_two_gap(information), entropy, out=np.zeros(len(entropy)), where=entropy > 0)
    return {"score": float(np.mean(gaps)), "per_factor": gaps.tolist(),
            "top_dims": np.argmax(information, axis=0).tolist()}


def sap(ground_truth, representation_fn, random_state, *, num_train=10000, num_test=5000, continuous_factors=False,
        **unknown):
    """The Separated Attribute Predictability score (Kumar et al. 2018, "Variational Inference of Disentangled
    Latent Concepts from Unlabeled Observations", §3).

    For each (dimension j, factor k) a predictability score: for discrete factors, the test accuracy of a
    LinearSVC (C=0.01, balanced class weights) fitted on dimension j alone of `num_train` observations and
    tested on `num_test` fresh ones; for continuous factors, the squared correlation of code j and factor k on
    the training observations. Per factor, the gap between its two best dimensions; the score is their mean.

    Protocol (sap_score.gin): num_train=10000, num_test=5000, continuous_factors=False; LinearSVC(C=0.01,
    class_weight="balanced") (sap_score.py). A one-dimensional linear classifier separates few classes, so
    even a perfect code scores well below 1 on factors with many values.

    Returns score, per_factor (the gaps), score_matrix (`[d][F]` predictabilities).
    """
    check_protocol(sap, unknown, num_train=(num_train, 1), num_test=(num_test, 1))
    if not isinstance(continuous_factors, (bool, np.bool_)):
        raise UserError(f"sap protocol parameter continuous_factors must be True or False, got {continuous_factors!r}")
    random_state, representation_fn = random_state_of(random_state), checked(representation_fn)
    train_factors = np.asarray(ground_truth.sample_factors(num_train, random_state))
    train_codes = _encode(ground_truth, representation_fn, train_factors, random_state)
    test_factors = np.asarray(ground_truth.sample_factors(num_test, random_state))
    test_codes = _encode(ground_truth, representation_fn, test_factors, random_state)
    num_codes, num_factors = train_codes.shape[1], train_factors.shape[1]
    matrix = np.zeros((num_codes, num_factors))
    for k in range(num_factors):
        y, y_test = train_factors[:, k], test_factors[:, k]
        for j in range(num_codes):
            x, x_test = train_codes[:, j:j + 1].astype(np.float64), test_codes[:, j:j + 1].astype(np.float64)
            if continuous_factors:
                covariance = np.cov(x[:, 0], y)
                if covariance[0, 0] > 1e-12 and covariance[1, 1] > 0:
                    matrix[j, k] = covariance[0, 1] ** 2 / (covariance[0, 0] * covariance[1, 1])
            elif len(np.unique(y)) < 2:  # a constant factor: every dimension predicts it, no gap
                matrix[j, k] = float(np.mean(y_test == y[0]))
            else:
                model = svm.LinearSVC(C=0.01, class_weight="balanced", random_state=seed_from(random_state))
                matrix[j, k] = float(np.mean(fit_quietly(model, x, y).predict(x_test) == y_test))
    gaps = top_two_gap(matrix)
    return {"score": float(np.mean(gaps)), "per_factor": gaps.tolist(), "score_matrix": matrix.tolist()}
