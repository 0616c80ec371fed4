"""The downstream tasks (Locatello et al. 2019, "Challenging Common Assumptions in the Unsupervised Learning of
Disentangled Representations"): how well, and from how few examples, simple predictors learn the factors
from the codes."""

import numpy as np

from vae_tf.errors import UserError
from vae_tf.metrics.checks import check_protocol, random_state_of, seed_from, train_and_test
from vae_tf.metrics.probes import boosted_trees, fit_in_threads, fit_probe, logistic_regression_cv, probe_score
from vae_tf.metrics.sampled import score_observed

TRAIN_SIZES = (10, 100, 1000, 10000)  # downstream_task_*.gin's num_train
EFFICIENCY_SIZE = 100  # Locatello et al.'s statistical efficiency: the score at 100 examples over that at 10,000


def _sizes(metric, train_sizes, least):
    """The training sizes, checked and in increasing order."""
    sizes = [train_sizes] if isinstance(train_sizes, (int, np.integer)) else list(train_sizes)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < least for s in sizes):
        raise UserError(f"{metric} protocol parameter train_sizes must list training-set sizes, integers >= {least}, "
                        f"got {train_sizes!r}")
    return sorted({int(s) for s in sizes})


def _downstream(metric, predictor, least, codes, factors, kinds, test_codes, test_factors, test_size, train_sizes,
                random_state):
    """Fit `predictor(kind, seed)` per factor on the first s training rows for each s in train_sizes."""
    sizes = _sizes(metric, train_sizes, least)
    random_state = random_state_of(random_state)
    codes, factors, test_codes, test_factors, kinds = train_and_test(
        metric, codes, factors, kinds, test_codes, test_factors, test_size, random_state)
    if len(codes) < sizes[-1]:
        raise UserError(f"{metric} trains on up to {sizes[-1]} rows (train_sizes={sizes}), but {len(codes)} are left "
                        f"after holding out the test rows: pass more rows or smaller train_sizes")
    jobs = [(size, k) for size in sizes for k in range(len(kinds))]
    seeds = [seed_from(random_state) for _ in jobs]  # drawn in order: the result ignores FIT_THREADS

    def fit(job, seed):
        size, k = job
        return fit_probe(predictor(kinds[k], seed), codes[:size], factors[:size, k], kinds[k])

    models = dict(zip(jobs, fit_in_threads(fit, jobs, seeds)))
    by_size = {}
    for size in sizes:
        train = [probe_score(models[size, k], codes[:size], factors[:size, k], kind) for k, kind in enumerate(kinds)]
        test = [probe_score(models[size, k], test_codes, test_factors[:, k], kind) for k, kind in enumerate(kinds)]
        by_size[str(size)] = {"mean_train": float(np.mean(train)), "mean_test": float(np.mean(test)),
                              "min_test": float(np.min(test)), "per_factor_test": test}
    result = {"score": by_size[str(sizes[-1])]["mean_test"], "by_size": by_size}
    largest = by_size[str(sizes[-1])]["mean_test"]
    if EFFICIENCY_SIZE in sizes[:-1] and largest > 0:
        result["efficiency"] = by_size[str(EFFICIENCY_SIZE)]["mean_test"] / largest
    return result


def downstream_logistic_regression_from_arrays(codes, factors, *, kinds=None, test_codes=None, test_factors=None,
                                               test_size=1 / 3, train_sizes=TRAIN_SIZES, random_state=0):
    """The downstream task with logistic regression (`probes.logistic_regression_cv`: LogisticRegressionCV with
    Cs=10 and 5 folds; RidgeCV for a continuous factor) on codes [n, d] for factors [n, k].

    Per factor, a predictor is fitted on the first s training rows for each s in `train_sizes` (each at least 5, for
    the folds) and scored on the test set, (test_codes, test_factors) when given, else `test_size` of the rows held
    out at random: accuracy for a discrete factor, R² for a continuous one. The training rows are in random order
    (drawn at random, or shuffled by the split), so each size is a random subset and the smaller ones are nested in
    the larger; disentanglement_lib draws a fresh training and test sample per size instead.

    Returns score (the mean test score over factors at the largest size), by_size ({size: mean_train, mean_test,
    min_test, per_factor_test}), and efficiency (the mean test score at 100 rows over that at the largest size:
    Locatello et al.'s statistical efficiency when the largest is 10,000) when 100 is among the smaller sizes.
    """
    return _downstream("downstream_logistic_regression", logistic_regression_cv, 5, codes, factors, kinds,
                       test_codes, test_factors, test_size, train_sizes, random_state)


def downstream_boosted_trees_from_arrays(codes, factors, *, kinds=None, test_codes=None, test_factors=None,
                                         test_size=1 / 3, train_sizes=TRAIN_SIZES, random_state=0, n_estimators=100):
    """The downstream task with gradient-boosted trees (`probes.boosted_trees`, `n_estimators` rounds; the regressor
    for a continuous factor), each seeded from `random_state`: otherwise as
    `downstream_logistic_regression_from_arrays`, with training sizes from 1 row.
    """
    return _downstream("downstream_boosted_trees", lambda kind, seed: boosted_trees(kind, seed, n_estimators), 1,
                       codes, factors, kinds, test_codes, test_factors, test_size, train_sizes, random_state)


def downstream_logistic_regression(ground_truth, representation_fn, random_state, *, train_sizes=TRAIN_SIZES,
                                   num_test=5000, **unknown):
    """The logistic-regression downstream task (`downstream_logistic_regression_from_arrays`) on max(train_sizes)
    random observations and `num_test` fresh ones.

    Protocol (downstream_task_logistic_regression.gin): num_train=[10, 100, 1000, 10000], num_test=5000,
    predictor logistic_regression_cv.
    """
    check_protocol(downstream_logistic_regression, unknown, num_test=(num_test, 1))
    sizes = _sizes("downstream_logistic_regression", train_sizes, 5)
    return score_observed(downstream_logistic_regression_from_arrays, ground_truth, representation_fn, random_state,
                          sizes[-1], num_test, train_sizes=sizes)


def downstream_boosted_trees(ground_truth, representation_fn, random_state, *, train_sizes=TRAIN_SIZES, num_test=5000,
                             n_estimators=100, **unknown):
    """The boosted-trees downstream task (`downstream_boosted_trees_from_arrays`) on max(train_sizes) random
    observations and `num_test` fresh ones.

    Protocol (downstream_task_boosted_trees.gin): num_train=[10, 100, 1000, 10000], num_test=5000, predictor
    gradient_boosting_classifier (scikit-learn's defaults; n_estimators=100 is exposed so QUICK can lower it).
    """
    check_protocol(downstream_boosted_trees, unknown, num_test=(num_test, 1), n_estimators=(n_estimators, 1))
    sizes = _sizes("downstream_boosted_trees", train_sizes, 1)
    return score_observed(downstream_boosted_trees_from_arrays, ground_truth, representation_fn, random_state,
                          sizes[-1], num_test, train_sizes=sizes, n_estimators=n_estimators)
