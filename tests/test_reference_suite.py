"""The rest of disentanglement_lib's suite (modularity, explicitness, IRS, the unsupervised scores, the downstream
tasks, UDR), each checked on codes whose answer is known: perfect, permuted, mixing two factors, pure noise."""

import numpy as np
import pytest
from scipy.stats import norm

from vae_tf import metrics
from vae_tf.errors import UserError

from conftest import factor_grid, plug_in_entropy


def plug_in_information(a, b):
    return plug_in_entropy(a) + plug_in_entropy(b) - plug_in_entropy(a, b)


# --- modularity --------------------------------------------------------------------------------------------

def test_modularity_of_perfect_and_permuted_codes_is_one():
    factors = factor_grid(4, 3, repeat=5)  # on the grid each copy carries nothing about the other factor: θ = 0 off it
    assert metrics.modularity_from_arrays(factors, factors) == {"score": 1.0, "per_dimension": [1.0, 1.0]}
    permuted = np.column_stack([-2.0 * factors[:, 1], 0.5 * factors[:, 0]])
    assert metrics.modularity_from_arrays(permuted, factors)["score"] == 1.0


def test_modularity_of_a_code_mixing_two_factors():
    # z = v0 + v1 tells about both factors: θ_0 = I(z; v0), θ_1 = I(z; v1) from counts, and by eq. 2 with two
    # factors its modularity is 1 − θ_min² / θ_max². A dimension that carries nothing scores 0 (disentanglement_lib).
    factors = factor_grid(4, 2, repeat=3)
    mixed = factors[:, 0] + factors[:, 1]
    thetas = sorted([plug_in_information(mixed, factors[:, 0]), plug_in_information(mixed, factors[:, 1])])
    codes = np.column_stack([mixed, np.zeros(len(factors))])
    result = metrics.modularity_from_arrays(codes, factors)
    np.testing.assert_allclose(result["per_dimension"], [1 - thetas[0] ** 2 / thetas[1] ** 2, 0.0], rtol=0,
                               atol=1e-12)
    # z = 2 v0 + v1 on two binary factors tells both entirely (θ = log 2 each): the least modular, 0.
    binary = factor_grid(2, 2, repeat=3)
    assert metrics.modularity_from_arrays(2 * binary[:, :1] + binary[:, 1:], binary)["per_dimension"] == [0.0]


def test_modularity_with_the_knn_estimator_on_continuous_factors():
    state = np.random.RandomState(0)
    factors = state.rand(1500, 2)
    perfect = metrics.modularity_from_arrays(factors[:, ::-1] * 4, factors, estimator="knn")
    mixed = metrics.modularity_from_arrays(factors @ [[1, 1], [1, -1]], factors, estimator="knn")
    assert perfect["score"] > 0.99 and mixed["score"] < 0.1
    with pytest.raises(UserError, match="at least 2 factors"):
        metrics.modularity_from_arrays(factors[:, :1], factors[:, :1])
    with pytest.raises(UserError, match="unknown mutual information estimator 'kde'"):
        metrics.modularity_from_arrays(factors, factors, estimator="kde")


# --- explicitness ------------------------------------------------------------------------------------------

def test_explicitness_of_a_binary_factor_is_the_auc_of_the_code_itself():
    # One dimension and a binary factor: the logistic regression's probability is monotone in the code, so its
    # ROC-AUC is that of the code: the share of (positive, negative) test pairs it orders, ties counting half.
    state = np.random.RandomState(0)
    v, v_test = state.randint(2, size=(400, 1)), state.randint(2, size=(300, 1))
    z, z_test = v + 0.8 * state.randn(400, 1), v_test + 0.8 * state.randn(300, 1)
    positive, negative = z_test[v_test == 1], z_test[v_test == 0]
    pairs = positive[:, None] - negative[None, :]
    auc = np.mean(pairs > 0) + 0.5 * np.mean(pairs == 0)
    result = metrics.explicitness_from_arrays(z, v, test_codes=z_test, test_factors=v_test)
    assert result["score"] == pytest.approx(auc, abs=1e-12) and 0.7 < auc < 0.9


def test_explicitness_of_perfect_permuted_and_noise_codes():
    state = np.random.RandomState(0)
    factors = state.randint(4, size=(1500, 2))
    perfect = factors + 0.05 * state.randn(1500, 2)
    assert metrics.explicitness_from_arrays(perfect, factors)["score"] > 0.99
    assert metrics.explicitness_from_arrays(perfect[:, ::-1] * [-3, 1], factors)["score"] > 0.99
    noise = metrics.explicitness_from_arrays(state.randn(1500, 2), factors)
    assert abs(noise["score"] - 0.5) < 0.04  # chance


def test_explicitness_of_a_continuous_factor_is_its_r_squared():
    # z = v + ε: a line explains Var(v) / (Var(v) + σ²) = (1/12) / (1/12 + 0.04) ≈ 0.68 of v.
    state = np.random.RandomState(0)
    v = state.rand(3000, 1)
    z = v + 0.2 * state.randn(3000, 1)
    result = metrics.explicitness_from_arrays(z, v, kinds="continuous")
    assert result["score"] == pytest.approx((1 / 12) / (1 / 12 + 0.04), abs=0.03)


# --- IRS ---------------------------------------------------------------------------------------------------

def test_irs_of_perfect_and_permuted_codes_is_one():
    factors = factor_grid(3, 4, repeat=2)
    assert metrics.irs_from_arrays(factors, factors)["score"] == 1.0
    result = metrics.irs_from_arrays(np.column_stack([factors[:, 1] * -2.0, factors[:, 0] + 1]), factors)
    assert result["score"] == 1.0 and result["parents"] == [1, 0]


def test_irs_of_a_code_mixing_two_factors_by_hand():
    # Binary factors on a grid, z0 = v0 + v1 / 2, z1 = v1. Holding v0 fixed, z0 takes {0, ½} or {1, 1½}: it moves ¼
    # from its group mean; holding v1, {0, 1} or {½, 1½}: ½. Its largest deviation from its mean ¾ is ¾, so
    # IRS(z0, v0) = 1 − ¼ / ¾ = ⅔ and IRS(z0, v1) = ⅓; z1 never moves with v1 fixed: 1. Weighted by the largest
    # deviations (¾ and ½): (⅔ · ¾ + 1 · ½) / (¾ + ½) = 0.8.
    factors = factor_grid(2, 2, repeat=3)
    codes = np.column_stack([factors[:, 0] + factors[:, 1] / 2, factors[:, 1]])
    for quantile in (1.0, 0.99):
        result = metrics.irs_from_arrays(codes, factors, diff_quantile=quantile)
        assert result["score"] == pytest.approx(0.8, abs=1e-12)
        np.testing.assert_allclose(result["per_dimension"], [2 / 3, 1.0], rtol=0, atol=1e-12)
        assert result["parents"] == [0, 1]


def test_irs_of_noise_and_of_collapsed_codes():
    state = np.random.RandomState(0)
    factors = state.randint(5, size=(2000, 2))
    # Noise ignores the factors: the 99th percentile of |z − group mean| (~2.6σ) against the largest of 2,000
    # deviations (~3.5σ): about 0.27.
    noise = metrics.irs_from_arrays(state.randn(2000, 3), factors)
    assert 0.15 < noise["score"] < 0.4
    collapsed = metrics.irs_from_arrays(np.ones((2000, 3)), factors)
    assert collapsed == {"score": 0.0, "num_active_dims": 0, "active_dims": [], "per_dimension": [], "parents": []}


# --- the unsupervised scores -------------------------------------------------------------------------------

def test_gaussian_total_correlation_is_minus_half_log_det_of_the_correlations():
    state = np.random.RandomState(0)
    codes = state.randn(500, 3) @ [[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 2.0]]
    expected = -0.5 * np.log(np.linalg.det(np.corrcoef(codes, rowvar=False)))
    assert metrics.gaussian_total_correlation_from_arrays(codes)["score"] == pytest.approx(expected, rel=1e-10)
    r = np.corrcoef(codes[:, 0], codes[:, 1])[0, 1]
    assert metrics.gaussian_total_correlation_from_arrays(codes[:, :2])["score"] == pytest.approx(
        -0.5 * np.log(1 - r ** 2), rel=1e-10)


def test_gaussian_wasserstein_correlation_of_two_dimensions_in_closed_form():
    # Σ = [[a, c], [c, b]]: W² = 2(a + b) − 2 tr(D^½ Σ D^½)^½, and tr √M = √(tr M + 2 √det M) for a 2 × 2 M ⪰ 0,
    # with tr M = a² + b², det M = ab(ab − c²).
    state = np.random.RandomState(0)
    codes = state.randn(400, 2) @ [[2.0, 0.7], [0.0, 0.5]]
    (a, c), (_, b) = np.cov(codes, rowvar=False)
    expected = 2 * (a + b) - 2 * np.sqrt(a ** 2 + b ** 2 + 2 * np.sqrt(a * b * (a * b - c ** 2)))
    result = metrics.gaussian_wasserstein_correlation_from_arrays(codes)
    assert result["score"] == pytest.approx(expected, rel=1e-9)
    assert result["normalized"] == pytest.approx(expected / (a + b), rel=1e-9)


def test_unsupervised_scores_of_independent_duplicated_and_collapsed_codes():
    signs = factor_grid(2, 2, 2) * 2.0 - 1  # a two-level design: mean 0, covariance exactly diagonal
    for name in ("gaussian_total_correlation", "gaussian_wasserstein_correlation"):
        assert metrics.ARRAY_METRICS[name](signs)["score"] == pytest.approx(0.0, abs=1e-12), name
    duplicated = np.column_stack([signs, signs[:, :1]])
    assert metrics.gaussian_total_correlation_from_arrays(duplicated)["score"] == np.inf
    # A collapsed dimension is independent of everything: it adds nothing.
    collapsed = np.column_stack([signs, np.full(len(signs), 3.0)])
    assert metrics.gaussian_total_correlation_from_arrays(collapsed)["score"] == pytest.approx(0.0, abs=1e-12)


def test_code_mutual_information_of_copies_is_the_binned_entropy():
    state = np.random.RandomState(0)
    z = state.randint(6, size=300).astype(float)  # six values: the 20 bins only relabel them
    assert metrics.code_mutual_information_from_arrays(np.column_stack([z, 2 * z]))["score"] == pytest.approx(
        plug_in_entropy(z), abs=1e-12)
    independent = factor_grid(3, 4, repeat=2).astype(float)
    assert metrics.code_mutual_information_from_arrays(independent)["score"] == pytest.approx(0.0, abs=1e-12)
    knn = metrics.code_mutual_information_from_arrays(state.randn(2000, 3), estimator="knn")
    assert knn["score"] < 0.02  # noise: no shared information
    with pytest.raises(UserError, match="at least 2 dimensions"):
        metrics.code_mutual_information_from_arrays(z[:, None])


def test_unsupervised_scores_need_no_factors():
    codes = np.random.RandomState(0).randn(200, 3)
    names = ["gaussian_total_correlation", "gaussian_wasserstein_correlation", "code_mutual_information"]
    assert list(metrics.evaluate_arrays(codes, None, names)) == names
    with pytest.raises(UserError, match="factors are needed by mig: pass factors"):
        metrics.evaluate_arrays(codes, None, ["mig", "gaussian_total_correlation"])
    with pytest.raises(UserError, match="at least 2 rows"):
        metrics.evaluate_arrays(codes[:1], None, names)


# --- the downstream tasks ----------------------------------------------------------------------------------

def test_boosted_trees_learn_a_perfect_code_and_not_noise():
    state = np.random.RandomState(0)
    factors = state.randint(4, size=(1300, 2))
    perfect = metrics.downstream_boosted_trees_from_arrays(factors[:, ::-1] * 1.5, factors, train_sizes=(10, 100, 800),
                                                           n_estimators=20)
    assert perfect["by_size"]["800"]["mean_test"] == 1.0 and perfect["score"] == 1.0
    assert perfect["by_size"]["10"]["mean_test"] < perfect["by_size"]["100"]["mean_test"]
    assert perfect["efficiency"] == perfect["by_size"]["100"]["mean_test"]
    noise = metrics.downstream_boosted_trees_from_arrays(state.randn(1300, 2), factors, train_sizes=(800,),
                                                         n_estimators=20)
    assert abs(noise["score"] - 0.25) < 0.05 and "efficiency" not in noise  # chance over 4 classes


def test_logistic_regression_reaches_the_bayes_accuracy():
    # z = v + N(0, ½²) with v uniform on {0, 1}: the best rule, z > ½, is right with probability Φ(1) ≈ 0.841.
    state = np.random.RandomState(0)
    v = state.randint(2, size=(2500, 1))
    z = v + 0.5 * state.randn(2500, 1)
    result = metrics.downstream_logistic_regression_from_arrays(z, v, train_sizes=(500,), test_size=0.6)
    assert result["score"] == pytest.approx(norm.cdf(1.0), abs=0.025)


def test_downstream_tasks_need_enough_rows():
    codes, factors = np.random.RandomState(0).randn(900, 2), np.arange(900)[:, None] % 3
    with pytest.raises(UserError, match=r"trains on up to 10000 rows .* but 600 are left after holding out"):
        metrics.downstream_boosted_trees_from_arrays(codes, factors)
    with pytest.raises(UserError, match="train_sizes must list training-set sizes, integers >= 5"):
        metrics.downstream_logistic_regression_from_arrays(codes, factors, train_sizes=(3, 100))


# --- UDR ---------------------------------------------------------------------------------------------------

def two_level_design(dimensions, repeat=10):
    """Codes of ±1 in every combination: each dimension has mean 0 and variance 1, and the dimensions are exactly
    uncorrelated, so a Lasso on them has the closed form: each coefficient soft-thresholded by alpha."""
    return factor_grid(*[2] * dimensions, repeat=repeat) * 2.0 - 1


def test_udr_of_matching_runs_is_one_minus_alpha_in_any_order_sign_and_scale():
    codes = two_level_design(3)
    permuted = codes[:, [2, 0, 1]] * [1.0, -3.0, 0.5]
    result = metrics.udr_from_arrays([codes, permuted, codes])
    np.testing.assert_allclose(result["model_scores"], [0.9] * 3, rtol=0, atol=1e-9)
    assert result["pairwise"][0][0] is None and result["informative_dims"] == [3, 3, 3]
    spearman = metrics.udr_from_arrays([codes, permuted], correlation="spearman")
    np.testing.assert_allclose(spearman["model_scores"], [1.0, 1.0], rtol=0, atol=1e-12)


def test_udr_of_a_run_mixing_two_dimensions_in_closed_form():
    # Run b rotates a's first two dimensions by 45°: each is predicted by two of a's with weight 1/√2 − α, each
    # scoring (1/√2 − α)² / (2 (1/√2 − α)) = (1/√2 − α) / 2; the third matches (1 − α). Averaged over 3 dimensions.
    a = two_level_design(3)
    b = np.column_stack([(a[:, 0] + a[:, 1]) / np.sqrt(2), (a[:, 0] - a[:, 1]) / np.sqrt(2), a[:, 2]])
    expected = (2 * (1 / np.sqrt(2) - 0.1) / 2 + 0.9) / 3
    np.testing.assert_allclose(metrics.udr_from_arrays([a, b])["model_scores"], [expected] * 2, rtol=0, atol=1e-9)


def test_udr_of_unrelated_runs_is_zero_and_uninformative_dimensions_are_left_out():
    state = np.random.RandomState(0)
    noise = metrics.udr_from_arrays([state.randn(1000, 4), state.randn(1000, 4)])  # |correlations| ≪ alpha
    assert noise["model_scores"] == [0.0, 0.0]
    codes = two_level_design(3)
    # A dimension whose KL is below the threshold is ignored: on both sides only dimension 0 is informative.
    result = metrics.udr_from_arrays([codes, codes], kl=[[1.0, 0.001, 0.002], [1.0, 0.005, 0.0]])
    assert result["informative_dims"] == [1, 1]
    np.testing.assert_allclose(result["model_scores"], [0.9, 0.9], rtol=0, atol=1e-9)
    assert metrics.udr_from_arrays([codes, codes], kl=[[0.0] * 3, [1.0] * 3])["model_scores"] == [0.0, 0.0]


def test_udr_takes_a_list_of_runs_of_the_same_observations():
    codes = two_level_design(2)
    for runs, message in (([codes], "at least 2 codes arrays"), (codes, "at least 2 codes arrays"),
                          ([codes, codes[:-1]], "the runs have \\[40, 39\\] rows"),
                          ([codes, np.where(codes > 0, np.nan, codes)], "codes of run 1 hold NaN")):
        with pytest.raises(UserError, match=message):
            metrics.udr_from_arrays(runs)
    with pytest.raises(UserError, match="kl must hold one value per dimension of each run"):
        metrics.udr_from_arrays([codes, codes], kl=[[1.0], [1.0, 1.0]])
    with pytest.raises(UserError, match="correlation must be one of lasso, spearman"):
        metrics.udr_from_arrays([codes, codes], correlation="pearson")
