"""Learned priors (the mixture of Gaussians and the VampPrior): their density against NumPy, the one-sample KL
against numerical integration, log p(x) against numerical integration over a 1-D latent, a one-component mixture
against the standard normal, the run's seed behind their initial weights (and the IAF's), real runs that resume
exactly, reload and analyse, and bad input."""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf.cli import analyze_main, train_main
from vae_tf.likelihood import log_likelihood
from vae_tf.priors import mixture_log_density

from conftest import (ROOT, assert_resumed_as_straight, assert_train_refuses, bernoulli_log_likelihood,
                      snapshot_of, tiny_args)

def np_mixture_log_density(z, means, log_stds):
    """log (1/K) Σ_k Π_d N(z_d; μ_kd, σ_kd²) of z [n, D], written out in NumPy -> [n]."""
    stds = np.exp(log_stds)
    log_normal = -0.5 * np.log(2 * np.pi) - log_stds - 0.5 * ((z[:, None, :] - means) / stds) ** 2  # [n, K, D]
    per_component = log_normal.sum(-1)
    top = per_component.max(1, keepdims=True)
    return (top + np.log(np.exp(per_component - top).mean(1, keepdims=True)))[:, 0]


def test_the_mixture_density_is_the_mixture_of_its_gaussians():
    rng = np.random.default_rng(0)
    z, means, log_stds = rng.normal(size=(50, 3)), rng.normal(size=(4, 3)) * 2, rng.normal(size=(4, 3)) * 0.5
    got = mixture_log_density(tf.constant(z), tf.constant(means), tf.constant(log_stds)).numpy()
    np.testing.assert_allclose(got, np_mixture_log_density(z, means, log_stds), rtol=1e-10)


def test_the_mixture_density_of_float32_codes_near_narrow_components_keeps_float32_precision():
    """Codes drawn from components as narrow as σ = 0.05: the expanded squares nearly cancel there, which in float32
    arithmetic was up to 0.005 nats off; the density is to float32's rounding of the float64 reference."""
    rng = np.random.default_rng(0)
    means = rng.normal(0.0, 1.5, size=(50, 40)).astype(np.float32)
    log_stds = rng.uniform(-3.0, 0.0, size=(50, 40)).astype(np.float32)
    chosen = rng.integers(50, size=2000)
    z = (means[chosen] + np.exp(log_stds[chosen]) * rng.standard_normal((2000, 40))).astype(np.float32)
    got = mixture_log_density(tf.constant(z), tf.constant(means), tf.constant(log_stds))
    assert got.dtype == tf.float32
    reference = np_mixture_log_density(*(array.astype(np.float64) for array in (z, means, log_stds)))
    np.testing.assert_allclose(got.numpy(), reference, rtol=1e-6)


def tiny_model(prior, components=3, objective="beta_vae"):
    """An MLP VAE on 4×4 images with a 1-D code: the decoder depends strongly on z, the proposal q(z|x) is wide and
    depends on x, and a mixture prior's components sit apart."""
    rng = np.random.default_rng(0)
    params = vae_tf.load_params(None, overrides=dict(
        image_size=4, encoder_layers=[[16]], decoder="deconv", decoder_layers=[[16]], latent_size=1, prior=prior,
        prior_components=components, objective=objective))
    model = vae_tf.build_model(params)
    model.decoder.set_weights([w * 1.5 for w in model.decoder.get_weights()])
    weights = [np.zeros_like(w) for w in model.encoder.get_weights()]
    weights[0] = rng.normal(size=weights[0].shape) * 0.3  # the hidden layer reads x
    weights[1][:] = 0.5
    weights[-4] = rng.normal(size=weights[-4].shape) * 0.3  # the mean depends on x
    weights[-1][:] = np.log(1.5)  # q(z|x) wide, so that importance sampling converges
    model.encoder.set_weights(weights)
    if prior == "mog" and components == 3:
        model.prior.set_weights([np.array([[-2.0], [0.0], [2.5]]), np.array([[-0.5], [0.0], [0.3]])])
    elif prior == "vamp":  # pseudo-inputs spread over [0, 1]
        model.prior.set_weights([rng.random(model.prior.pseudo_inputs.shape)])
    return model


def prior_components(model):
    return [t.numpy().astype(np.float64) for t in model.prior.components()]


def exact_log_likelihood(model, images, half_width=12.0, points=6001):
    """log ∫ p(x|z) p(z) dz by the rectangle rule, p(z) the prior's mixture written out in NumPy."""
    grid = np.linspace(-half_width, half_width, points)[:, None]
    log_likelihood = bernoulli_log_likelihood(images, model.decoder(grid.astype(np.float32)).numpy().reshape(
        len(grid), -1))  # [G, n]
    joint = log_likelihood + np_mixture_log_density(grid, *prior_components(model))[:, None]
    top = joint.max(0)
    return top + np.log(np.exp(joint - top).sum(0) * (grid[1, 0] - grid[0, 0]))


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_log_likelihood_under_a_learned_prior_matches_numerical_integration(prior):
    rng = np.random.default_rng(0)
    model = tiny_model(prior)
    images = (rng.random((4, 4, 4, 1)) > 0.5).astype(np.float32)
    np.testing.assert_allclose(log_likelihood(model, images, num_samples=5000), exact_log_likelihood(model, images),
                               atol=0.05)


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_the_sampled_kl_is_log_q_minus_log_p_and_averages_to_the_integral(prior):
    """One draw: log N(z; μ, σ²) − log p(z), as NumPy writes it; many draws: the KL by numerical integration."""
    rng = np.random.default_rng(0)
    model = tiny_model(prior)
    gaussian = model.latent.gaussian
    mean, log_std = np.array([[0.4]]), np.array([[np.log(0.7)]])
    noise = rng.standard_normal((20000, 1)).astype(np.float32)
    z = mean + np.exp(log_std) * noise
    as_tensor = lambda array: tf.constant(array, tf.float32)  # noqa: E731
    estimates = gaussian.kl((as_tensor(np.repeat(mean, len(z), 0)), as_tensor(np.repeat(log_std, len(z), 0))),
                            as_tensor(noise)).numpy().astype(np.float64)
    log_q = -0.5 * np.log(2 * np.pi) - log_std[0, 0] - 0.5 * ((z[:, 0] - mean[0, 0]) / np.exp(log_std[0, 0])) ** 2
    np.testing.assert_allclose(estimates, log_q - np_mixture_log_density(z, *prior_components(model)), rtol=1e-4,
                               atol=1e-5)  # float32
    grid = np.linspace(-12, 12, 20001)[:, None]
    q = np.exp(-0.5 * np.log(2 * np.pi) - log_std[0, 0] - 0.5 * ((grid[:, 0] - mean[0, 0]) / np.exp(log_std[0, 0])) ** 2)
    integral = np.sum(q * (np.log(q + 1e-300) - np_mixture_log_density(grid, *prior_components(model)))) * (
        grid[1, 0] - grid[0, 0])
    assert estimates.mean() == pytest.approx(integral, abs=4 * estimates.std() / np.sqrt(len(z)))
    assert not gaussian.closed_form and "one-sample estimate" in gaussian.describe()


def test_a_one_component_mixture_starts_as_the_standard_normal():
    """The same weights under N(0, I) and under a fresh one-component mixture: the same log p(x), to rounding."""
    rng = np.random.default_rng(0)
    images = (rng.random((6, 4, 4, 1)) > 0.5).astype(np.float32)
    normal, mixture = tiny_model("normal"), tiny_model("mog", components=1)
    mixture.encoder.set_weights(normal.encoder.get_weights())
    mixture.decoder.set_weights(normal.decoder.get_weights())
    mixture.prior.set_weights([np.zeros((1, 1)), np.zeros((1, 1))])  # what a fresh one-component mixture holds
    assert [w.tolist() for w in tiny_model("mog", components=1).prior.get_weights()] == [[[0.0]], [[0.0]]]
    np.testing.assert_allclose(log_likelihood(mixture, images, num_samples=300),
                               log_likelihood(normal, images, num_samples=300), rtol=1e-6)


# Each learned weight made outside Keras' global seed, with the initializer the documented seed-0 runs started from.
OWN_WEIGHTS = {
    "mog": (dict(prior="mog", prior_components=3), lambda m: m.prior.means,
            lambda: keras.initializers.RandomNormal(0.0, 1.0, seed=3)((3, 2))),
    "vamp": (dict(prior="vamp", prior_components=3), lambda m: m.prior.pseudo_inputs,
             lambda: keras.initializers.RandomNormal(0.05, 0.01, seed=3)((3, 4, 4, 1))),
    "iaf": (dict(flow="iaf", flow_length=1), lambda m: m.flow.w_in,  # one step's [2, 2·2]: Glorot's range is ±1
            lambda: keras.initializers.RandomUniform(-1.0, 1.0, seed=8)((1, 2, 4))),
}


@pytest.mark.parametrize("case", list(OWN_WEIGHTS))
def test_the_run_s_seed_draws_the_learned_prior_s_and_the_iaf_s_initial_weights(case):
    """A mixture's means, the VampPrior's pseudo-inputs and the IAF's weights start where `seed` puts them: runs
    of other seeds apart (replicas that share them would understate the spread over seeds), the same seed alike,
    seed 0 where the documented runs started; and they leave the encoder's start as it is without them."""
    overrides, weight, seed_0_start = OWN_WEIGHTS[case]

    def model(seed, **more):
        return vae_tf.build_model(vae_tf.load_params(None, overrides=dict(
            image_size=4, encoder_layers=[[16]], decoder="deconv", decoder_layers=[[16]], latent_size=2,
            objective="beta_vae", seed=seed, **more)))

    starts = {seed: weight(model(seed, **overrides)).numpy() for seed in (0, 1, 2)}
    np.testing.assert_array_equal(starts[0], seed_0_start().numpy())
    assert not np.allclose(starts[1], starts[0]) and not np.allclose(starts[2], starts[1])
    np.testing.assert_array_equal(weight(model(1, **overrides)).numpy(), starts[1])
    for got, plain in zip(model(1, **overrides).encoder.get_weights()[:2], model(1).encoder.get_weights()[:2]):
        np.testing.assert_array_equal(got, plain)


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("prior, objective", [("mog", "beta_vae"), ("vamp", "iwae")])
def test_runs_with_a_learned_prior_train_resume_exactly_reload_and_analyse(tmp_path, capsys, monkeypatch, prior,
                                                                            objective):
    monkeypatch.chdir(ROOT)
    common = [f"--output_dir={tmp_path}", *tiny_args(num_steps=12, prior=prior, prior_components=4,
                                                     objective=objective, beta=1.0)]
    assert train_main([*common, "--run_name=straight"]) == 0
    printed = capsys.readouterr().out
    assert "(KL: a one-sample estimate)" in printed
    assert train_main([*common, "--run_name=resumed", "--num_steps=6"]) == 0
    assert train_main([*common, "--run_name=resumed"]) == 0
    straight = rows(tmp_path / "straight" / "log.csv")
    assert_resumed_as_straight(tmp_path / "resumed", tmp_path / "straight")
    assert float(straight[-1]["loss"]) < float(straight[0]["loss"])

    model = vae_tf.load_run(tmp_path / "resumed")
    trained = vae_tf.load_run(tmp_path / "straight")
    for mine, theirs in zip(model.prior.get_weights(), trained.prior.get_weights()):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5)
    assert analyze_main([str(tmp_path / "resumed"), "--num_images=32", "--no_tsne", "--likelihood_samples=4"]) == 0
    assert f"with the learned prior {prior}" in capsys.readouterr().out
    summary = json.loads((tmp_path / "resumed" / "analysis" / "summary.json").read_text())
    assert summary["prior"] == prior and np.isfinite(summary["test"]["kl_loss"])
    # summary.json keeps the run's first line, which says the KL is sampled
    assert summary["model"].endswith("(KL: a one-sample estimate)") and summary["model"] in printed


@pytest.mark.parametrize("overrides, message", [
    (dict(prior="mog", objective="dip_vae_ii"), "objective dip_vae_ii assumes a Gaussian posterior and the prior"),
    (dict(prior="vamp", free_bits=0.5), "the KL has no part per dimension"),
    (dict(prior="mog", model="m2", labels=30, label_factor="shape"), "model m2 keeps a Gaussian posterior"),
    (dict(prior="mog", prior_components=0), "prior_components must be at least 1"),
    (dict(prior="gamma"), "prior 'gamma' is not one of normal, mog, vamp"),
])
def test_bad_priors_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, overrides, message):
    monkeypatch.chdir(ROOT)
    assert_train_refuses(tmp_path, capsys, overrides, message)


def test_a_vampprior_with_more_pseudo_inputs_than_training_images_is_one_line(tmp_path, tmp_path_factory, capsys):
    rng = np.random.default_rng(0)
    import imageio.v3 as iio

    data = tmp_path_factory.mktemp("images")
    for i in range(24):
        iio.imwrite(data / f"{i}.png", rng.integers(0, 255, (16, 16), dtype=np.uint8))
    args = [f"--output_dir={tmp_path}", "--run_name=bad", *tiny_args(dataset="folder", data_dir=str(data),
                                                                       channels=1, prior="vamp", prior_components=500)]
    assert train_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "more than the" in err[0] and "set prior_components to at most" in err[0], err
    assert snapshot_of(tmp_path) == {}
