"""The scikit-learn predictors the metrics fit (a classifier for a discrete factor, a regressor for a continuous one),
how they are fitted and how they are scored."""

import contextlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn import ensemble, linear_model
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

from vae_tf.metrics.checks import DISCRETE

FIT_THREADS = os.cpu_count() or 1  # predictors fitted at once (scikit-learn builds trees without the GIL)


@contextlib.contextmanager
def _quiet():
    """No convergence warnings (the study used default iteration limits) and no notices of defaults changing in
    later scikit-learn releases (the regression pins in the tests catch a score that moves)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def fit_quietly(model, x, y):
    """Fit a scikit-learn model quietly (`_quiet`)."""
    with _quiet():
        return model.fit(x, y)


def fit_probe(model, x, y, kind):
    """`model` fitted to predict y [n] from x [n, d]; a discrete y of a single class (a factor that does not vary in
    a small training set) gets a DummyClassifier predicting that class, as scikit-learn's classifiers refuse it."""
    if kind == DISCRETE and len(np.unique(y)) < 2:
        model = DummyClassifier(strategy="most_frequent")
    return fit_quietly(model, x, y)


def probe_score(model, x, y, kind):
    """How well a fitted probe predicts y [n] from x [n, d]: its accuracy for a discrete factor, its coefficient of
    determination R² (1 is perfect, 0 is predicting the mean, below 0 is worse) for a continuous one."""
    predicted = model.predict(x)
    return float(np.mean(predicted == y)) if kind == DISCRETE else float(r2_score(y, predicted))


def boosted_trees(kind, seed, n_estimators=100):
    """scikit-learn's gradient-boosted trees with its defaults (disentanglement_lib's
    gradient_boosting_classifier): the classifier for a discrete factor, the regressor (squared error) for a
    continuous one."""
    make = ensemble.GradientBoostingClassifier if kind == DISCRETE else ensemble.GradientBoostingRegressor
    return make(n_estimators=n_estimators, random_state=seed)


def logistic_regression_cv(kind, seed):
    """disentanglement_lib's logistic_regression_cv for a discrete factor: LogisticRegressionCV(Cs=10,
    cv=KFold(5)) choosing C by accuracy (its default scoring then; later scikit-learn releases change the default, so
    it is set); for a continuous factor, RidgeCV over the same ten strengths (α = 1 / C, C in 1e-4 .. 1e4) and
    folds. Both are deterministic: `seed` is unused."""
    folds = KFold(n_splits=5)
    if kind == DISCRETE:
        return linear_model.LogisticRegressionCV(Cs=10, cv=folds, scoring="accuracy")
    return linear_model.RidgeCV(alphas=1 / np.logspace(-4, 4, 10), cv=folds)


def fit_in_threads(fit, *arguments):
    """[fit(*a) for a in zip(*arguments)], FIT_THREADS at a time, in order."""
    count = len(arguments[0])
    # Warning filters are global to the process: quieted here, around all threads, the filters one thread restores on
    # leaving fit_quietly still quiet the others.
    with _quiet(), ThreadPoolExecutor(max(1, min(FIT_THREADS, count))) as pool:
        return list(pool.map(fit, *arguments))
