"""The Interventional Robustness Score (Suter et al. 2019, "Robustly Disentangled Causal Mechanisms: Validating Deep
Representations for Interventional Robustness"): how little each code dimension moves while its factor stays fixed."""

import numpy as np

from vae_tf.errors import UserError
from vae_tf.metrics.checks import check_protocol, observed
from vae_tf.metrics.information import factor_labels
from vae_tf.metrics.sampled import score_observed


def _check_quantile(diff_quantile):
    if isinstance(diff_quantile, bool) or not isinstance(diff_quantile, (int, float)) or not 0 < diff_quantile <= 1:
        raise UserError(f"irs protocol parameter diff_quantile must be a number in (0, 1], got {diff_quantile!r}")


def irs_from_arrays(codes, factors, *, kinds=None, num_bins=20, diff_quantile=0.99):
    """IRS of codes [n, d] for factors [n, k] (Suter et al. 2019, with the estimator of disentanglement_lib's irs.py).

    Dimensions that never vary are left out. For a dimension j and a factor f: the rows are grouped by f's value
    (a continuous factor by its `num_bins` equal-width bins); within a group, the `diff_quantile` quantile of
    |z_j − E[z_j | group]| is the dimension's deviation while f is held fixed; averaged over the groups and divided by
    the dimension's largest deviation max |z_j − E[z_j]|, it gives IRS_jf = 1 − that ratio. Each dimension scores
    its best factor, max_f IRS_jf; the score is their average weighted by each dimension's largest deviation.
    diff_quantile=1 is the paper's worst case; irs.py and its configs use 0.99.

    The groups estimate E[z | do(f)] from observed pairs, which holds for independent factors (a full grid, or random
    samples of independent factors); with correlated factors the groups mix in the other factors' effects.
    irs.py bins every factor into 20 bins, merging the values of a factor with more than 20 (32 positions into 20);
    here a discrete factor keeps its own values.

    Returns score, num_active_dims, active_dims, per_dimension (each active dimension's best IRS), parents (its best
    factor).
    """
    check_protocol(irs_from_arrays, (), num_bins=(num_bins, 1))
    _check_quantile(diff_quantile)
    codes, factors, kinds = observed(codes, factors, kinds)
    active = np.flatnonzero(np.var(codes, axis=0) > 0)
    if not len(active):
        return {"score": 0.0, "num_active_dims": 0, "active_dims": [], "per_dimension": [], "parents": []}
    latents = codes[:, active].astype(np.float64)
    largest = np.max(np.abs(latents - latents.mean(axis=0)), axis=0)  # [active]
    deviations = np.zeros((len(active), factors.shape[1]))
    for f, labels in enumerate(factor_labels(factors, kinds, num_bins).T):
        values = np.unique(labels)
        for value in values:
            group = latents[labels == value]
            deviations[:, f] += np.percentile(np.abs(group - group.mean(axis=0)), diff_quantile * 100, axis=0)
        deviations[:, f] /= len(values)
    robustness = 1.0 - deviations / largest[:, None]  # [active, k]
    best = robustness.max(axis=1)
    return {"score": float(np.average(best, weights=largest)), "num_active_dims": len(active),
            "active_dims": active.tolist(), "per_dimension": best.tolist(),
            "parents": robustness.argmax(axis=1).tolist()}


def irs(ground_truth, representation_fn, random_state, *, num_train=10000, num_bins=20, diff_quantile=0.99,
        **unknown):
    """IRS (`irs_from_arrays`) of the codes of `num_train` random observations.

    Protocol (config/sample/irs/irs.gin, irs.py): num_train=10000, diff_quantile=0.99, histogram_discretizer with
    num_bins=20.
    """
    check_protocol(irs, unknown, num_train=(num_train, 1), num_bins=(num_bins, 1))
    _check_quantile(diff_quantile)
    return score_observed(irs_from_arrays, ground_truth, representation_fn, random_state, num_train,
                          num_bins=num_bins, diff_quantile=diff_quantile)
