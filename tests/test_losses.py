import math
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from vae_tf.losses import (absolute_error, bernoulli, covariance, dip_penalty, gaussian_kl, importance_weighted_bound,
                           kl_decomposition, log_importance_weights, negative_log_likelihood, squared_error)

from conftest import ROOT, np_log_normal, np_logsumexp


def kl_by_sigma(mean, sigma):
    """KL(N(mean, sigma²) ‖ N(0, 1)) per dimension, in the usual σ form, as an independent check."""
    return -np.log(sigma) + (sigma ** 2 + mean ** 2) / 2 - 0.5


@pytest.mark.parametrize("mean, log_std", [(0.0, 0.0), (1.0, 0.0), (0.0, math.log(2.0)), (-1.5, -0.7), (3.0, 1.2)])
def test_kl_matches_closed_form(mean, log_std):
    kl = gaussian_kl(tf.constant([[mean, mean]]), tf.constant([[log_std, log_std]])).numpy()
    assert kl.shape == (1,)
    np.testing.assert_allclose(kl[0], 2 * kl_by_sigma(mean, math.exp(log_std)), rtol=1e-5, atol=1e-6)


def test_kl_is_zero_only_at_the_prior_and_sums_over_latents():
    assert gaussian_kl(tf.zeros((3, 5)), tf.zeros((3, 5))).numpy() == pytest.approx([0, 0, 0])
    mean = tf.constant([[1.0, 0.0, 0.0]])
    assert gaussian_kl(mean, tf.zeros((1, 3))).numpy()[0] == pytest.approx(0.5)


def test_kl_agrees_with_a_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    mean, log_std = 0.7, -0.4
    z = mean + math.exp(log_std) * rng.standard_normal(400_000)
    log_q = -0.5 * ((z - mean) / math.exp(log_std)) ** 2 - log_std
    log_p = -0.5 * z ** 2
    estimate = np.mean(log_q - log_p)
    closed = gaussian_kl(tf.constant([[mean]]), tf.constant([[log_std]])).numpy()[0]
    assert closed == pytest.approx(estimate, abs=0.01)


def test_reconstruction_losses_sum_over_pixels():
    x = tf.constant(np.array([1.0, 0.0, 1.0, 0.5], np.float32).reshape(1, 2, 2, 1))
    logits = tf.zeros((1, 2, 2, 1))  # sigmoid(0) = 0.5 everywhere
    assert bernoulli(x, logits).numpy()[0] == pytest.approx(4 * math.log(2.0), rel=1e-6)
    assert squared_error(x, logits).numpy()[0] == pytest.approx(3 * 0.25, rel=1e-6)
    assert absolute_error(x, logits).numpy()[0] == pytest.approx(3 * 0.5, rel=1e-6)


def test_bernoulli_is_the_cross_entropy_of_the_sigmoid():
    rng = np.random.default_rng(1)
    x = rng.random((2, 3, 3, 1)).astype(np.float32)
    logits = rng.normal(size=(2, 3, 3, 1)).astype(np.float32)
    p = 1 / (1 + np.exp(-logits))
    expected = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(bernoulli(tf.constant(x), tf.constant(logits)).numpy(), expected, rtol=1e-5)


def correlated_posteriors(rng, batch, sigma, posterior_std):
    """Posteriors N(μ_n, s²I) with μ_n ~ N(0, Σ − s²I): their aggregate q(z) is N(0, Σ) exactly."""
    mean = rng.multivariate_normal(np.zeros(len(sigma)), sigma - posterior_std ** 2 * np.eye(len(sigma)), size=batch)
    z = mean + posterior_std * rng.standard_normal(mean.shape)
    return z, mean, np.full(mean.shape, np.log(posterior_std))


def test_stratified_estimates_converge_to_the_closed_forms_as_the_batch_grows():
    """q(z) = N(0, Σ), q(z|x) = N(μ, s²I): TC = −½ log det(correlation of Σ), MI = ½ log(det Σ / s^{2D}) and
    dimension-wise KL = Σ_d ½(Σ_dd − 1 − log Σ_dd) (Chen et al. 2018's decomposition of a Gaussian model)."""
    sigma = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 1.5]])
    std = np.sqrt(np.diag(sigma))
    closed = {"total_correlation": -0.5 * np.log(np.linalg.det(sigma / np.outer(std, std))),
              "index_code_mi": 0.5 * np.log(np.linalg.det(sigma) / 0.3 ** 6),
              "dimension_wise_kl": sum(0.5 * (v - 1 - np.log(v)) for v in np.diag(sigma))}
    errors = {}
    for batch in (32, 2048):
        z, mean, log_std = correlated_posteriors(np.random.default_rng(batch), batch, sigma, 0.3)
        weights = log_importance_weights(batch, 10 ** 12, "mss")  # a data set far larger than the batch
        estimate = kl_decomposition(tf.constant(z), tf.constant(mean), tf.constant(log_std), weights)
        errors[batch] = {name: abs(float(estimate[name]) - value) for name, value in closed.items()}
    assert errors[2048]["total_correlation"] < 0.05 < errors[32]["total_correlation"]
    assert errors[2048]["index_code_mi"] < 0.08 and errors[2048]["dimension_wise_kl"] < 0.05
    assert sum(errors[2048].values()) < sum(errors[32].values())


@pytest.mark.parametrize("estimator", ["mss", "mws", "batch"])
def test_the_three_terms_sum_to_the_sampled_kl_for_any_weights(estimator):
    z, mean, log_std = correlated_posteriors(np.random.default_rng(1), 50, np.eye(4) * 2.0, 0.5)
    terms = kl_decomposition(tf.constant(z), tf.constant(mean), tf.constant(log_std),
                             log_importance_weights(50, 5000, estimator))
    log_q = (-0.5 * np.log(2 * np.pi) - log_std - 0.5 * ((z - mean) / np.exp(log_std)) ** 2).sum(1)
    log_p = (-0.5 * np.log(2 * np.pi) - 0.5 * z ** 2).sum(1)
    assert sum(float(v) for v in terms.values()) == pytest.approx(np.mean(log_q - log_p), rel=1e-9)


def test_importance_weights_rows_sum_to_one_except_weighted_sampling_s():
    for batch, size in ((2, 10), (7, 100), (64, 737280), (5, 3)):
        mss = np.exp(log_importance_weights(batch, size, "mss").numpy())
        np.testing.assert_allclose(mss.sum(1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(np.diag(mss), 1 / max(size, batch))
        np.testing.assert_allclose(np.exp(log_importance_weights(batch, size, "batch").numpy()).sum(1), 1.0)
    # Minibatch-weighted sampling's weights are 1/(N·B) each: they sum to 1/N (the paper's estimator, appendix C.1).
    np.testing.assert_allclose(np.exp(log_importance_weights(8, 100, "mws").numpy()), 1 / 800)


def test_normalised_likelihoods_integrate_to_one_over_a_pixel():
    """With their constants, squared and absolute error are densities over a real-valued pixel: ∫ exp(−nll) dx = 1."""
    grid = np.linspace(-20, 20, 400001).astype(np.float32)
    x = tf.constant(grid.reshape(-1, 1, 1, 1))
    logits = tf.fill(x.shape, 0.7)
    for name in ("squared_error", "absolute_error"):
        density = np.exp(-negative_log_likelihood(name, x, logits).numpy())
        assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-4)
    binary = tf.constant(np.array([0.0, 1.0], np.float32).reshape(2, 1, 1, 1))
    assert np.exp(-negative_log_likelihood("bernoulli", binary, tf.fill(binary.shape, 0.7)).numpy()).sum() == pytest.approx(1.0)


def test_dip_penalty_covariance_and_importance_weighted_bound_against_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3))
    cov = covariance(tf.constant(x)).numpy()
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False, bias=True), rtol=1e-10)
    weights = rng.random(40)
    weights /= weights.sum()
    np.testing.assert_allclose(covariance(tf.constant(x), tf.constant(weights)).numpy(),
                               np.cov(x, rowvar=False, aweights=weights, bias=True), rtol=1e-10)
    expected = 2.0 * ((cov ** 2).sum() - (np.diag(cov) ** 2).sum()) + 5.0 * ((np.diag(cov) - 1) ** 2).sum()
    assert float(dip_penalty(tf.constant(cov), 2.0, 5.0)) == pytest.approx(expected, rel=1e-10)
    log_w = rng.normal(size=(6, 4)) * 10
    expected_bound = np.log(np.mean(np.exp(log_w), axis=0))
    np.testing.assert_allclose(importance_weighted_bound(tf.constant(log_w)).numpy(), expected_bound, rtol=1e-10)


def decomposition_in_numpy(z, mean, log_std):
    """Chen et al. 2018's three terms with the n codes as the data set (every weight 1/n), all n × n × D at once."""
    n = len(z)
    pairwise = np_log_normal(z[:, None], mean[None], log_std[None])  # [n (sample), n (x), D]
    log_q_given_x = np_log_normal(z, mean, log_std).sum(1)
    log_q = np_logsumexp(pairwise.sum(2), 1) - np.log(n)
    log_q_marginals = (np_logsumexp(pairwise, 1) - np.log(n)).sum(1)
    log_p = np_log_normal(z, 0.0, 0.0).sum(1)
    return {"index_code_mi": np.mean(log_q_given_x - log_q), "total_correlation": np.mean(log_q - log_q_marginals),
            "dimension_wise_kl": np.mean(log_q_marginals - log_p)}


def test_the_decomposition_of_a_set_of_codes_taken_a_few_rows_at_a_time_is_the_whole_computation(monkeypatch):
    """latent_space.kl_parts (the analysis' decomposition) takes its n × n × D densities a
    few samples at a time, the last block shorter: the same three terms as NumPy's in one go."""
    from vae_tf import latent_space
    rng = np.random.default_rng(3)
    mean, log_std = rng.standard_normal((203, 3)), 0.3 * rng.standard_normal((203, 3)) - 0.5
    z = mean + np.exp(log_std) * np.random.default_rng(7).standard_normal(mean.shape)  # kl_parts' draws, seed 7
    monkeypatch.setattr(latent_space, "DENSITIES_AT_ONCE", 203 * 3 * 10)  # blocks of 10 samples, the last of 3
    for name, value in latent_space.kl_parts(mean, log_std, seed=7).items():
        assert value == pytest.approx(decomposition_in_numpy(z, mean, log_std)[name], rel=1e-10), name


@pytest.mark.parametrize("centres, spread, log_std", [((0.0,), 1.0, -0.5), ((5.0,), 1e-6, -14.0),
                                                      ((-5.0, 5.0), 1e-6, -14.0)])
def test_the_index_code_mi_of_a_set_of_codes_is_the_decompositions(monkeypatch, centres, spread, log_std):
    """latent_space.index_code_mi (each validation's I(x; z)), from two matrix products a few rows at a time, the
    last block shorter: NumPy's n × n × D index-code MI at the same draws, also for posteriors of σ ≈ 1e-6 about a
    mean of 5 (uncentred, the expanded square's terms would be 1e14 nats) and about two means, −5 and 5, that no
    centring brings near 0 (the overlapping entries that count are computed directly)."""
    from vae_tf import latent_space
    rng = np.random.default_rng(3)
    mean = np.resize(centres, 203)[:, None] + spread * rng.standard_normal((203, 3))
    log_std = log_std + 0.3 * rng.standard_normal((203, 3))
    z = mean + np.exp(log_std) * np.random.default_rng(7).standard_normal(mean.shape)  # its draws, seed 7
    monkeypatch.setattr(latent_space, "DENSITIES_AT_ONCE", 203 * 10)  # blocks of 10 samples, the last of 3
    assert latent_space.index_code_mi(mean, log_std, seed=7) == pytest.approx(
        decomposition_in_numpy(z, mean, log_std)["index_code_mi"], rel=1e-10)


def test_the_index_code_mi_is_0_for_one_posterior_and_log_n_for_n_apart():
    """Its limits in closed form: every image with the same posterior tells nothing (0); n posteriors of σ = 1 whose
    means lie 100 apart tell the n images apart (log n); n posteriors of σ = 1e-8 in identical pairs, the pairs a
    unit apart in each dimension, tell the pairs apart (log n/2: q(z_i) = 2/n q(z_i|x_i)), where the expanded square's
    terms reach 1e21 nats."""
    from vae_tf import latent_space
    same = latent_space.index_code_mi(np.full((50, 4), 0.7), np.full((50, 4), -0.2))
    assert same == pytest.approx(0.0, abs=1e-12)
    apart = latent_space.index_code_mi(100.0 * np.arange(50.0)[:, None] * np.ones((1, 4)), np.zeros((50, 4)))
    assert apart == pytest.approx(np.log(50), abs=1e-12)
    pairs = np.repeat(np.random.default_rng(2).permutation(100)[:, None] * np.ones((1, 40)), 2, axis=0)
    twins = latent_space.index_code_mi(pairs, np.full((200, 40), np.log(1e-8)))
    assert twins == pytest.approx(np.log(100), abs=1e-12)


def test_a_minibatch_decomposition_taken_a_few_rows_at_a_time_is_the_whole_one():
    """The weights of minibatch-stratified sampling differ row by row: each block takes its own rows of them."""
    z, mean, log_std = correlated_posteriors(np.random.default_rng(5), 50, np.eye(4) * 2.0, 0.5)
    weights = log_importance_weights(50, 5000, "mss")
    whole = kl_decomposition(tf.constant(z), tf.constant(mean), tf.constant(log_std), weights)
    blocks = kl_decomposition(tf.constant(z), tf.constant(mean), tf.constant(log_std), weights, rows=7)
    for name, value in whole.items():
        assert float(blocks[name]) == pytest.approx(float(value), rel=1e-12), name


def test_the_decomposition_of_3000_codes_of_40_dimensions_fits_in_little_memory(tmp_path):
    """All at once, its 3000 × 3000 × 40 float64 densities held 12 GB (a validation of the likelihood preset did)."""
    # The peak is the kernel's VmHWM of the new process: getrusage's ru_maxrss would count the forking test
    # worker's memory too (Linux carries it across exec).
    script = ("import numpy as np\n"
              "from vae_tf import latent_space\n"
              "rng = np.random.default_rng(0)\n"
              "latent_space.kl_parts(rng.standard_normal((3000, 40)), 0.1 * rng.standard_normal((3000, 40)) - 1)\n"
              "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) < 2 * 1024 ** 2  # KB: under 2 GB, TensorFlow's own ~0.7 GB included
