"""UDR, the Unsupervised Disentanglement Ranking (Duan et al. 2020, "Unsupervised Model Selection for Variational
Disentangled Representation Learning", ICLR): runs whose informative dimensions match one to one across seeds are the
disentangled ones. It scores a set of runs on the same observations and needs no factors."""

import numpy as np
from scipy import stats
from sklearn import linear_model
from sklearn.preprocessing import StandardScaler

from vae_tf.errors import UserError
from vae_tf.metrics.checks import codes_of

CORRELATIONS = ("lasso", "spearman")


def relative_strength(similarity):
    """How one-to-one a similarity matrix R [d_a, d_b] (non-negative) is (Duan et al. 2020, §3): the mean over
    columns of max_a R² / Σ_a R and over rows of max_b R² / Σ_b R, averaged (a column or row of zeros counts 0, as
    disentanglement_lib's udr.py). 0 for an empty matrix (a run without informative dimensions)."""
    if similarity.size == 0:
        return 0.0

    def side(r, axis):
        total = r.sum(axis=axis)
        return np.mean(np.divide(r.max(axis=axis) ** 2, total, out=np.zeros_like(total), where=total > 0))

    return float((side(similarity, 0) + side(similarity, 1)) / 2)


def _similarity(a, b, correlation, alpha):
    """|Lasso coefficients| predicting b [n, d_b] from a [n, d_a], or |Spearman correlations|, as R [d_a, d_b]."""
    if correlation == "lasso":
        return np.abs(linear_model.Lasso(alpha=alpha).fit(a, b).coef_).reshape(b.shape[1], a.shape[1]).T
    return np.abs(rank_correlations(a, b))


def rank_correlations(a, b):
    """Spearman's rho between each column of a [n, d_a] and each of b [n, d_b], as [d_a, d_b]: the Pearson correlation
    of their ranks (ties averaged), as scipy's spearmanr, computed here because spearmanr(a, b) gives one NaN instead
    of the matrix when its first or second column is constant, as a run's dead or masked (zeroed) dimension is.

    A constant column has no rank correlation with anything: its entries are 0 rather than NaN, so the dimension
    matches none (a row or column of zeros, which relative_strength counts 0) and the others' maxima stay finite.
    Masked dimensions are left out of a pair's score anyway; the 0 decides only for a constant dimension whose KL
    counts it informative."""
    ranks_a, ranks_b = stats.rankdata(a, axis=0), stats.rankdata(b, axis=0)
    # A constant column's ranks are all (n + 1) / 2, a half-integer whose mean is exact: centred, exactly 0.
    centred_a, centred_b = ranks_a - ranks_a.mean(axis=0), ranks_b - ranks_b.mean(axis=0)
    norms = np.outer(np.linalg.norm(centred_a, axis=0), np.linalg.norm(centred_b, axis=0))
    return np.divide(centred_a.T @ centred_b, norms, out=np.zeros_like(norms), where=norms > 0)


def _runs(codes_list, kl):
    """Checked codes [n, d_i] of m >= 2 runs and their KL per dimension [d_i] (None: not given)."""
    if isinstance(codes_list, np.ndarray) and codes_list.ndim == 2 or len(codes_list) < 2:
        raise UserError("udr compares runs with each other: pass a list of at least 2 codes arrays [n, d], one per "
                        "run, all of the same n observations")
    runs = [codes_of(codes, f"codes of run {i}") for i, codes in enumerate(codes_list)]
    if len({len(codes) for codes in runs}) > 1:
        raise UserError(f"udr compares the codes of the same observations, but the runs have "
                        f"{[len(codes) for codes in runs]} rows: encode the same n observations with every run")
    if kl is None:
        return runs, [None] * len(runs)
    kl = [np.asarray(k, dtype=np.float64).reshape(-1) for k in kl]
    if len(kl) != len(runs) or any(len(k) != codes.shape[1] for k, codes in zip(kl, runs)):
        raise UserError(f"kl must hold one value per dimension of each run: {[codes.shape[1] for codes in runs]}, got "
                        f"{[len(k) for k in kl]}")
    return runs, kl


def udr_from_arrays(codes_list, *, kl=None, correlation="lasso", alpha=0.1, kl_threshold=0.01):
    """UDR (Duan et al. 2020, §3) of m >= 2 runs from their codes of the same n observations: `codes_list`, one array
    [n, d_i] per run.

    A dimension is informative when the run's mean KL(q(z_d|x) ‖ p(z_d)) over the observations, `kl` (one array
    [d_i] per run), exceeds `kl_threshold`; without `kl`, every dimension that varies counts (pass the KL to leave
    out collapsed latents, whose means still vary a little). Each run's codes are standardised (sklearn's
    StandardScaler) and its uninformative dimensions zeroed. For every ordered pair (i, j), the similarity R [d_i, d_j] is the absolute
    coefficients of a Lasso (scikit-learn, `alpha`) predicting run j's codes from run i's ("lasso", UDR_L), or the
    absolute Spearman rank correlations ("spearman", UDR_S); restricted to both runs' informative dimensions, its
    relative strength (`relative_strength`) is the pair's score. A run's UDR is the median of its scores as the
    predicted run j against every other run, as disentanglement_lib's udr.py. The paper compares the seeds of one
    hyper-parameter setting, and UDR-A2A all runs with all: both are this computation on the runs passed.

    With standardised, uncorrelated dimensions the Lasso shrinks each coefficient by `alpha`: two runs whose codes
    match one to one (in any order, with any signs and scales) score 1 − alpha = 0.9, and runs of unrelated codes 0.

    Returns model_scores (one per run), pairwise (m lists of m: row i predicting column j; None on the diagonal),
    informative_dims (each run's count).
    """
    if correlation not in CORRELATIONS:
        raise UserError(f"udr correlation must be one of {', '.join(CORRELATIONS)}, got {correlation!r}")
    runs, kl = _runs(codes_list, kl)
    masks = [codes.var(axis=0) > 0 if k is None else k > kl_threshold for codes, k in zip(runs, kl)]
    standardised = [StandardScaler().fit_transform(codes) * mask for codes, mask in zip(runs, masks)]
    count = len(runs)
    pairwise = np.full((count, count), np.nan)
    for i in range(count):
        for j in range(count):
            if i != j:
                similarity = _similarity(standardised[i], standardised[j], correlation, alpha)
                pairwise[i, j] = relative_strength(similarity[masks[i]][:, masks[j]])
    scores = [float(np.median(np.delete(pairwise[:, j], j))) for j in range(count)]
    return {"model_scores": scores,
            "pairwise": [[None if i == j else float(pairwise[i, j]) for j in range(count)] for i in range(count)],
            "informative_dims": [int(mask.sum()) for mask in masks]}
