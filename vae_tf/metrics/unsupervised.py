"""The unsupervised scores: how dependent a code's dimensions are on one another, from the codes alone (no factors).

Locatello et al. 2019 ("Challenging Common Assumptions ...") report them beside the supervised metrics, as
disentanglement_lib's unsupervised_metrics.py. Lower means more factorised; 0 for independent dimensions.
"""

import numpy as np

from vae_tf.errors import UserError
from vae_tf.metrics.checks import check_protocol, codes_of, random_state_of
from vae_tf.metrics.information import check_estimator, mutual_information
from vae_tf.metrics.sampled import score_observed


def gaussian_total_correlation_from_arrays(codes):
    """Total correlation of the Gaussian with the codes' covariance Σ [d, d] (np.cov, n − 1): the KL divergence from
    N(0, Σ) to the product of its marginals N(0, diag Σ), ½ (Σ_j log Σ_jj − log det Σ) nats (Watanabe 1960).

    Dimensions that never vary are left out (a constant is independent of everything); linearly dependent
    dimensions (det Σ = 0) give infinity.

    Returns score.
    """
    codes = codes_of(codes)
    varying = codes[:, np.var(codes, axis=0) > 0]
    if varying.shape[1] < 2:
        return {"score": 0.0}
    covariance = np.atleast_2d(np.cov(varying, rowvar=False))
    sign, log_det = np.linalg.slogdet(covariance)
    total = 0.5 * (np.sum(np.log(np.diag(covariance))) - log_det) if sign > 0 else np.inf
    return {"score": float(total)}


def gaussian_wasserstein_correlation_from_arrays(codes):
    """Squared 2-Wasserstein distance between N(0, Σ) of the codes' covariance Σ and the product of its marginals
    N(0, D), D = diag Σ: tr Σ + tr D − 2 tr (D^½ Σ D^½)^½ = 2 tr Σ − 2 Σ_i √λ_i, λ the eigenvalues of D^½ Σ D^½
    (the Gaussian W2 of Dowson & Landau 1982; disentanglement_lib's gaussian_wasserstein_correlation).

    Returns score, normalized (the score divided by tr Σ, which does not depend on the codes' scale).
    """
    codes = codes_of(codes)
    covariance = np.atleast_2d(np.cov(codes, rowvar=False))
    root = np.sqrt(np.diag(covariance))
    eigenvalues = np.linalg.eigvalsh(root[:, None] * covariance * root[None, :])
    distance = 2 * np.trace(covariance) - 2 * np.sum(np.sqrt(np.clip(eigenvalues, 0, None)))
    trace = np.trace(covariance)
    return {"score": float(distance), "normalized": float(distance / trace) if trace > 0 else 0.0}


def code_mutual_information_from_arrays(codes, *, num_bins=20, estimator="histogram", random_state=0):
    """Mean mutual information (nats) between distinct code dimensions, Σ_{i≠j} I(z_i; z_j) / (d² − d), by
    `estimator` (`information`: "histogram" with `num_bins` bins per dimension, disentanglement_lib's, or "knn").

    Returns score.
    """
    check_protocol(code_mutual_information_from_arrays, (), num_bins=(num_bins, 1))
    codes = codes_of(codes)
    d = codes.shape[1]
    if d < 2:
        raise UserError("code_mutual_information averages the information between pairs of code dimensions: it needs "
                        "codes of at least 2 dimensions")
    information = mutual_information(codes, codes, ["continuous"] * d, estimator, num_bins,
                                     random_state_of(random_state))
    np.fill_diagonal(information, 0.0)
    return {"score": float(information.sum() / (d * d - d))}


def gaussian_total_correlation(ground_truth, representation_fn, random_state, *, num_train=10000, **unknown):
    """Gaussian total correlation (`gaussian_total_correlation_from_arrays`) of `num_train` random observations' codes.

    Protocol (unsupervised.gin): num_train=10000.
    """
    check_protocol(gaussian_total_correlation, unknown, num_train=(num_train, 2))
    return score_observed(gaussian_total_correlation_from_arrays, ground_truth, representation_fn, random_state,
                          num_train)


def gaussian_wasserstein_correlation(ground_truth, representation_fn, random_state, *, num_train=10000, **unknown):
    """Gaussian Wasserstein dependency (`gaussian_wasserstein_correlation_from_arrays`) of `num_train` random
    observations' codes.

    Protocol (unsupervised.gin): num_train=10000.
    """
    check_protocol(gaussian_wasserstein_correlation, unknown, num_train=(num_train, 2))
    return score_observed(gaussian_wasserstein_correlation_from_arrays, ground_truth, representation_fn, random_state,
                          num_train)


def code_mutual_information(ground_truth, representation_fn, random_state, *, num_train=10000, num_bins=20,
                            estimator="histogram", **unknown):
    """Mean pairwise mutual information of the codes (`code_mutual_information_from_arrays`) of `num_train` random
    observations.

    Protocol (unsupervised.gin): num_train=10000, histogram_discretizer with num_bins=20.
    """
    check_protocol(code_mutual_information, unknown, num_train=(num_train, 1), num_bins=(num_bins, 1))
    check_estimator(estimator)
    return score_observed(code_mutual_information_from_arrays, ground_truth, representation_fn, random_state,
                          num_train, num_bins=num_bins, estimator=estimator)
