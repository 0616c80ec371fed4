"""DCI: disentanglement, completeness and informativeness of a code from its importance matrix (Eastwood & Williams
2018)."""

import math

import numpy as np
from sklearn import ensemble

from vae_tf.metrics.checks import check_protocol, random_state_of, seed_from
from vae_tf.metrics.probes import fit_in_threads
from vae_tf.metrics.sampled import _encode, checked


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


def dci(ground_truth, representation_fn, random_state, *, num_train=10000, num_test=5000, n_estimators=100,
        **unknown):
    """Disentanglement, completeness, informativeness (Eastwood & Williams 2018, "A Framework for the Quantitative
    Evaluation of Disentangled Representations", §2-3), with gradient-boosted trees as in disentanglement_lib.

    One GradientBoostingClassifier per factor (FIT_THREADS fitted at a time) predicts the factor from the codes of
    `num_train` observations; its feature_importances_ fill column k of the importance matrix R [d, F].
    Disentanglement: per dimension, 1 − entropy (base F) of its normalised row, weighted by the row's share of all
    importance. Completeness: per factor, 1 − entropy (base d) of its normalised column, weighted alike.
    Informativeness: mean classification accuracy over factors on the training and on `num_test` fresh
    observations.

    Protocol (dci.gin): num_train=10000, num_test=5000; GradientBoostingClassifier with scikit-learn's defaults
    (dci.py), whose n_estimators=100 is exposed so QUICK can lower it (multi-class boosting fits n_estimators
    trees per factor value: 11,300 trees for shapes2d's 113 values).

    Returns score (= disentanglement), disentanglement, completeness, informativeness_train,
    informativeness_test.
    """
    check_protocol(dci, unknown, num_train=(num_train, 1), num_test=(num_test, 1), n_estimators=(n_estimators, 1))
    random_state, representation_fn = random_state_of(random_state), checked(representation_fn)
    train_factors = np.asarray(ground_truth.sample_factors(num_train, random_state))
    train_codes = _encode(ground_truth, representation_fn, train_factors, random_state)
    test_factors = np.asarray(ground_truth.sample_factors(num_test, random_state))
    test_codes = _encode(ground_truth, representation_fn, test_factors, random_state)
    fitted = [k for k in range(train_factors.shape[1]) if len(np.unique(train_factors[:, k])) > 1]
    seeds = [seed_from(random_state) for _ in fitted]  # drawn in factor order: the result ignores FIT_THREADS

    def fit(k, seed):
        return ensemble.GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed).fit(
            train_codes, train_factors[:, k])

    models = dict(zip(fitted, fit_in_threads(fit, fitted, seeds)))
    importance = np.zeros((train_codes.shape[1], train_factors.shape[1]))
    train_accuracy, test_accuracy = [], []
    for k in range(train_factors.shape[1]):
        if k not in models:  # a constant factor: nothing to learn, trivially predicted
            train_accuracy.append(1.0)
            test_accuracy.append(float(np.mean(test_factors[:, k] == train_factors[0, k])))
            continue
        importance[:, k] = np.abs(models[k].feature_importances_)
        train_accuracy.append(float(np.mean(models[k].predict(train_codes) == train_factors[:, k])))
        test_accuracy.append(float(np.mean(models[k].predict(test_codes) == test_factors[:, k])))
    disentanglement = _weighted(_one_minus_entropy(importance, importance.shape[1]), importance)
    completeness = _weighted(_one_minus_entropy(importance.T, importance.shape[0]), importance.T)
    return {"score": disentanglement, "disentanglement": disentanglement, "completeness": completeness,
            "informativeness_train": float(np.mean(train_accuracy)),
            "informativeness_test": float(np.mean(test_accuracy))}
