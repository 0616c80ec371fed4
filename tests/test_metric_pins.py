"""Regression pins: every metric's value on fixed synthetic codes, to 1e-6, so that a change in a dependency
(scikit-learn's mutual_info_score, its classifiers and their defaults, numpy's binning, scipy) that moves a score fails
here instead of drifting unnoticed between versions.

The values were computed by this code with scikit-learn 1.9.1, numpy 2.4.6 and scipy 1.17.1; the five sampled metrics'
equal those vae_tf computed before the metrics took arrays (commit 3175e29). The data come from np.random.RandomState,
whose streams numpy keeps fixed across versions (NEP 19). When a pin fails after an upgrade, find which dependency
moved the score and why, then update the pin and the note in docs/metrics.md on what each score depends on.
"""

import numpy as np
import pytest

from vae_tf import metrics

from conftest import FactorIndices


def synthetic():
    """600 codes [600, 4] of two discrete factors (3 and 5 values) and a continuous one, mixed and noisy."""
    state = np.random.RandomState(12345)
    factors = np.column_stack([state.randint(3, size=600), state.randint(5, size=600), state.rand(600)])
    mixing = np.array([[1.0, 0.3, 0.0, 0.0], [0.0, 0.6, 0.4, 0.0], [0.0, 0.0, 1.5, 2.0]])
    return factors @ mixing + 0.8 * state.randn(600, 4), factors


ARRAY_PINS = {  # name -> (protocol, {figure: value})
    "mig": ({}, {"score": 0.13718169687978624}),
    "dci": ({"n_estimators": 20}, {"disentanglement": 0.3899809091308538, "completeness": 0.3384160501343246,
                                   "informativeness_test": 0.4518636001338303}),
    "sap": ({}, {"score": 0.13771379292277583}),
    "modularity": ({}, {"score": 0.7552090126611022}),
    "explicitness": ({}, {"score": 0.667959371779078, "train": 0.6769744052560709}),
    "irs": ({}, {"score": 0.413515933376255}),
    "gaussian_total_correlation": ({}, {"score": 0.16745926744346035}),
    "gaussian_wasserstein_correlation": ({}, {"score": 0.19611927289122733, "normalized": 0.04168216770057864}),
    "code_mutual_information": ({}, {"score": 0.2725615595638591}),
    "downstream_logistic_regression": ({"train_sizes": (100,)}, {"score": 0.4711970477753307}),
    "downstream_boosted_trees": ({"train_sizes": (20, 300), "n_estimators": 20}, {"score": 0.44614208639703373}),
}


@pytest.fixture(scope="module")
def arrays():
    return synthetic()


@pytest.mark.parametrize("name", list(ARRAY_PINS))
def test_array_metric_pins(arrays, name):
    protocol, pinned = ARRAY_PINS[name]
    result = metrics.evaluate_arrays(*arrays, [name], protocols={name: protocol})[name]
    for figure, value in pinned.items():
        assert result[figure] == pytest.approx(value, abs=1e-6), figure
    assert set(ARRAY_PINS) == set(metrics.ARRAY_METRICS)  # a new array metric gets a pin


def test_knn_estimator_pins(arrays):
    codes, factors = arrays
    assert metrics.modularity_from_arrays(codes, factors, estimator="knn")["score"] == pytest.approx(
        0.9650193353260668, abs=1e-6)
    assert metrics.code_mutual_information_from_arrays(codes, estimator="knn")["score"] == pytest.approx(
        0.039494008672315006, abs=1e-6)


def test_udr_pins(arrays):
    codes, _ = arrays
    runs = [codes, codes[:, ::-1] + 0.5 * np.random.RandomState(1).randn(600, 4),
            codes @ np.random.RandomState(2).randn(4, 4)]
    np.testing.assert_allclose(metrics.udr_from_arrays(runs)["model_scores"],
                               [0.6729987968064975, 0.6432814268836575, 0.3218647712347632], rtol=0, atol=1e-6)
    np.testing.assert_allclose(metrics.udr_from_arrays(runs, correlation="spearman")["model_scores"],
                               [0.4845131988430845, 0.4670749006949516, 0.35193231485749354], rtol=0, atol=1e-6)


def representation(x):
    x = np.asarray(x, dtype=np.float64)
    return np.column_stack([x[:, 0] + 0.4 * np.sin(3 * x[:, 1]), x[:, 1] - 0.3 * x[:, 2], np.cos(2 * x[:, 2]),
                            0.5 * x[:, 0] * x[:, 2]])


SAMPLED_PINS = {  # name -> (protocol, {figure: value}); computed alike before and after the array forms
    "beta_vae": (dict(batch_size=2, num_train=150, num_eval=100), {"score": 0.89, "train_accuracy": 0.9133333333333333}),
    "factor_vae": (dict(batch_size=3, num_train=150, num_eval=100, num_variance_estimate=500), {"score": 0.84}),
    "mig": (dict(num_train=600), {"score": 0.17161526811462346}),
    "dci": (dict(num_train=400, num_test=200, n_estimators=20),
            {"disentanglement": 0.8352142943250105, "completeness": 0.8447443353494868}),
    "sap": (dict(num_train=400, num_test=200), {"score": 0.12833333333333338}),
}


@pytest.mark.parametrize("name", list(SAMPLED_PINS))
def test_sampled_metric_pins(name):
    protocol, pinned = SAMPLED_PINS[name]
    result = metrics.METRICS[name](FactorIndices(3, 4, 5), representation, np.random.RandomState(2024), **protocol)
    for figure, value in pinned.items():
        assert result[figure] == pytest.approx(value, abs=1e-6), figure
