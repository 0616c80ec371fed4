"""Discretisation, entropy and mutual information (in nats) for the metrics.

Two estimators of the mutual information I(code_j; factor_k) between a code dimension and a factor:

- `"histogram"`, disentanglement_lib's and the default of every metric: each code dimension, and each continuous
  factor, is cut into `num_bins` equal-width bins over its sample range (numpy.histogram_bin_edges); a discrete
  factor is its own labels; the plug-in estimate of the binned pair is scikit-learn's `mutual_info_score`. Binning
  loses information (the estimate falls short of the true value as bins widen) and the plug-in estimate gains about
  (bins_a − 1)(bins_b − 1) / 2n (Miller 1955), so its scores depend on `num_bins` and on n.
- `"knn"`, the k-nearest-neighbour estimators on the raw values, k = KNN_NEIGHBOURS: Kraskov, Stögbauer & Grassberger
  2004 ("Estimating mutual information", eq. 8) against a continuous factor (scikit-learn's
  `mutual_info_regression`), Ross 2014 ("Mutual Information between Discrete and Continuous Data Sets") against a
  discrete one (`mutual_info_classif`). Consistent for continuous data, no bins to choose; scikit-learn adds noise of
  1e-10 times each column's scale from `random_state`.
"""

import numpy as np
from sklearn import metrics as sk_metrics
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

from vae_tf.errors import UserError
from vae_tf.metrics.checks import DISCRETE, seed_from

ESTIMATORS = ("histogram", "knn")
KNN_NEIGHBOURS = 3  # Kraskov et al.'s recommendation and scikit-learn's default


def histogram_bins(codes, num_bins):
    """Each column of codes [n, d] discretised into num_bins equal-width bins over its own range -> ints [n, d].

    A column whose range is too narrow for num_bins distinct float edges (a collapsed latent, constant up to
    rounding) is one bin: numpy refuses to bin it, and it carries no information about any factor."""
    def bins(column):
        try:
            return np.digitize(column, np.histogram_bin_edges(column, num_bins)[:-1])
        except ValueError:  # "Too many bins for data range"
            return np.ones(len(column), np.int64)
    return np.stack([bins(column) for column in codes.T], axis=1)


def factor_labels(factors, kinds, num_bins):
    """Factors [n, k] as labels [n, k]: a discrete factor as it is, a continuous one in `num_bins` bins like a code."""
    return np.stack([column if kind == DISCRETE else histogram_bins(column[:, None], num_bins)[:, 0]
                     for column, kind in zip(factors.T, kinds)], axis=1)


def entropy(labels):
    """Plug-in entropy (nats) of each column of labels [n, k] -> [k]."""
    return np.array([sk_metrics.mutual_info_score(column, column) for column in labels.T])


def discrete_mutual_information(a, b):
    """Plug-in I(a_i; b_j) (nats) of every column of labels a [n, p] with every column of labels b [n, q] -> [p, q]."""
    return np.array([[sk_metrics.mutual_info_score(b[:, j], a[:, i]) for j in range(b.shape[1])]
                     for i in range(a.shape[1])])


def check_estimator(estimator):
    """UserError unless `estimator` names one of ESTIMATORS."""
    if estimator not in ESTIMATORS:
        raise UserError(f"unknown mutual information estimator {estimator!r}; choose from {', '.join(ESTIMATORS)}")


def mutual_information(codes, factors, kinds, estimator, num_bins, random_state):
    """I(code_j; factor_k) (nats) of codes [n, d] and factors [n, k] of `kinds` by `estimator` (module docstring)
    -> [d, k]."""
    check_estimator(estimator)
    if estimator == "histogram":
        return discrete_mutual_information(histogram_bins(codes, num_bins), factor_labels(factors, kinds, num_bins))
    columns = [(mutual_info_classif if kind == DISCRETE else mutual_info_regression)(
        codes, factor, n_neighbors=KNN_NEIGHBOURS, random_state=seed_from(random_state))
        for factor, kind in zip(factors.T, kinds)]
    return np.stack(columns, axis=1)
