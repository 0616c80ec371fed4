"""The gap metrics: per factor, how far its best code dimension stands above the second best (MIG and SAP)."""

import numpy as np
from sklearn import svm

from vae_tf.errors import UserError
from vae_tf.metrics.checks import CONTINUOUS, check_protocol, observed, random_state_of, seed_from, train_and_test
from vae_tf.metrics.information import discrete_mutual_information, entropy, factor_labels, histogram_bins
from vae_tf.metrics.probes import fit_quietly
from vae_tf.metrics.sampled import score_observed


def top_two_gap(matrix):
    """Per column of [d, F]: largest minus second-largest entry (0 for the second when d == 1)."""
    ordered = np.sort(matrix, axis=0)[::-1]
    second = ordered[1] if len(ordered) > 1 else np.zeros(matrix.shape[1])
    return ordered[0] - second


def mig_from_arrays(codes, factors, *, kinds=None, num_bins=20):
    """The Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in Variational
    Autoencoders", §4.1) of codes [n, d] for factors [n, k], with disentanglement_lib's histogram estimator.

    Each code dimension, and each continuous factor, is cut into `num_bins` equal-width bins over its range
    (`information.histogram_bins`); I(code_j; factor_k) is the plug-in mutual information of the binned pair
    (scikit-learn's mutual_info_score, nats). Per factor, the gap between its two most informative dimensions is
    divided by the factor's (binned) entropy; the score is the mean over factors. `kinds`: see `checks.factor_kinds`.
    A continuous factor's MIG is that of its binned values: the gap is divided by their entropy, since a continuous
    factor's own information I(v; v) is infinite.

    Returns score, per_factor (the normalised gaps), top_dims (each factor's most informative dimension).
    """
    check_protocol(mig_from_arrays, (), num_bins=(num_bins, 1))
    codes, factors, kinds = observed(codes, factors, kinds)
    labels = factor_labels(factors, kinds, num_bins)
    information = discrete_mutual_information(histogram_bins(codes, num_bins), labels)  # [d, k]
    entropies = entropy(labels)
    # a continuous factor varying only by rounding falls in one bin: entropy 0, and nothing to find
    gaps = np.divide(top_two_gap(information), entropies, out=np.zeros(len(entropies)), where=entropies > 0)
    return {"score": float(np.mean(gaps)), "per_factor": gaps.tolist(),
            "top_dims": np.argmax(information, axis=0).tolist()}


def mig(ground_truth, representation_fn, random_state, *, num_train=10000, num_bins=20, **unknown):
    """MIG (`mig_from_arrays`) of the codes of `num_train` random observations.

    Protocol (mig.gin): num_train=10000, histogram_discretizer with num_bins=20 (mig.py, utils.py).
    """
    check_protocol(mig, unknown, num_train=(num_train, 1), num_bins=(num_bins, 1))
    return score_observed(mig_from_arrays, ground_truth, representation_fn, random_state, num_train, num_bins=num_bins)


def sap_from_arrays(codes, factors, *, kinds=None, test_codes=None, test_factors=None, test_size=1 / 3,
                    random_state=0):
    """The Separated Attribute Predictability score (Kumar et al. 2018, "Variational Inference of Disentangled
    Latent Concepts from Unlabeled Observations", §3) of codes [n, d] for factors [n, k].

    For each (dimension j, factor k) a predictability: for a discrete factor, the test accuracy of a LinearSVC
    (C=0.01, balanced class weights, as sap_score.py) fitted on dimension j alone; for a continuous factor, the
    squared correlation of code j and factor k on the training rows (sap_score.py's continuous branch: no test set).
    Per factor, the gap between its two best dimensions; the score is their mean. The test set is
    (test_codes, test_factors) when given, else `test_size` of the rows held out at random (`random_state`).

    A one-dimensional linear classifier separates few classes, so even a perfect code scores well below 1 on
    discrete factors with many values.

    Returns score, per_factor (the gaps), score_matrix (`[d][k]` predictabilities).
    """
    random_state = random_state_of(random_state)
    codes, factors, test_codes, test_factors, kinds = train_and_test(
        "sap", codes, factors, kinds, test_codes, test_factors, test_size, random_state)
    matrix = np.zeros((codes.shape[1], factors.shape[1]))
    for k, kind in enumerate(kinds):
        y, y_test = factors[:, k], test_factors[:, k]
        for j in range(codes.shape[1]):
            x, x_test = codes[:, j:j + 1].astype(np.float64), test_codes[:, j:j + 1].astype(np.float64)
            if kind == CONTINUOUS:
                covariance = np.cov(x[:, 0], y)
                if covariance[0, 0] > 1e-12 and covariance[1, 1] > 0:
                    matrix[j, k] = covariance[0, 1] ** 2 / (covariance[0, 0] * covariance[1, 1])
            elif len(np.unique(y)) < 2:  # one class among the training rows: every dimension predicts it, no gap
                matrix[j, k] = float(np.mean(y_test == y[0]))
            else:
                model = svm.LinearSVC(C=0.01, class_weight="balanced", random_state=seed_from(random_state))
                matrix[j, k] = float(np.mean(fit_quietly(model, x, y).predict(x_test) == y_test))
    gaps = top_two_gap(matrix)
    return {"score": float(np.mean(gaps)), "per_factor": gaps.tolist(), "score_matrix": matrix.tolist()}


def sap(ground_truth, representation_fn, random_state, *, num_train=10000, num_test=5000, continuous_factors=False,
        **unknown):
    """SAP (`sap_from_arrays`) with `num_train` random observations to fit on and `num_test` fresh ones to test,
    every factor treated as continuous when `continuous_factors`.

    Protocol (sap_score.gin): num_train=10000, num_test=5000, continuous_factors=False; LinearSVC(C=0.01,
    class_weight="balanced") (sap_score.py).
    """
    check_protocol(sap, unknown, num_train=(num_train, 1), num_test=(num_test, 1))
    if not isinstance(continuous_factors, (bool, np.bool_)):
        raise UserError(f"sap protocol parameter continuous_factors must be True or False, got {continuous_factors!r}")
    return score_observed(sap_from_arrays, ground_truth, representation_fn, random_state, num_train, num_test,
                          kinds=CONTINUOUS if continuous_factors else None)
