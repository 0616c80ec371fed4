"""Modularity and explicitness (Ridgeway & Zemel 2018, "Learning Deep Disentangled Embeddings With the F-Statistic
Loss", §3): does each code dimension depend on one factor at most, and can a simple classifier read each factor?"""

import numpy as np
from sklearn import linear_model
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from vae_tf.errors import UserError
from vae_tf.metrics.checks import DISCRETE, check_protocol, observed, random_state_of, train_and_test
from vae_tf.metrics.information import check_estimator, mutual_information
from vae_tf.metrics.probes import fit_probe, probe_score
from vae_tf.metrics.sampled import score_observed


def modularity_from_arrays(codes, factors, *, kinds=None, num_bins=20, estimator="histogram", random_state=0):
    """Modularity (Ridgeway & Zemel 2018, §3, eq. 2) of codes [n, d] for factors [n, k], k >= 2.

    θ_jf = I(code_j; factor_f) by `estimator` (`information`: "histogram" with `num_bins` bins, disentanglement_lib's,
    or "knn"). Each dimension j is compared with the template that keeps only its largest θ_j = max_f θ_jf:
    δ_j = Σ_{f ≠ argmax} θ_jf² / (θ_j² (k − 1)), and its modularity is 1 − δ_j (0 for a dimension that carries no
    information, as modularity_explicitness.py). The score is the mean over dimensions: 1 when every dimension informs
    about a single factor, 0 for a dimension equally informative about all of them.

    Returns score, per_dimension.
    """
    check_protocol(modularity_from_arrays, (), num_bins=(num_bins, 1))
    codes, factors, kinds = observed(codes, factors, kinds)
    if factors.shape[1] < 2:
        raise UserError("modularity asks whether each code dimension depends on one factor rather than several: it "
                        "needs at least 2 factors")
    squared = mutual_information(codes, factors, kinds, estimator, num_bins, random_state_of(random_state)) ** 2
    largest = squared.max(axis=1)
    deviation = np.divide(squared.sum(axis=1) - largest, largest * (squared.shape[1] - 1),
                          out=np.ones(len(largest)), where=largest > 0)  # no information: modularity 0
    per_dimension = 1.0 - deviation
    return {"score": float(np.mean(per_dimension)), "per_dimension": per_dimension.tolist()}


def modularity(ground_truth, representation_fn, random_state, *, num_train=10000, num_bins=20, estimator="histogram",
               **unknown):
    """Modularity (`modularity_from_arrays`) of the codes of `num_train` random observations.

    Protocol (modularity_explicitness.gin): num_train=10000, histogram_discretizer with num_bins=20.
    """
    check_protocol(modularity, unknown, num_train=(num_train, 1), num_bins=(num_bins, 1))
    check_estimator(estimator)
    return score_observed(modularity_from_arrays, ground_truth, representation_fn, random_state, num_train,
                          num_bins=num_bins, estimator=estimator)


def _mean_auc(model, x, y):
    """Mean one-vs-rest ROC-AUC of a fitted classifier's probabilities over the classes it knows that occur in y
    with both outcomes (modularity_explicitness.py's macro average of a MultiLabelBinarizer's columns)."""
    probabilities = model.predict_proba(x)
    aucs = [roc_auc_score(y == label, probabilities[:, i]) for i, label in enumerate(model.classes_)
            if 0 < np.sum(y == label) < len(y)]
    if not aucs:
        raise UserError(f"explicitness needs rows of two classes of every factor in each set; one set holds only "
                        f"{np.unique(y)[0]:g} of a factor: pass more rows")
    return float(np.mean(aucs))


def explicitness_from_arrays(codes, factors, *, kinds=None, test_codes=None, test_factors=None, test_size=1 / 3,
                             random_state=0):
    """Explicitness (Ridgeway & Zemel 2018, §3) of codes [n, d] for factors [n, k]: how well a linear model reads
    each factor from the whole code.

    The codes are standardised with the training rows' mean and deviation (sklearn's StandardScaler; a constant
    dimension stays 0). A discrete factor gets scikit-learn's LogisticRegression with its defaults, scored by the
    mean one-vs-rest ROC-AUC of its probabilities over the factor's classes (modularity_explicitness.py); 0.5 is
    chance, 1 perfect. A continuous factor gets a LinearRegression, scored by R². The test set is
    (test_codes, test_factors) when given, else `test_size` of the rows held out at random.

    Returns score (= mean test explicitness over factors), train (its training-set counterpart), per_factor (test).
    """
    random_state = random_state_of(random_state)
    codes, factors, test_codes, test_factors, kinds = train_and_test(
        "explicitness", codes, factors, kinds, test_codes, test_factors, test_size, random_state)
    scaler = StandardScaler().fit(codes)
    codes, test_codes = scaler.transform(codes), scaler.transform(test_codes)
    train, test = [], []
    for k, kind in enumerate(kinds):
        model = fit_probe(linear_model.LogisticRegression() if kind == DISCRETE else linear_model.LinearRegression(),
                          codes, factors[:, k], kind)
        for scores, x, y in ((train, codes, factors[:, k]), (test, test_codes, test_factors[:, k])):
            scores.append(_mean_auc(model, x, y) if kind == DISCRETE else probe_score(model, x, y, kind))
    return {"score": float(np.mean(test)), "train": float(np.mean(train)), "per_factor": test}


def explicitness(ground_truth, representation_fn, random_state, *, num_train=10000, num_test=5000, **unknown):
    """Explicitness (`explicitness_from_arrays`) fitted on `num_train` random observations and tested on `num_test`
    fresh ones.

    Protocol (modularity_explicitness.gin): num_train=10000, num_test=5000.
    """
    check_protocol(explicitness, unknown, num_train=(num_train, 1), num_test=(num_test, 1))
    return score_observed(explicitness_from_arrays, ground_truth, representation_fn, random_state, num_train, num_test)
