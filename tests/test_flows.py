"""Normalizing flows on the posterior (planar, IAF): each step's log-determinant against the Jacobian's, the training
loss against its equations in NumPy, log p(x) against numerical integration over a 2-D code (wrong determinants would
bias it), a flow of length 0 against the plain Gaussian, real runs that resume exactly, reload and analyse, and bad
input."""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf import latent_space
from vae_tf.cli import analyze_main, train_main
from vae_tf.flows import IAF_GATE_BIAS, Planar, made_masks
from vae_tf.latents import FlowGaussian
from vae_tf.likelihood import log_likelihood

from conftest import (ROOT, assert_resumed_as_straight, assert_train_refuses, bernoulli_log_likelihood, np_log_normal,
                      tiny_args)


def tiny_model(flow, rng, length=3, latent_size=2, jit_compile=False):
    """An MLP VAE on 4×4 images whose decoder depends strongly on z and whose flow bends its draws; `rng` (each
    test's own, so that a test draws the same whether it runs alone or after others) draws the weights set here."""
    params = vae_tf.load_params(None, overrides=dict(
        image_size=4, encoder_layers=[[16]], decoder="deconv", decoder_layers=[[16]], latent_size=latent_size,
        flow=flow, flow_length=length, objective="beta_vae", jit_compile=jit_compile))
    model = vae_tf.build_model(params)
    model.decoder.set_weights([w * 1.5 for w in model.decoder.get_weights()])
    # The heads read x a little; the base q_0 is wide (σ = 1.5) around 0, so that K = 50,000 converges; the planar
    # flow's u, w, b come mostly from their biases, which bend its draws.
    for layer in model.encoder.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([rng.normal(size=kernel.shape).astype(np.float32) * (0.3 if layer.name == "dense0"
                                                                                   else 0.1),
                               rng.normal(size=bias.shape).astype(np.float32) * 0.25])
    model.encoder.get_layer("mean").bias.assign(np.zeros(latent_size, np.float32))
    # The IAF's gates start near σ(IAF_GATE_BIAS) and shrink each step's draws by about as much: its base is widened by
    # their product, so that z_K spreads about as far as the planar flow's (a narrower proposal misses posterior mass).
    width = 1.5 / (1 / (1 + np.exp(-IAF_GATE_BIAS))) ** length if flow == "iaf" else 1.5
    model.encoder.get_layer("log_std").bias.assign(np.full(latent_size, np.log(width), np.float32))
    if model.flow is not None and hasattr(model.flow, "w_in"):  # IAF: weights large enough to bend z
        model.flow.set_weights([w + rng.normal(size=w.shape).astype(np.float32) * 0.1 for w in model.flow.get_weights()])
    return model


def test_the_iaf_s_weights_start_apart_at_glorot_s_scale_whatever_the_length():
    for length in (1, 4):
        model = vae_tf.build_model(vae_tf.load_params(None, overrides=dict(
            image_size=4, encoder_layers=[[16]], decoder="deconv", decoder_layers=[[16]], latent_size=3, flow="iaf",
            flow_length=length, objective="beta_vae")))
        weights = {w.name: w.numpy() for w in model.flow.weights}
        assert not np.allclose(weights["w_in"], weights["w_context"])
        assert not np.allclose(weights["w_mean"], weights["w_gate"])
        limit = np.sqrt(6.0 / (3 + 6))  # one step's [3, 6] matrix
        assert limit * 0.8 < np.abs(weights["w_in"]).max() <= limit


def test_made_masks_make_each_output_depend_on_earlier_inputs_only():
    into_hidden, out_of_hidden = made_masks(5, 10)
    connected = (into_hidden @ out_of_hidden) > 0  # [input, output]: a path through some hidden unit
    assert not np.any(np.tril(connected))  # output d never sees input d or a later one
    assert np.all(connected[np.triu_indices(5, 1)])  # and sees every earlier one


@pytest.mark.parametrize("flow", ["planar", "iaf"])
def test_each_flows_log_determinant_is_its_jacobians(flow):
    rng = np.random.default_rng(0)
    model = tiny_model(flow, rng, length=3, latent_size=3)
    gaussian = model.latent.gaussian
    x = rng.random((5, 4, 4, 1)).astype(np.float32)
    parameters = model.latent.split(model.encode(x))[0]
    base = tf.constant(rng.normal(size=(5, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(base)
        z, log_det = gaussian.flow.transform(base, parameters[2:])
    jacobian = tape.batch_jacobian(z, base).numpy().astype(np.float64)  # [5, 3, 3]
    np.testing.assert_allclose(log_det.numpy(), np.log(np.abs(np.linalg.det(jacobian))), rtol=1e-4, atol=1e-5)
    assert float(tf.reduce_max(tf.abs(z - base))) > 0.01  # the flow does something


def test_one_iaf_step_is_autoregressive():
    """z_i of one step depends on z_j, j <= i, only: its Jacobian is lower triangular."""
    rng = np.random.default_rng(0)
    model = tiny_model("iaf", rng, length=1, latent_size=4)
    context = model.latent.split(model.encode(rng.random((3, 4, 4, 1)).astype(np.float32)))[0][2:]
    base = tf.constant(rng.normal(size=(3, 4)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(base)
        z, _ = model.flow.transform(base, context)
    jacobian = tape.batch_jacobian(z, base).numpy()
    assert np.all(jacobian[:, np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]] == 0)
    assert np.all(np.abs(jacobian[:, np.tril_indices(4, -1)[0], np.tril_indices(4, -1)[1]]) > 0)


def exact_log_likelihood(model, images, half_width=8.0, points=401):
    """log ∫ p(x|z) N(z; 0, I) dz over a 2-D grid by the rectangle rule: it knows nothing of the flow."""
    axis = np.linspace(-half_width, half_width, points)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    log_likelihood = bernoulli_log_likelihood(images, model.decoder(grid.astype(np.float32)).numpy().reshape(
        len(grid), -1))  # [G, n]
    joint = log_likelihood + (-np.log(2 * np.pi) - 0.5 * (grid ** 2).sum(1))[:, None]
    top = joint.max(0)
    return top + np.log(np.exp(joint - top).sum(0) * (axis[1] - axis[0]) ** 2)


@pytest.mark.parametrize("flow, jit_compile", [("planar", False), ("iaf", False), ("iaf", True)])
def test_log_likelihood_through_a_flow_matches_numerical_integration(flow, jit_compile):
    """The importance weights use log q(z_K|x) = log q_0(z_0|x) − Σ log |det|: a wrong determinant biases the
    estimate away from the integral, which does not involve the flow."""
    rng = np.random.default_rng(0)
    model = tiny_model(flow, rng, jit_compile=jit_compile)
    images = (rng.random((4, 4, 4, 1)) > 0.5).astype(np.float32)
    # The flow bends q_0 into a poorer proposal than test_likelihood's Gaussian: K = 50,000 for the same 0.05 nats.
    # Where the proposal misses posterior mass the estimate falls under the integral however right log q is: at an
    # unwidened base (σ = 1.5, z_K's about 0.6) the IAF sat up to 0.5 nats under it at 2 of 6 seeds of `rng` (K =
    # 400,000 too, while a histogram of its draws matched exp(log q) within 5%); widened, 0.13 at worst and 0.011 at
    # this seed, where its log-determinant, about −1.7 a draw, is large enough for a wrong one to show.
    np.testing.assert_allclose(log_likelihood(model, images, num_samples=50000), exact_log_likelihood(model, images),
                               atol=0.05)


def test_the_planar_flow_s_training_loss_is_its_equations_in_numpy():
    """The step decodes z_K and estimates the KL at the same draw: z_0 = mean + σ·ε, z_K the planar steps (û kept
    invertible, Rezende & Mohamed 2015, appendix A.1), KL = log q_0(z_0|x) − Σ_k log |1 + ûᵀψ_k| − log N(z_K; 0, I),
    the loss the mean reconstruction at z_K plus β times the mean KL."""
    rng = np.random.default_rng(0)
    model = tiny_model("planar", rng)
    x = (rng.random((5, 4, 4, 1)) > 0.5).astype(np.float32)
    step = tf.constant(0, tf.int64)
    figures, _ = model.forward(tf.constant(x), step, stream=0)
    mean, log_std, u, w, b = (t.numpy().astype(np.float64) for t in model.encoder(x, training=True))
    seed = vae_tf.objectives.stream_seed(model.params.seed, step, 0)
    noise = tf.random.stateless_normal([5, 2], seed=seed).numpy().astype(np.float64)
    z_0 = mean + np.exp(log_std) * noise
    z, log_det = z_0, np.zeros(5)
    for k in range(3):
        u_k, w_k = u[:, 2 * k:2 * k + 2], w[:, 2 * k:2 * k + 2]
        wu = (w_k * u_k).sum(1, keepdims=True)
        u_hat = u_k + (np.log1p(np.exp(wu)) - 1 - wu) * w_k / (w_k ** 2).sum(1, keepdims=True)
        h = np.tanh((w_k * z).sum(1) + b[:, k])
        z = z + u_hat * h[:, None]
        log_det += np.log(np.abs(1 + (1 - h ** 2) * (w_k * u_hat).sum(1)))
    assert np.abs(z - z_0).max() > 0.1 and np.abs(log_det).max() > 0.1  # the flow moves the draws and their density
    kl = (np_log_normal(z_0, mean, log_std).sum(1) - log_det - np_log_normal(z, 0, 0).sum(1)).mean()
    logits = model.decoder(z.astype(np.float32), training=True).numpy().reshape(5, -1)
    reconstruction = -np.diag(bernoulli_log_likelihood(x, logits)).mean()
    assert float(figures["kl_loss"]) == pytest.approx(kl, rel=1e-4)
    assert float(figures["reconstruction_loss"]) == pytest.approx(reconstruction, rel=1e-4)
    assert float(figures["loss"]) == pytest.approx(reconstruction + model.params.beta * kl, rel=1e-4)


def rows(path):
    with open(path, newline="") as file:
        return [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(file)]


def test_a_flow_of_length_0_is_the_plain_gaussian_posterior(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    common = [f"--output_dir={tmp_path}", *tiny_args(num_steps=6)]
    assert train_main([*common, "--run_name=plain"]) == 0
    assert train_main([*common, "--run_name=flow0", "--flow=planar", "--flow_length=0"]) == 0
    assert rows(tmp_path / "flow0" / "log.csv") == rows(tmp_path / "plain" / "log.csv")


@pytest.mark.parametrize("flow, objective", [("planar", "beta_vae"), ("iaf", "iwae")])
def test_runs_through_a_flow_train_resume_exactly_reload_and_analyse(tmp_path, capsys, monkeypatch, flow, objective):
    monkeypatch.chdir(ROOT)
    common = [f"--output_dir={tmp_path}", *tiny_args(num_steps=12, flow=flow, flow_length=2, objective=objective,
                                                     beta=1.0)]
    assert train_main([*common, "--run_name=straight"]) == 0
    printed = capsys.readouterr().out
    assert "flow steps" in printed and "(KL: a one-sample estimate)" in printed
    assert train_main([*common, "--run_name=resumed", "--num_steps=6"]) == 0
    assert train_main([*common, "--run_name=resumed"]) == 0
    straight = rows(tmp_path / "straight" / "log.csv")
    assert_resumed_as_straight(tmp_path / "resumed", tmp_path / "straight")
    assert float(straight[-1]["loss"]) < float(straight[0]["loss"])
    images = np.random.default_rng(0).random((8, 16, 16, 1)).astype(np.float32)
    reloaded, trained = vae_tf.load_run(tmp_path / "resumed"), vae_tf.load_run(tmp_path / "straight")
    np.testing.assert_allclose(reloaded.represent(images), trained.represent(images), rtol=1e-4, atol=1e-5)
    # latents.csv's I(x; z) is q_0's: a history where it fell by half while the active units fell (a "collapsing"
    # VAE's) tells nothing of the code, so the analysis must not call the run collapsing. A 12-step run's KL is under
    # COLLAPSED_KL, which would call it collapsed first: at 0, only active units, and the trend, could speak.
    monkeypatch.setattr(latent_space, "COLLAPSED_KL", 0.0)
    latents = rows(tmp_path / "resumed" / "latents.csv")
    latents[0].update(active_units=5, mutual_information=100.0)
    with open(tmp_path / "resumed" / "latents.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(latents[0]))
        writer.writeheader()
        writer.writerows(latents)
    capsys.readouterr()
    assert analyze_main([str(tmp_path / "resumed"), "--num_images=32", "--no_tsne", "--likelihood_samples=4"]) == 0
    assert "is collapsing" not in capsys.readouterr().out
    summary = json.loads((tmp_path / "resumed" / "analysis" / "summary.json").read_text())
    assert "flow steps" in summary["model"] and summary["model"].endswith("(KL: a one-sample estimate)")
    assert summary["model"] in printed


@pytest.mark.parametrize("overrides, message", [
    (dict(flow="planar", flow_length=-1), "flow_length must be 0 or more"),
    (dict(flow="iaf", objective="dip_vae_ii"), "objective dip_vae_ii assumes a Gaussian posterior"),
    (dict(flow="planar", free_bits=0.5), "the KL has no part per dimension"),
    (dict(flow="radial"), "flow 'radial' is not one of none, planar, iaf"),
    (dict(flow="iaf", prior="vamp", beta=1.0), "through a flow the posteriors are no longer Gaussian"),
])
def test_bad_flows_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, overrides, message):
    monkeypatch.chdir(ROOT)
    assert_train_refuses(tmp_path, capsys, overrides, message)


def test_an_iaf_step_with_shut_gates_keeps_its_exact_log_determinant():
    """Gates near 0 (s about −30, σ(s) about 1e-13): the log-determinant is Σ log σ(s), the Jacobian's, however small;
    one step, whose Jacobian is triangular, so that its determinant is its diagonal's product even in floats."""
    rng = np.random.default_rng(0)
    model = tiny_model("iaf", rng, length=1, latent_size=3)
    model.flow.b_gate.assign(np.full((1, 3), -30.0, np.float32))
    parameters = model.latent.split(model.encode(rng.random((5, 4, 4, 1)).astype(np.float32)))[0]
    base = tf.constant(rng.normal(size=(5, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(base)
        z, log_det = model.latent.gaussian.flow.transform(base, parameters[2:])
    jacobian = tape.batch_jacobian(z, base).numpy().astype(np.float64)
    np.testing.assert_allclose(log_det.numpy(), np.log(np.abs(np.linalg.det(jacobian))), rtol=1e-4)
    assert log_det.numpy().max() < -80  # three gates of about e^−30 each


def test_active_units_through_a_flow_are_counted_on_its_code_not_on_q0():
    """Burda et al. count active units on E[z|x] of the code the decoder reads. One planar step whose bias b = ±2
    depends on the image, over q_0 = N(0, I) for every image: with u = e_0 and w = e_1 (wᵀu = 0, so û = e_0 +
    (softplus(0) − 1)·e_1), z_K = z_0 + û·tanh(z_0,1 + b), whose mean moves with b along dimensions 0 and 1 (the exact
    variances from Gauss-Hermite quadrature) and not along 2; q_0's means are all 0."""
    n = 200
    b = np.where(np.arange(n) < n // 2, 2.0, -2.0)
    parameters = [np.zeros((n, 3)), np.zeros((n, 3)), np.tile([1.0, 0.0, 0.0], (n, 1)),
                  np.tile([0.0, 1.0, 0.0], (n, 1)), b[:, None]]
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)  # E[f(ε)], ε ~ N(0, 1): Σ w f(node) / √(2π)
    mean_tanh = np.array([np.sum(weights * np.tanh(nodes + v)) for v in b]) / np.sqrt(2 * np.pi)
    exact = np.var(np.stack([mean_tanh, (np.log(2.0) - 1.0) * mean_tanh, np.zeros(n)], axis=1), axis=0)
    assert (exact > latent_space.ACTIVE_VARIANCE).tolist() == [True, True, False]

    part = FlowGaussian(3, Planar(3, 1))
    assert part.active_units(parameters).tolist() == [True, True, False]
    assert not latent_space.active_units(parameters[0]).any()  # q_0's means: none
    noise = np.random.default_rng(0).standard_normal((latent_space.ACTIVE_DRAWS, n, 3))
    draws = part.draw([tf.constant(p, tf.float32) for p in parameters], tf.constant(noise, tf.float32)).numpy()
    np.testing.assert_allclose(latent_space.variance_of_posterior_means(draws), exact, atol=0.03)
    assert not part.code_information  # so the collapse warning reads no trend from q_0's I(x; z)
