"""DCI: disentanglement, completeness and informativeness of a code from its importance matrix (Eastwood & Williams
2018)."""

import math

import numpy as np
from sklearn.dummy import DummyClassifier

from vae_tf.metrics.checks import check_protocol, random_state_of, seed_from, train_and_test
from vae_tf.metrics.probes import boosted_trees, fit_in_threads, fit_probe, probe_score
from vae_tf.metrics.sampled import score_observed


def _one_minus_entropy(weights, base):
    """1 − entropy (log base `base`) of each row of non-negative weights [m, base], as in dci.py (+1e-11 keeps
    all-zero rows defined: they count as uniform)."""
    if base == 1:
        return np.ones(len(weights))  # one outcome: nothing to spread over
    p = weights + 1e-11
    p = p / p.sum(axis=1, keepdims=True)
    return 1.0 + np.sum(p * np.log(p), axis=1) / math.log(base)


def _weighted(per_row, weights):
    """Mean of per_row weighted by each row's share of the total weight (uniform when all weights are 0)."""
    totals = weights.sum(axis=1)
    if totals.sum() == 0:
        totals = np.ones_like(totals)
    return float(np.sum(per_row * totals / totals.sum()))


def dci_from_arrays(codes, factors, *, kinds=None, test_codes=None, test_factors=None, test_size=1 / 3,
                    random_state=0, n_estimators=100):
    """Disentanglement, completeness, informativeness (Eastwood & Williams 2018, "A Framework for the Quantitative
    Evaluation of Disentangled Representations", §2-3) of codes [n, d] for factors [n, k], with gradient-boosted
    trees as in disentanglement_lib.

    One boosted-trees probe per factor (`probes.boosted_trees`: a classifier for a discrete factor, a regressor for a
    continuous one; FIT_THREADS fitted at a time, each seeded from `random_state` in factor order) predicts the
    factor from the codes; its feature_importances_ fill column k of the importance matrix R [d, k].
    Disentanglement: per dimension, 1 − entropy (base k) of its normalised row, weighted by the row's share of all
    importance. Completeness: per factor, 1 − entropy (base d) of its normalised column, weighted alike.
    Informativeness: the probes' mean score over factors (accuracy, or R² for a continuous factor) on the training
    and on the test set: (test_codes, test_factors) when given, else `test_size` of the rows held out at random.
    `n_estimators` boosting rounds (scikit-learn's default 100; multi-class boosting fits one tree per class and
    round).

    Returns score (= disentanglement), disentanglement, completeness, informativeness_train,
    informativeness_test.
    """
    check_protocol(dci_from_arrays, (), n_estimators=(n_estimators, 1))
    random_state = random_state_of(random_state)
    codes, factors, test_codes, test_factors, kinds = train_and_test(
        "dci", codes, factors, kinds, test_codes, test_factors, test_size, random_state)
    seeds = [seed_from(random_state) for _ in kinds]  # drawn in factor order: the result ignores FIT_THREADS

    def fit(k, seed):
        return fit_probe(boosted_trees(kinds[k], seed, n_estimators), codes, factors[:, k], kinds[k])

    models = fit_in_threads(fit, range(len(kinds)), seeds)
    importance = np.stack([np.zeros(codes.shape[1]) if isinstance(model, DummyClassifier)
                           else np.abs(model.feature_importances_) for model in models], axis=1)
    train = [probe_score(model, codes, factors[:, k], kind) for k, (model, kind) in enumerate(zip(models, kinds))]
    test = [probe_score(model, test_codes, test_factors[:, k], kind)
            for k, (model, kind) in enumerate(zip(models, kinds))]
    disentanglement = _weighted(_one_minus_entropy(importance, importance.shape[1]), importance)
    completeness = _weighted(_one_minus_entropy(importance.T, importance.shape[0]), importance.T)
    return {"score": disentanglement, "disentanglement": disentanglement, "completeness": completeness,
            "informativeness_train": float(np.mean(train)), "informativeness_test": float(np.mean(test))}


def dci(ground_truth, representation_fn, random_state, *, num_train=10000, num_test=5000, n_estimators=100,
        **unknown):
    """DCI (`dci_from_arrays`) with `num_train` random observations to fit on and `num_test` fresh ones to test.

    Protocol (dci.gin): num_train=10000, num_test=5000; GradientBoostingClassifier with scikit-learn's defaults
    (dci.py), whose n_estimators=100 is exposed so QUICK can lower it (multi-class boosting fits n_estimators
    trees per factor value: 11,300 trees for shapes2d's 113 values).
    """
    check_protocol(dci, unknown, num_train=(num_train, 1), num_test=(num_test, 1), n_estimators=(n_estimators, 1))
    return score_observed(dci_from_arrays, ground_truth, representation_fn, random_state, num_train, num_test,
                          n_estimators=n_estimators)
