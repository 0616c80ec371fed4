"""The scikit-learn predictors the metrics fit, and how they are fitted."""

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

from sklearn.exceptions import ConvergenceWarning

FIT_THREADS = os.cpu_count() or 1  # predictors fitted at once (scikit-learn builds trees without the GIL)


def fit_quietly(model, x, y):
    """Fit a scikit-learn model without its convergence warnings (the study used default iteration limits)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def fit_in_threads(fit, *arguments):
    """[fit(*a) for a in zip(*arguments)], FIT_THREADS at a time, in order."""
    count = len(arguments[0])
    with ThreadPoolExecutor(max(1, min(FIT_THREADS, count))) as pool:
        return list(pool.map(fit, *arguments))
