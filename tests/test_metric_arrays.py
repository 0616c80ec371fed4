"""Metrics from plain (codes, factors) arrays: the same functions the samplers call, factor kinds, continuous factors,
data sets without a full factor grid, the mutual information estimators against closed forms, UDR of runs with dead
dimensions, bad input, and the metrics page's array snippets. The command, python -m vae_tf.metrics, is tested in
test_metrics_command.py."""

import re
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from vae_tf import metrics
from vae_tf.errors import UserError
from vae_tf.metrics.information import mutual_information
from vae_tf.metrics.ranking import rank_correlations

from conftest import ROOT, FactorIndices, factor_grid, plug_in_entropy


def noisy(x):
    x = np.asarray(x, dtype=np.float64)
    return np.column_stack([x[:, 0] + 0.3 * np.sin(5 * x[:, 1]), x[:, 1] - 0.2 * x[:, 0], np.cos(x.sum(axis=1))])


# --- the samplers call the array functions -----------------------------------------------------------------

def test_sampled_metrics_are_the_array_metrics_of_their_draws():
    ground_truth = FactorIndices(3, 4)
    state = np.random.RandomState(5)
    factors = ground_truth.sample_factors(600, state)
    test_factors = ground_truth.sample_factors(300, state)
    arrays = metrics.dci_from_arrays(noisy(factors), factors, test_codes=noisy(test_factors),
                                     test_factors=test_factors, random_state=state, n_estimators=10)
    assert metrics.dci(ground_truth, noisy, np.random.RandomState(5), num_train=600, num_test=300,
                       n_estimators=10) == arrays
    factors = ground_truth.sample_factors(600, np.random.RandomState(2))
    assert metrics.mig(ground_truth, noisy, np.random.RandomState(2), num_train=600) == \
        metrics.mig_from_arrays(noisy(factors), factors)


def test_mig_ignores_row_order_and_held_out_metrics_split_rows_at_random():
    # A factor grid in sorted order: holding out the last rows would test on factor values never trained on.
    factors = np.repeat(factor_grid(3, 4), 50, axis=0)
    codes = factors + 0.05 * np.random.RandomState(0).randn(*factors.shape)
    order = np.random.RandomState(1).permutation(len(factors))
    assert metrics.mig_from_arrays(codes, factors) == metrics.mig_from_arrays(codes[order], factors[order])
    result = metrics.dci_from_arrays(codes, factors, n_estimators=10)
    assert result["informativeness_test"] == 1.0 and result["disentanglement"] > 0.95


# --- data sets without a full factor grid ------------------------------------------------------------------

def test_mig_of_correlated_factors_matches_plug_in_entropies():
    # Factor 1 copies factor 0 on 70% of the rows (whole combinations missing or rare): the identity code's second
    # best dimension for each factor is the other factor's copy, so per factor
    # MIG = (H(v_k) − I(v_0; v_1)) / H(v_k), computed here from counts alone (values < 20 bins: binning relabels).
    state = np.random.RandomState(0)
    first = state.randint(4, size=3000)
    second = np.where(state.rand(3000) < 0.7, first, state.randint(4, size=3000))
    factors = np.column_stack([first, second])
    h0, h1, joint = plug_in_entropy(first), plug_in_entropy(second), plug_in_entropy(first, second)
    shared = h0 + h1 - joint
    result = metrics.mig_from_arrays(factors.astype(float), factors)
    np.testing.assert_allclose(result["per_factor"], [(h0 - shared) / h0, (h1 - shared) / h1], rtol=0, atol=1e-12)
    assert result["top_dims"] == [0, 1]


def test_random_continuous_factors_are_scored_by_the_array_metrics():
    state = np.random.RandomState(0)
    factors = state.rand(900, 2)  # no grid at all: every row its own combination
    perfect = metrics.evaluate_arrays(factors * [3.0, -2.0], factors, protocols={"dci": {"n_estimators": 20}})
    swapped = metrics.evaluate_arrays(factors[:, ::-1], factors, protocols={"dci": {"n_estimators": 20}})
    noise = metrics.evaluate_arrays(state.rand(900, 2), factors, protocols={"dci": {"n_estimators": 20}})
    assert perfect["mig"]["score"] > 0.9 and perfect["mig"]["top_dims"] == [0, 1]
    assert swapped["mig"]["top_dims"] == [1, 0] and swapped["mig"]["score"] == pytest.approx(perfect["mig"]["score"])
    assert perfect["dci"]["informativeness_test"] > 0.97 and perfect["dci"]["disentanglement"] > 0.9
    assert noise["dci"]["informativeness_test"] < 0.05 and noise["mig"]["score"] < 0.05
    assert perfect["sap"]["score"] > 0.99 and noise["sap"]["score"] < 0.01


# --- factor kinds and continuous factors -------------------------------------------------------------------

def test_kinds_are_inferred_from_the_values_or_given():
    factors = np.column_stack([np.arange(10) % 3, (np.arange(10) % 2).astype(float), np.linspace(0, 1, 10)])
    assert metrics.checks.factor_kinds(factors) == ["discrete", "discrete", "continuous"]
    assert metrics.checks.factor_kinds(factors, "continuous") == ["continuous"] * 3
    for wrong in ("discret", ["discrete"], ["discrete", "continuous", "ordinal"]):
        with pytest.raises(UserError, match="kinds must be"):
            metrics.mig_from_arrays(factors, factors, kinds=wrong)


def test_a_discrete_factor_may_be_labelled_by_any_numbers():
    state = np.random.RandomState(0)
    classes = state.randint(4, size=(400, 2))
    codes = classes + 0.2 * state.randn(400, 2)
    values = np.array([0.5, 0.6, 0.75, 1.0])[classes]  # e.g. dSprites' scale values rather than their indices
    for name in ("mig", "dci", "sap"):
        assert metrics.evaluate_arrays(codes, values, [name], kinds="discrete")[name] == \
            metrics.evaluate_arrays(codes, classes, [name])[name], name


def test_mig_bins_a_continuous_factor_by_the_stated_rule():
    # The stated rule: num_bins equal-width bins over the factor's sample range, as for the codes.
    state = np.random.RandomState(0)
    factor = state.randn(2000, 1)
    codes = np.column_stack([factor[:, 0] + 0.3 * state.randn(2000), state.randn(2000)])
    for bins in (20, 7):
        edges = np.linspace(factor.min(), factor.max(), bins + 1)
        binned = np.clip(np.searchsorted(edges, factor[:, 0], side="right"), 1, bins)[:, None]
        assert metrics.mig_from_arrays(codes, factor, num_bins=bins) == \
            metrics.mig_from_arrays(codes, binned, kinds="discrete", num_bins=bins)


def test_continuous_probes_regress_and_report_r_squared():
    state = np.random.RandomState(0)
    factor = state.rand(2000, 1)
    noise = 0.1 * state.randn(2000)
    codes = np.column_stack([factor[:, 0] + noise, state.rand(2000)])
    # SAP's continuous predictability is the squared correlation of the training rows.
    sap = metrics.sap_from_arrays(codes, factor, kinds="continuous", random_state=0)
    train = np.random.RandomState(0)
    held = metrics.checks.train_and_test("sap", codes, factor, "continuous", None, None, 1 / 3, train)
    r = np.corrcoef(held[0][:, 0], held[1][:, 0])[0, 1]
    assert sap["score_matrix"][0][0] == pytest.approx(r ** 2, abs=1e-12)
    # DCI's regressor explains Var(v) / (Var(v) + σ²) of the factor at best: 1/12 / (1/12 + 0.01) ≈ 0.89.
    dci = metrics.dci_from_arrays(codes, factor, kinds="continuous", n_estimators=50)
    assert (1 / 12) / (1 / 12 + 0.01) - 0.06 < dci["informativeness_test"] < (1 / 12) / (1 / 12 + 0.01) + 0.02
    assert dci["completeness"] > 0.6  # the noise dimension gets little importance


# --- the mutual information estimators against closed forms ------------------------------------------------

@pytest.mark.parametrize("rho", [0.0, 0.6, 0.9])
def test_mutual_information_of_correlated_gaussians(rho):
    # I(X; Y) = −½ log(1 − ρ²) nats for a bivariate normal of correlation ρ. Averaged over 8 samples of 2,000, the
    # k-NN estimate's spread (~0.02 for one sample of 4,000) falls to ~0.008; the histogram estimate adds the plug-in
    # bias, up to (20 − 1)² / (2 · 2000) ≈ 0.09 where no information is lost to binning (ρ = 0).
    truth = -0.5 * np.log(1 - rho ** 2)
    state = np.random.RandomState(0)
    samples = [state.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=2000) for _ in range(8)]
    knn, histogram = ([mutual_information(z[:, :1], z[:, 1:], ["continuous"], estimator, 20, np.random.RandomState(0))
                       [0, 0] for z in samples] for estimator in ("knn", "histogram"))
    assert abs(np.mean(knn) - truth) < 0.03
    assert -0.05 < np.mean(histogram) - truth < (19 ** 2) / (2 * 2000) + 0.01


def test_knn_mutual_information_with_a_discrete_factor():
    # z = v + N(0, σ²) with v uniform on {0, 1}: I = h(z) − h(z | v), h(z | v) = ½ log(2πeσ²), h(z) by quadrature of
    # the two-component mixture's density.
    sigma = 0.5
    grid = np.linspace(-6, 7, 200001)
    density = 0.5 * (np.exp(-grid ** 2 / (2 * sigma ** 2)) + np.exp(-(grid - 1) ** 2 / (2 * sigma ** 2))) / (
        sigma * np.sqrt(2 * np.pi))
    truth = -np.sum(density * np.log(density)) * (grid[1] - grid[0]) - 0.5 * np.log(2 * np.pi * np.e * sigma ** 2)
    state = np.random.RandomState(0)
    estimates = []
    for _ in range(8):
        v = state.randint(2, size=2000)
        z = v + sigma * state.randn(2000)
        estimates.append(mutual_information(z[:, None], v[:, None].astype(float), ["discrete"], "knn", 20,
                                            np.random.RandomState(0))[0, 0])
    assert abs(np.mean(estimates) - truth) < 0.03


def test_histogram_information_of_discrete_pairs_is_the_plug_in_value():
    state = np.random.RandomState(0)
    v = state.randint(3, size=(500, 1))
    z = (v + state.randint(2, size=(500, 1))).astype(float)  # 4 values: 20 bins only relabel them
    expected = plug_in_entropy(z[:, 0]) + plug_in_entropy(v[:, 0]) - plug_in_entropy(z[:, 0], v[:, 0])
    assert mutual_information(z, v.astype(float), ["discrete"], "histogram", 20, None)[0, 0] == \
        pytest.approx(expected, abs=1e-12)


# --- UDR of runs with dead dimensions ----------------------------------------------------------------------

def test_rank_correlations_are_spearmans_rho_and_zero_for_a_constant_column():
    state = np.random.RandomState(0)
    a = np.column_stack([state.randint(5, size=200), state.randn(200), np.full(200, 3.0)])  # ties, none, constant
    b = np.column_stack([a[:, 0] + state.randint(3, size=200), state.randn(200)])
    expected = [[stats.spearmanr(a[:, i], b[:, j]).statistic if i < 2 else 0.0 for j in range(2)] for i in range(3)]
    np.testing.assert_allclose(rank_correlations(a, b), expected, rtol=0, atol=1e-12)


def matching_runs_with_a_dead_dimension(position):
    """Two runs of ±1 codes in every combination (mean 0, variance 1, exactly uncorrelated dimensions), the second
    the first's 3 dimensions reordered, flipped and scaled, each with a constant (dead) dimension inserted at
    `position`: a Lasso matches them with coefficients 1 − α = 0.9, rank correlations with 1 (0 off the match)."""
    live = factor_grid(2, 2, 2, repeat=10) * 2.0 - 1
    dead = np.full((len(live), 1), 0.25)
    insert = {0: 0, 1: 1, -1: 3}[position]
    first = np.hstack([live[:, :insert], dead, live[:, insert:]])
    moved = live[:, [2, 0, 1]] * [1.0, -3.0, 0.5]
    second = np.hstack([moved[:, :insert], dead, moved[:, insert:]])
    return first, second


@pytest.mark.parametrize("position", [0, 1, -1])
@pytest.mark.parametrize("correlation, matched", [("lasso", 0.9), ("spearman", 1.0)])
def test_udr_of_runs_with_a_dead_dimension_anywhere(position, correlation, matched):
    first, second = matching_runs_with_a_dead_dimension(position)
    result = metrics.udr_from_arrays([first, second, first], correlation=correlation)
    np.testing.assert_allclose(result["model_scores"], [matched] * 3, rtol=0, atol=1e-9)
    assert result["informative_dims"] == [3, 3, 3]
    # A dimension masked by its KL is zeroed whatever its codes: the same scores.
    noisy_dead = first.copy()
    noisy_dead[:, position] = np.random.RandomState(0).randn(len(first))
    kl = np.where(np.arange(4) == np.arange(4)[position], 0.001, 1.0)
    masked = metrics.udr_from_arrays([noisy_dead, second], kl=[kl, kl], correlation=correlation)
    np.testing.assert_allclose(masked["model_scores"], [matched] * 2, rtol=0, atol=1e-9)
    assert masked["informative_dims"] == [3, 3]


# --- bad input ---------------------------------------------------------------------------------------------

CODES = np.random.RandomState(0).randn(60, 3)
FACTORS = np.random.RandomState(1).randint(3, size=(60, 2))


@pytest.mark.parametrize("codes, factors, message", [
    (CODES[:50], FACTORS, "codes have 50 rows but factors have 60"),
    (np.where(np.arange(60)[:, None] == 7, np.nan, CODES), FACTORS, "NaN or inf in 1 of 60 rows .the first is row 7"),
    (np.full((60, 3), np.inf), FACTORS, "codes hold NaN or inf"),
    (CODES, np.column_stack([FACTORS, np.full(60, 2)]), "factor 2 takes one value .2. in all 60 rows"),
    (CODES[:, 0], FACTORS, r"reshape\(-1, 1\)"),
    (CODES.astype(str), FACTORS, "dtype <U"),
    (CODES, FACTORS[:, :0], "at least one row and one column"),
    (CODES, np.where(np.arange(60)[:, None] == 3, np.nan, FACTORS), "factors hold NaN or inf in 1 of 60 rows .the "
                                                                    "first is row 3.; drop those rows$"),
    (CODES[:1], FACTORS[:1], "got 1 observation: a metric compares observations, it needs at least 2 rows"),
    (CODES.T, FACTORS, r"codes have 3 rows but factors have 60: row i of both must describe the same observation; "
                       r"codes of shape \[3, 60\] look transposed: transpose them to \[60, 3\] \(codes.T\)$"),
    (CODES, FACTORS.T, r"codes have 60 rows but factors have 2: .*; factors of shape \[2, 60\] look transposed: "
                       r"transpose them to \[60, 2\] \(factors.T\)$"),
    (CODES[:, :2].T, FACTORS, r"codes of shape \[2, 60\] look transposed"),  # factors.T would leave 2 rows, not 60
])
@pytest.mark.parametrize("name", ["mig", "dci", "sap"])
def test_bad_arrays_raise_one_line(name, codes, factors, message):
    with pytest.raises(UserError, match=message) as raised:
        metrics.evaluate_arrays(codes, factors, [name])
    assert "\n" not in str(raised.value)


def test_bad_held_out_sets_and_protocols_raise_user_errors():
    with pytest.raises(UserError, match="test_codes and test_factors together"):
        metrics.dci_from_arrays(CODES, FACTORS, test_codes=CODES)
    with pytest.raises(UserError, match="test_codes have 2 columns but codes 3"):
        metrics.sap_from_arrays(CODES, FACTORS, test_codes=CODES[:, :2], test_factors=FACTORS)
    with pytest.raises(UserError, match="test_codes have 59 rows but test_factors have 60"):
        metrics.sap_from_arrays(CODES, FACTORS, test_codes=CODES[1:], test_factors=FACTORS)
    with pytest.raises(UserError, match="test_size .* between 0 and 1"):
        metrics.dci_from_arrays(CODES, FACTORS, test_size=1.5)
    with pytest.raises(UserError, match="holds out 1 of the 2 rows .* leaving 1 to train them on"):
        metrics.sap_from_arrays(CODES[:2], [[0, 0], [1, 1]])
    with pytest.raises(UserError, match="num_bins must be an integer >= 1"):
        metrics.mig_from_arrays(CODES, FACTORS, num_bins=0)
    with pytest.raises(UserError, match="unknown dci_from_arrays protocol parameter.* num_train"):
        metrics.evaluate_arrays(CODES, FACTORS, ["dci"], protocols={"dci": {"num_train": 10}})
    with pytest.raises(UserError, match="unknown metric 'mgi'"):
        metrics.evaluate_arrays(CODES, FACTORS, ["mgi"])


@pytest.mark.parametrize("name", ["beta_vae", "factor_vae"])
def test_intervention_metrics_say_why_they_need_a_sampler(name):
    with pytest.raises(UserError, match=f"{name} needs a sampler: it draws batches of observations that share one "
                                        f"factor's value") as raised:
        metrics.evaluate_arrays(CODES, FACTORS, [name])
    assert "\n" not in str(raised.value)


def test_quick_and_protocols_apply_to_the_array_metrics():
    assert metrics.array_protocol_of("dci") == {"test_size": 1 / 3, "n_estimators": 100}
    assert metrics.array_protocol_of("dci", quick=True) == {"test_size": 1 / 3, "n_estimators": 10}
    assert metrics.array_protocol_of("mig", quick=True, num_bins=5) == {"num_bins": 5}
    fewer = metrics.evaluate_arrays(CODES, FACTORS, ["mig"], protocols={"mig": {"num_bins": 5}})
    assert fewer["mig"] == metrics.mig_from_arrays(CODES, FACTORS, num_bins=5)


def test_importing_the_metrics_does_not_import_tensorflow():
    code = ("import vae_tf.metrics, vae_tf.metrics.command, sys; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_array_snippets_of_the_metrics_page_run_as_printed(capsys):
    # Every name they use is defined in them. The sampler's snippet loads a trained run and TensorFlow (a minute):
    # it is left to the hand.
    snippets = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8"), re.S)
    arrays = [snippet for snippet in snippets if "load_run" not in snippet]
    assert len(arrays) == len(snippets) - 1 == 2
    for snippet in arrays:
        exec(compile(snippet, "docs/metrics.md", "exec"), {})
    assert "| my model |" in capsys.readouterr().out
