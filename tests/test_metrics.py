"""Disentanglement metrics and baselines: identity ~1, constant ~0 (or chance), duplicated / mixed codes lower."""

import numpy as np
import pytest

from vae_tf import baselines, metrics
from vae_tf.errors import UserError
from vae_tf.shapes2d import Shapes2DGroundTruth

from conftest import FactorIndices, factor_grid


GROUND_TRUTH = FactorIndices(4, 5, 6)  # observed as float [n, 3]

# Small protocols: a few thousand cheap observations per metric.
SMALL = {"beta_vae": dict(batch_size=16, num_train=200, num_eval=100),
         "factor_vae": dict(batch_size=16, num_train=200, num_eval=100, num_variance_estimate=1000),
         "mig": dict(num_train=2000),
         "dci": dict(num_train=500, num_test=200, n_estimators=10),
         "sap": dict(num_train=1000, num_test=500),
         "modularity": dict(num_train=1000),
         "explicitness": dict(num_train=500, num_test=300),
         "irs": dict(num_train=1000),
         "gaussian_total_correlation": dict(num_train=500),
         "gaussian_wasserstein_correlation": dict(num_train=500),
         "code_mutual_information": dict(num_train=500),
         "downstream_logistic_regression": dict(train_sizes=(10, 50), num_test=100),
         "downstream_boosted_trees": dict(train_sizes=(10, 100), num_test=200, n_estimators=5)}


def identity(x):
    return np.asarray(x, dtype=np.float64)


def constant(x):
    return np.zeros((len(x), 3))


def duplicated(x):
    """Factor 0 copied into a fourth dimension."""
    return np.concatenate([x, x[:, :1]], axis=1)


def mixed(x):
    """Factors 0 and 1 rotated into each other's dimensions; factor 2 left alone."""
    return np.stack([x[:, 0] + x[:, 1], x[:, 0] - x[:, 1], x[:, 2]], axis=1)


def scores(representation_fn, ground_truth=GROUND_TRUTH, seed=0):
    return metrics.evaluate(ground_truth, representation_fn, seed, protocols=SMALL)


@pytest.fixture(scope="module")
def perfect():
    return scores(identity)


def test_identity_scores_near_one(perfect):
    assert perfect["beta_vae"]["score"] >= 0.95
    assert perfect["factor_vae"]["score"] >= 0.95 and perfect["factor_vae"]["num_active_dims"] == 3
    assert perfect["mig"]["score"] >= 0.9 and perfect["mig"]["top_dims"] == [0, 1, 2]
    assert perfect["dci"]["disentanglement"] >= 0.9 and perfect["dci"]["completeness"] >= 0.9
    assert perfect["dci"]["informativeness_test"] >= 0.9
    # The published SAP fits a 1-D linear classifier per dimension: it cannot separate 4-6 ordered classes,
    # so a perfect code scores well below 1 on discrete factors; on the continuous variant it is ~1.
    assert perfect["sap"]["score"] >= 0.3
    continuous = metrics.sap(GROUND_TRUTH, identity, np.random.RandomState(0), num_train=1000, num_test=10,
                             continuous_factors=True)
    assert continuous["score"] >= 0.95
    # Independent factors, each copied once: modular, explicit, robust, and the dimensions independent.
    assert perfect["modularity"]["score"] >= 0.95 and perfect["explicitness"]["score"] >= 0.99
    assert perfect["irs"]["score"] == 1.0 and perfect["irs"]["parents"] == [0, 1, 2]
    assert perfect["gaussian_total_correlation"]["score"] <= 0.02
    assert perfect["gaussian_wasserstein_correlation"]["normalized"] <= 0.02
    assert perfect["code_mutual_information"]["score"] <= 0.05  # the plug-in bias of 4-6 values on 500 codes
    assert "downstream_boosted_trees" not in perfect  # the downstream tasks run when named
    downstream = metrics.evaluate(GROUND_TRUTH, identity, names=["downstream_boosted_trees"], protocols=SMALL)
    assert downstream["downstream_boosted_trees"]["score"] == 1.0


def test_constant_scores_zero_or_chance():
    result = scores(constant)
    assert result["beta_vae"]["score"] <= 1 / 3 + 0.15  # chance: a classifier that sees no feature
    assert result["factor_vae"] == {"score": 0.0, "train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    for name in ("mig", "dci", "sap", "modularity", "irs", "gaussian_total_correlation",
                 "gaussian_wasserstein_correlation", "code_mutual_information"):
        assert result[name]["score"] <= 0.05, name
    assert result["explicitness"]["score"] == 0.5  # every class equally likely whatever the code


def test_duplicated_factor_lowers_mig_and_completeness(perfect):
    result = scores(duplicated)
    assert result["mig"]["score"] <= perfect["mig"]["score"] - 0.25
    assert result["mig"]["per_factor"][0] <= 0.1  # the duplicated factor has no gap at all
    assert result["dci"]["completeness"] <= perfect["dci"]["completeness"] - 0.1
    assert result["sap"]["per_factor"][0] <= 0.05


def test_mixed_factors_lower_dci_sap_and_mig(perfect):
    result = scores(mixed)
    assert result["dci"]["disentanglement"] <= perfect["dci"]["disentanglement"] - 0.2
    assert result["sap"]["score"] <= perfect["sap"]["score"] - 0.15
    assert result["mig"]["score"] <= perfect["mig"]["score"] - 0.3
    assert result["factor_vae"]["score"] <= perfect["factor_vae"]["score"] - 0.2


def noisy(x):
    """A deterministic but imperfect code, so that results depend on the sample."""
    x = np.asarray(x, dtype=np.float64)
    return x @ np.array([[1.0, 0.5, 0.0], [-0.5, 1.0, 0.2], [0.0, 0.3, 1.0]]) + np.sin(7 * x)


def test_fixed_seed_gives_identical_results_independent_of_other_metrics():
    first, second = scores(noisy, seed=3), scores(noisy, seed=3)
    assert first == second
    alone = metrics.evaluate(GROUND_TRUTH, noisy, 3, names=["mig"], protocols=SMALL)
    assert alone["mig"] == first["mig"]
    other = scores(noisy, seed=4)
    assert other["mig"] != first["mig"]


def test_results_do_not_depend_on_chunking(monkeypatch):
    before = scores(noisy)
    monkeypatch.setattr(metrics.sampled, "CHUNK_IMAGES", 40)  # under one β-VAE group (2 × 16), a multiple of nothing
    assert scores(noisy) == before


def test_dci_fits_its_factors_in_threads_with_the_sequential_result(monkeypatch):
    monkeypatch.setattr(metrics.probes, "FIT_THREADS", 3)
    threaded = metrics.dci(GROUND_TRUTH, noisy, np.random.RandomState(5), **SMALL["dci"])
    monkeypatch.setattr(metrics.probes, "FIT_THREADS", 1)
    assert metrics.dci(GROUND_TRUTH, noisy, np.random.RandomState(5), **SMALL["dci"]) == threaded


def test_observations_are_encoded_in_large_chunks():
    calls = []

    def counting(x):
        calls.append(len(x))
        return identity(x)

    metrics.beta_vae(GROUND_TRUTH, counting, np.random.RandomState(0), **SMALL["beta_vae"])
    assert sum(calls) == 300 * 16 * 2 and len(calls) <= 4 and max(calls) <= metrics.sampled.CHUNK_IMAGES


def test_results_are_json_ready(perfect):
    import json

    assert json.loads(json.dumps(perfect)) == perfect
    assert all(isinstance(result["score"], float) for result in perfect.values())


@pytest.mark.parametrize("representation_fn, message", [
    (lambda x: identity(x)[:-1], "rows"),
    (lambda x: identity(x)[:, :, None], "2-D"),
    (lambda x: np.where(np.arange(len(x))[:, None] == 3, np.nan, identity(x)), "NaN"),
    (lambda x: np.full((len(x), 3), np.inf), "inf"),
    (lambda x: np.zeros((len(x), 0)), "0 dimensions"),
])
@pytest.mark.parametrize("name", list(metrics.METRICS))
def test_bad_codes_raise_user_error(name, representation_fn, message):
    with pytest.raises(UserError, match=message):
        metrics.METRICS[name](GROUND_TRUTH, representation_fn, np.random.RandomState(0), **SMALL[name])


def test_codes_of_changing_width_raise_user_error():
    calls = []

    def growing(x):
        calls.append(1)
        return np.zeros((len(x), len(calls))) + identity(x)[:, :1]

    with pytest.raises(UserError, match="different widths"):
        metrics.dci(GROUND_TRUTH, growing, np.random.RandomState(0), **SMALL["dci"])


def test_bad_protocols_raise_user_error():
    with pytest.raises(UserError, match="num_train"):  # names the known keywords
        metrics.mig(GROUND_TRUTH, identity, np.random.RandomState(0), num_trian=100)
    with pytest.raises(UserError, match="bins"):
        metrics.evaluate(GROUND_TRUTH, identity, names=["mig"], protocols={"mig": {"bins": 10}})
    with pytest.raises(UserError, match="batch_size"):
        metrics.factor_vae(GROUND_TRUTH, identity, np.random.RandomState(0), batch_size=1)
    with pytest.raises(UserError, match="unknown metric"):
        metrics.evaluate(GROUND_TRUTH, identity, names=["mgi"])
    # Checked before any observation is drawn or encoded:
    for name, protocol, message in (("modularity", dict(estimator="kde"), "estimator 'kde'; choose from histogram"),
                                    ("code_mutual_information", dict(estimator="ksg"), "estimator 'ksg'"),
                                    ("irs", dict(diff_quantile=1.5), "diff_quantile must be a number in .0, 1.")):
        with pytest.raises(UserError, match=message):
            metrics.METRICS[name](GROUND_TRUTH, lambda x: pytest.fail("encoded"), np.random.RandomState(0), **protocol)


def test_protocols_are_the_published_ones():
    """disentanglement_lib's unsupervised_study_v1 metric_configs/*.gin (IRS: config/sample/irs/irs.gin)."""
    sizes = (10, 100, 1000, 10000)
    assert metrics.PROTOCOLS == {
        "beta_vae": dict(batch_size=64, num_train=10000, num_eval=5000),
        "factor_vae": dict(batch_size=64, num_train=10000, num_eval=5000, num_variance_estimate=10000,
                           prune_threshold=0.05),
        "mig": dict(num_train=10000, num_bins=20),
        "dci": dict(num_train=10000, num_test=5000, n_estimators=100),
        "sap": dict(num_train=10000, num_test=5000, continuous_factors=False),
        "modularity": dict(num_train=10000, num_bins=20, estimator="histogram"),
        "explicitness": dict(num_train=10000, num_test=5000),
        "irs": dict(num_train=10000, num_bins=20, diff_quantile=0.99),
        "gaussian_total_correlation": dict(num_train=10000),
        "gaussian_wasserstein_correlation": dict(num_train=10000),
        "code_mutual_information": dict(num_train=10000, num_bins=20, estimator="histogram"),
        "downstream_logistic_regression": dict(train_sizes=sizes, num_test=5000),
        "downstream_boosted_trees": dict(train_sizes=sizes, num_test=5000, n_estimators=100)}
    for name, quick in metrics.QUICK.items():
        assert set(quick) <= set(metrics.PROTOCOLS[name])
        needed = metrics.SUITE[name].images  # observations rendered and encoded under a protocol
        assert needed(metrics.protocol_of(name, quick=True)) < needed(metrics.protocol_of(name)) / 3


def test_progress_bar_counts_every_encoded_observation(capsys):
    result = metrics.evaluate(GROUND_TRUTH, identity, names=["mig"], progress=True, protocols={"mig": SMALL["mig"]})
    assert result["mig"]["score"] >= 0.9
    assert "2000/2000" in capsys.readouterr().err


def test_format_table():
    table = metrics.format_table({"identity": {"mig": {"score": 1.0}, "dci": {"score": 0.98765}},
                                  "pca": {"mig": {"score": 0.0625}}})
    assert table.splitlines() == ["| representation | mig | dci |", "|---|---:|---:|",
                                  "| identity | 1.000 | 0.988 |", "| pca | 0.062 | – |"]


# --- exact values ------------------------------------------------------------------------------------------

class GridFactors(FactorIndices):
    """Factors of sizes 2 and 4 whose samples hold every combination equally often, shuffled: the empirical
    distribution is exactly uniform and independent, so plug-in entropies are exactly log 2 and log 4."""

    def __init__(self):
        super().__init__(2, 4)

    def sample_factors(self, num, random_state):
        assert num % 8 == 0, "ask for a multiple of the 8 combinations"
        return random_state.permutation(factor_grid(2, 4, repeat=num // 8))


def copies_and_coarse(x):
    """Both factors copied, then factor 1 at half resolution (x1 // 2: two levels)."""
    x = identity(x)
    return np.concatenate([x, x[:, 1:] // 2], axis=1)


def test_mig_divides_each_gap_by_its_factors_entropy():
    # Each code takes at most 4 values at least range / 3 apart, so the 20 equal-width bins put every value in
    # its own bin: binning only relabels, and the plug-in informations are those of the codes themselves.
    # I(code; factor) [code, factor]: the copies give H(factor) = log 2 and log 4; the coarse code carries
    # H(x1 // 2) = log 2 of factor 1 and, factors being independent on the grid, nothing of factor 0.
    log2, log4 = np.log(2), np.log(4)
    information = np.array([[log2, 0.0], [0.0, log4], [0.0, log2]])
    top, second = np.sort(information, axis=0)[::-1][:2]
    expected = (top - second) / np.array([log2, log4])
    np.testing.assert_allclose(expected, [1.0, 0.5], rtol=0, atol=1e-15)  # = (log 4 − log 2) / log 4 = 1/2
    result = metrics.mig(GridFactors(), copies_and_coarse, np.random.RandomState(0), num_train=8 * 50)
    # Both gaps are log 2: only the division by different entropies (log 2 vs log 4) separates the factors, and
    # dividing by the wrong factor's entropy would swap them while leaving the mean at 3/4.
    np.testing.assert_allclose(result["per_factor"], expected, rtol=0, atol=1e-9)
    assert result["score"] == pytest.approx(0.75, abs=1e-9)
    assert result["top_dims"] == [0, 1]


def with_dead_dimension(x):
    """The factors, then a constant (collapsed) dimension."""
    x = identity(x)
    return np.concatenate([x, np.full((len(x), 1), 7.0)], axis=1)


def test_factor_vae_leaves_out_dead_dimensions():
    # Kept, the constant dimension's within-group variance over its global one is 0 / 0 = NaN, which argmin
    # picks in every group: it would win all votes and the score would fall to the majority label's share (~1/3).
    result = metrics.factor_vae(GROUND_TRUTH, with_dead_dimension, np.random.RandomState(0), **SMALL["factor_vae"])
    assert result == {"score": 1.0, "train_accuracy": 1.0, "eval_accuracy": 1.0, "num_active_dims": 3}


def test_factor_vae_is_invariant_to_rescaling_a_dimension():
    # `noisy` has no dimension that is constant within a group, so each vote compares non-zero variances and
    # depends on their scales: with raw variances the blown-up dimension would lose its factor's votes (the
    # score falls from 1 to about 0.7). 1024 is a power of two, so every variance scales exactly and the
    # normalised ratios agree bit for bit.
    def scaled(x):
        return noisy(x) * np.array([1.0, 1024.0, 1.0])

    before = metrics.factor_vae(GROUND_TRUTH, noisy, np.random.RandomState(0), **SMALL["factor_vae"])
    after = metrics.factor_vae(GROUND_TRUTH, scaled, np.random.RandomState(0), **SMALL["factor_vae"])
    assert after == before
    assert before == {"score": 1.0, "train_accuracy": 1.0, "eval_accuracy": 1.0, "num_active_dims": 3}


# --- shapes2d and the baselines ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shapes():
    return Shapes2DGroundTruth(size=16)


def test_baselines_give_documented_widths(shapes, tiny):
    params = tiny()
    built = baselines.baseline_representations(shapes, params, 0, num_samples=300)
    widths = {"ground_truth_factors": 5, "raw_pixels": 16 * 16, "pca": 10, "ica": 10,
              "untrained_model": params.latent_size}
    assert list(built) == list(widths)
    random_state = np.random.RandomState(1)
    for name, baseline in built.items():
        factors = baseline.ground_truth.sample_factors(9, random_state)
        codes = baseline.representation_fn(baseline.ground_truth.sample_observations_from_factors(factors, None))
        assert codes.shape == (9, widths[name]), name
        assert np.isfinite(codes).all(), name


def test_ground_truth_row_beats_an_untrained_model_on_shapes2d(shapes, tiny):
    built = baselines.baseline_representations(shapes, tiny(), 0, names=["ground_truth_factors", "untrained_model"])
    factors = built["ground_truth_factors"]
    truth = metrics.evaluate(factors.ground_truth, factors.representation_fn, 0, protocols=SMALL)
    for name in ("beta_vae", "factor_vae", "dci"):
        assert truth[name]["score"] >= 0.95, name
    # 40 orientations and 32 positions share 20 bins, so even the factors themselves lose MIG there:
    # orientation's ceiling is 1 − ln 2 / ln 40 ≈ 0.81.
    assert truth["mig"]["score"] >= 0.8 and truth["mig"]["per_factor"][0] >= 0.95
    untrained = built["untrained_model"]
    model = metrics.evaluate(shapes, untrained.representation_fn, 0, names=["beta_vae", "mig", "dci"],
                             protocols=SMALL)
    for name, result in model.items():
        assert 0.0 <= result["score"] <= truth[name]["score"] - 0.3, name


def test_model_representation_batches_consistently_and_checks_shapes(shapes, tiny):
    import vae_tf

    model = vae_tf.build_model(tiny())
    images = shapes.sample_observations_from_factors(shapes.sample_factors(20, np.random.RandomState(0)), None)
    whole = baselines.model_representation(model, batch_size=64)(images)
    pieces = baselines.model_representation(model, batch_size=7)(images)
    np.testing.assert_allclose(pieces, whole, rtol=1e-5, atol=1e-6)
    assert whole.shape == (20, model.latent_size)
    with pytest.raises(UserError, match="image_size"):
        baselines.model_representation(model)(np.zeros((2, 64, 64, 1)))
    with pytest.raises(UserError, match="unknown baseline"):
        baselines.baseline_representations(shapes, tiny(), names=["pixels"])


def with_rounding_noise_dimension(x):
    """The factors, then a collapsed latent that is constant up to float32 rounding (a range of ~1e-12)."""
    x = identity(x)
    jitter = np.random.default_rng(0).choice([1.0, np.nextafter(1.0, 2.0)], size=(len(x), 1))
    return np.concatenate([x, jitter], axis=1)


def test_mig_scores_a_latent_too_narrow_to_bin_as_carrying_nothing():
    # numpy cannot cut a 2e-16 range into 20 finite bins and raised, stopping the whole evaluation; the column is
    # one bin, which carries nothing: the identity's scores are those without it.
    with pytest.raises(ValueError, match="Too many bins"):
        np.histogram_bin_edges(with_rounding_noise_dimension(np.zeros((10, 3)))[:, 3], 20)
    result = metrics.mig(GROUND_TRUTH, with_rounding_noise_dimension, np.random.RandomState(0), **SMALL["mig"])
    alone = metrics.mig(GROUND_TRUTH, identity, np.random.RandomState(0), **SMALL["mig"])
    np.testing.assert_allclose(result["per_factor"], alone["per_factor"], rtol=0, atol=1e-12)
    assert min(alone["per_factor"]) > 0.99
