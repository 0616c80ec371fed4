"""The objectives: each loss against NumPy on fixed tensors, then a short real run of each through train.py."""

import csv

import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf import losses
from vae_tf.cli import train_main
from vae_tf.objectives import OBJECTIVES, Batch, _permute_dimensions

from conftest import assert_resumed_as_straight, np_log_normal, np_logsumexp, tiny_args

B, D = 6, 4


def np_bernoulli(x, logits):
    return (np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))).sum(axis=(1, 2, 3))


def np_decomposition(z, mean, log_std, log_w):
    """Chen et al. 2018's decomposition written out in loops, with given log-weights log w[i, j]."""
    n = len(z)
    pair = np.array([[np_log_normal(z[i], mean[j], log_std[j]) for j in range(n)] for i in range(n)])  # [i, j, d]
    log_q_given_x = np_log_normal(z, mean, log_std).sum(1)
    log_q = np.array([np_logsumexp(pair[i].sum(1) + log_w[i], 0) for i in range(n)])
    log_marginals = np.array([sum(np_logsumexp(pair[i, :, d] + log_w[i], 0) for d in range(z.shape[1]))
                              for i in range(n)])
    log_p = (-0.5 * np.log(2 * np.pi) - 0.5 * z ** 2).sum(1)
    return {"index_code_mi": np.mean(log_q_given_x - log_q), "total_correlation": np.mean(log_q - log_marginals),
            "dimension_wise_kl": np.mean(log_marginals - log_p)}


@pytest.fixture(scope="module")
def fixed():
    """A tiny model and one fixed batch: images, posterior parameters, a sample and its logits."""
    rng = np.random.default_rng(0)
    params = vae_tf.load_params(None, overrides=dict(image_size=8, encoder_layers=[[16]], latent_size=D))
    model = vae_tf.build_model(params, dataset_size=1000)
    x = (rng.random((B, 8, 8, 1)) > 0.5).astype(np.float32)
    mean = rng.normal(size=(B, D)).astype(np.float32)
    log_std = rng.normal(-0.5, 0.3, size=(B, D)).astype(np.float32)
    z = (mean + np.exp(log_std) * rng.normal(size=(B, D))).astype(np.float32)
    logits = model.decoder(z).numpy()
    return params, model, x, mean, log_std, z, logits


def objective_loss(fixed, name, step=0, **options):
    """(loss, figures, numpy pieces) of objective `name` on the fixed batch."""
    params, model, x, mean, log_std, z, logits = fixed
    overrides = dict(params.to_dict(), objective=name, **options)
    objective_model = vae_tf.build_model(vae_tf.Params(**overrides), dataset_size=1000)
    objective_model.set_weights(model.get_weights())
    batch = Batch(tf.constant(x), tf.constant(mean), tf.constant(log_std), tf.constant(z), tf.constant(logits),
                  objective_model.reconstruction_fn(x, logits), losses.gaussian_kl(mean, log_std), 0, 1,
                  noise=tf.constant((z - mean) / np.exp(log_std)))  # the draw that made z, which IWAE weighs
    loss, figures = objective_model.objective.loss(objective_model, batch, tf.constant(step, tf.int64))
    return float(loss), figures, objective_model


def base_terms(fixed):
    _, _, x, mean, log_std, z, logits = fixed
    kl = (0.5 * (mean ** 2 + np.exp(2 * log_std) - 1) - log_std).sum(1)
    return np.mean(np_bernoulli(x, logits)), np.mean(kl)


def test_beta_vae_is_reconstruction_plus_beta_kl(fixed):
    reconstruction, kl = base_terms(fixed)
    assert objective_loss(fixed, "beta_vae", beta=3.0)[0] == pytest.approx(reconstruction + 3.0 * kl, rel=1e-5)
    capacity = dict(kl_schedule="capacity", beta=5.0, kl_start_step=0, kl_end_step=10, kl_start_value=0.0,
                    kl_end_value=20.0)
    expected = reconstruction + 5.0 * abs(kl - 2.0 * 4)  # C = 8 nats at step 4 of a 0 -> 20 ramp over 10 steps
    assert objective_loss(fixed, "beta_vae", step=4, **capacity)[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_beta_tcvae_weights_the_three_terms_of_the_decomposition(fixed, estimator):
    _, _, x, mean, log_std, z, logits = fixed
    n, b = 1000, B
    if estimator == "mws":
        log_w = np.full((b, b), -np.log(n * b))
    else:  # Chen et al. 2018, appendix C.2: own 1/N, one other (N − B + 1)/(N(B − 1)), the rest 1/(B − 1)
        w = np.full((b, b), 1 / (b - 1))
        for i in range(b):
            w[i, i] = 1 / n
            w[i, (i + 1) % b] = (n - b + 1) / (n * (b - 1))
        assert np.allclose(w.sum(1), 1)
        log_w = np.log(w)
    terms = np_decomposition(z.astype(np.float64), mean, log_std, log_w)
    reconstruction, _ = base_terms(fixed)
    expected = reconstruction + 0.5 * terms["index_code_mi"] + 6.0 * terms["total_correlation"] \
        + 2.0 * terms["dimension_wise_kl"]
    loss = objective_loss(fixed, "beta_tcvae", beta=6.0, tc_alpha=0.5, tc_gamma=2.0, tc_estimator=estimator)[0]
    assert loss == pytest.approx(expected, rel=1e-4)


def test_factor_vae_adds_gamma_times_the_discriminator_s_log_odds(fixed):
    _, _, x, mean, log_std, z, logits = fixed
    reconstruction, kl = base_terms(fixed)
    loss, _, model = objective_loss(fixed, "factor_vae", beta=1.0, factor_gamma=7.0)
    log_odds = model.objective.discriminator(z).numpy()[:, 0]
    assert loss == pytest.approx(reconstruction + kl + 7.0 * log_odds.mean(), rel=1e-5)
    # The discriminator's own loss: cross-entropy of z (label 1) and of z permuted dimension by dimension (label 0).
    batch = Batch(x, mean, log_std, tf.constant(z), logits, None, None, 0, 1)
    figures, apply = model.objective.auxiliary_update(batch, tf.constant(0, tf.int64))
    permuted = _permute_dimensions(tf.constant(z), tf.constant([model.params.seed * 7919 + 3, 0], tf.int64)).numpy()
    joint, product = log_odds, model.objective.discriminator(permuted).numpy()[:, 0]
    expected = 0.5 * (np.mean(np.log1p(np.exp(-joint))) + np.mean(np.log1p(np.exp(product))))
    assert float(figures["discriminator_loss"]) == pytest.approx(expected, rel=1e-5)
    before = [w.copy() for w in model.objective.discriminator.get_weights()]
    apply()
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.objective.discriminator.get_weights()))


def test_dimension_wise_permutation_shuffles_each_column_on_its_own():
    z = tf.constant(np.arange(64 * 3, dtype=np.float32).reshape(64, 3))
    permuted = _permute_dimensions(z, tf.constant([1, 2], tf.int64)).numpy()
    source_rows = (permuted - np.arange(3)) / 3  # z[r, d] = 3r + d: the row each entry came from
    for d in range(3):
        assert sorted(source_rows[:, d]) == list(range(64))  # each column keeps its own values
    assert not np.array_equal(source_rows[:, 0], source_rows[:, 1])  # columns are not moved together


@pytest.mark.parametrize("name", ["dip_vae_i", "dip_vae_ii"])
def test_dip_vae_penalises_the_covariance_s_distance_from_identity(fixed, name):
    _, _, x, mean, log_std, z, logits = fixed
    reconstruction, kl = base_terms(fixed)
    cov = np.cov(mean.astype(np.float64), rowvar=False, bias=True)
    if name == "dip_vae_ii":
        cov = cov + np.diag(np.exp(2 * log_std).mean(0))
    off = (cov ** 2).sum() - (np.diag(cov) ** 2).sum()
    expected = reconstruction + kl + 3.0 * off + 20.0 * ((np.diag(cov) - 1) ** 2).sum()
    assert objective_loss(fixed, name, beta=1.0, dip_lambda_od=3.0, dip_lambda_d=20.0)[0] == pytest.approx(expected, rel=1e-4)


def np_mmd(a, b, kernel):
    """Unbiased MMD² with the scale C = 2·D, by loops."""
    c = 2.0 * a.shape[1]
    k = (lambda d2: np.exp(-d2 / c)) if kernel == "rbf" else (lambda d2: c / (c + d2))
    within = lambda s: np.mean([k(((s[i] - s[j]) ** 2).sum()) for i in range(len(s)) for j in range(len(s)) if i != j])
    across = np.mean([k(((p - q) ** 2).sum()) for p in a for q in b])
    return within(a) + within(b) - 2 * across


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_info_vae_weights_kl_by_one_minus_alpha_and_mmd_by_alpha_plus_lambda_minus_one(fixed, kernel):
    params, _, x, mean, log_std, z, logits = fixed
    reconstruction, kl = base_terms(fixed)
    loss, figures, model = objective_loss(fixed, "info_vae", beta=1.0, info_alpha=0.25, info_lambda=10.0,
                                          mmd_kernel=kernel)
    prior = tf.random.stateless_normal((B, D), seed=tf.constant([model.params.seed * 7919 + 4, 0], tf.int64)).numpy()
    divergence = np_mmd(z.astype(np.float64), prior.astype(np.float64), kernel)
    assert float(figures["mmd"]) == pytest.approx(divergence, rel=1e-4, abs=1e-6)
    assert loss == pytest.approx(reconstruction + 0.75 * kl + 9.25 * divergence, rel=1e-5)


def test_mmd_tells_a_shifted_distribution_from_the_prior():
    rng = np.random.default_rng(3)
    same = [float(losses.mmd(rng.normal(size=(256, 2)), rng.normal(size=(256, 2)), "rbf")) for _ in range(5)]
    shifted = float(losses.mmd(rng.normal(size=(256, 2)) + 1.0, rng.normal(size=(256, 2)), "rbf"))
    assert abs(np.mean(same)) < 0.01 < shifted  # unbiased: zero on average for equal distributions


@pytest.mark.parametrize("k", [1, 4])
def test_iwae_is_the_k_sample_bound(fixed, k):
    _, _, x, mean, log_std, z, logits = fixed
    loss, figures, model = objective_loss(fixed, "iwae", beta=1.0, iwae_samples=k)
    samples, decoded = [z], [logits]
    if k > 1:
        noise = model.noise(tf.constant([k - 1, B, D]), tf.constant(0, tf.int64), stream=2).numpy()
        others = mean + np.exp(log_std) * noise
        samples += list(others)
        decoded += [model.decoder(s).numpy() for s in others]
    log_w = np.array([-np_bernoulli(x, lg) + (-0.5 * np.log(2 * np.pi) - 0.5 * s ** 2).sum(1)
                      - np_log_normal(s, mean, log_std).sum(1) for s, lg in zip(samples, decoded)])  # [K, B]
    bound = np.mean(np_logsumexp(log_w, 0) - np.log(k))
    assert loss == pytest.approx(-bound, rel=1e-5)
    if k == 1:  # one sample: the negative ELBO with a Monte-Carlo KL
        reconstruction, _ = base_terms(fixed)
        mc_kl = np.mean(np_log_normal(z, mean, log_std).sum(1) + 0.5 * np.log(2 * np.pi) * D + 0.5 * (z ** 2).sum(1))
        assert loss == pytest.approx(reconstruction + mc_kl, rel=1e-5)


@pytest.mark.parametrize("overrides, words", [
    (dict(objective="iwae", beta=4.0), "no KL weight"),
    (dict(objective="beta_tcvae", kl_schedule="capacity"), "kl_schedule constant, linear or cyclical"),
    (dict(objective="dip_vae_i", batch_size=1), "batch_size 2 or more"),
    (dict(objective="info_vae", info_alpha=0.0, info_lambda=0.5), "raise info_lambda"),
    (dict(objective="beta_tvae"), "did you mean 'beta_tcvae'"),
])
def test_combinations_that_make_no_sense_are_refused(overrides, words):
    with pytest.raises(vae_tf.UserError, match=words):
        vae_tf.load_params(None, overrides=overrides)


def read_log(path):
    with open(path, newline="") as file:
        return [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(file)]


RUN = dict(num_steps=30, plot_step=0, log_step=[], validation_step=15, checkpoint_step=15, learning_rate=2e-3,
           factor_gamma=2.0, info_lambda=10.0)


# beta_vae in the fast set (pytest -m "not slow"), the others in the full one
@pytest.mark.parametrize("name", [name if name == "beta_vae" else pytest.param(name, marks=pytest.mark.slow)
                                  for name in OBJECTIVES])
def test_each_objective_trains_resumes_exactly_and_round_trips(name, tmp_path, capsys):
    """Through train.py's entry point: the loss falls, a run resumed halfway logs what an uninterrupted one does
    (FactorVAE's discriminator and its optimizer included), and the saved model reloads with equal outputs."""
    common = [f"--output_dir={tmp_path}", *tiny_args(**RUN, objective=name)] + (["--beta=1"] if name == "iwae" else [])
    assert train_main([*common, "--run_name=straight"]) == 0, capsys.readouterr().err
    assert train_main([*common, "--run_name=resumed", "--num_steps=15"]) == 0
    assert train_main([*common, "--run_name=resumed"]) == 0
    straight, resumed = read_log(tmp_path / "straight" / "log.csv"), read_log(tmp_path / "resumed" / "log.csv")
    assert [row["step"] for row in resumed] == [row["step"] for row in straight] == [str(s) for s in range(30)]
    assert_resumed_as_straight(tmp_path / "resumed", tmp_path / "straight", rtol=1e-4)
    assert set(OBJECTIVES[name].figures) <= set(straight[0])
    losses = [float(row["loss"]) for row in straight]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0, losses

    latest, final = vae_tf.load_run(tmp_path / "straight"), vae_tf.load_run(tmp_path / "straight", "final")
    assert final.get_config()["params"]["objective"] == name and latest.params.objective == name
    x = tf.random.uniform((4, 16, 16, 1), seed=1)
    np.testing.assert_array_equal(latest.reconstruct(x).numpy(), final.reconstruct(x).numpy())
    if name == "factor_vae":  # the discriminator came back from the checkpoint too
        fresh = vae_tf.build_model(latest.params).objective.discriminator
        assert not np.array_equal(fresh.get_weights()[0], latest.objective.discriminator.get_weights()[0])
        assert int(latest.objective.optimizer.iterations) == 30


def test_the_kl_decomposition_is_logged_and_sums_to_the_sampled_kl_on_average(tiny):
    """MI + TC + dimension-wise KL = E[log q(z|x) − log p(z)] at the step's own samples, whose mean is the KL."""
    run = vae_tf.train(tiny(run_name="decomposition", num_steps=40, plot_step=0, log_step=[], beta=1.0), progress=False)
    rows = read_log(run / "log.csv")
    parts = np.array([[float(r[c]) for c in ("index_code_mi", "total_correlation", "dimension_wise_kl")] for r in rows])
    kl = np.array([float(r["kl_loss"]) for r in rows])
    assert np.all(np.isfinite(parts))
    assert abs(np.mean(parts.sum(1) - kl)) < 0.1 * np.mean(kl) + 0.05
