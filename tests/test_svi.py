"""The semi-amortized VAE (Kim et al. 2018): the SVI steps against their code's update written out in NumPy, their
derivative against finite differences, a run that resumes exactly, reloads and analyses, and bad input."""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf import svi
from vae_tf.cli import analyze_main, train_main

from conftest import ROOT, assert_resumed_as_straight, assert_train_refuses, tiny_args

BATCH = 4  # the training batch's size, against which SVI's steps are scaled (3 images are refined here)


def quadratic_loss(*target_columns):
    """Per image, ½ Σ_d (mean + σ·noise − target)² with σ = exp(½ log variance): a stand-in for a negative ELBO
    that reads the draw and something trained (`target`, its columns side by side)."""
    def loss(mean, log_variance, noise):
        target = tf.concat(list(target_columns), 1)
        return 0.5 * tf.reduce_sum((mean + tf.exp(0.5 * log_variance) * noise - target) ** 2, 1)
    return loss


def kim_et_al_steps(mean, log_variance, noise, learning_rate, target):
    """Their optim_n2n.py's forward_mom in NumPy, with vae_tf's per-image scaling and clipping: each image's gradient
    of Σ_i loss_i / BATCH (here by hand), clipped to norm 5/√BATCH, momentum 0.5, one noise draw per step."""
    velocity = [np.zeros_like(mean), np.zeros_like(log_variance)]
    for noise_k in noise:
        std = np.exp(0.5 * log_variance)
        residual = (mean + std * noise_k - target) / BATCH  # d loss / d z, per image
        gradients = [residual, residual * std * noise_k * 0.5]
        clip = 5.0 / np.sqrt(BATCH)
        gradients = [g * np.minimum(1.0, clip / np.linalg.norm(g, axis=1, keepdims=True)) for g in gradients]
        velocity = [0.5 * v - g for v, g in zip(velocity, gradients)]
        mean, log_variance = mean + learning_rate * velocity[0], log_variance + learning_rate * velocity[1]
    return mean, log_variance


@pytest.mark.parametrize("learning_rate, scale", [(1.0, 1.0), (0.3, 40.0)])  # the second clips its first steps
def test_svi_steps_are_kim_et_al_s_momentum_steps(learning_rate, scale):
    rng = np.random.default_rng(0)
    target = rng.normal(size=(3, 2))
    mean, log_variance = scale * rng.normal(size=(3, 2)), 0.3 * rng.normal(size=(3, 2))
    noise = rng.normal(size=(4, 3, 2))
    refined = svi.refine(quadratic_loss(target), tf.constant(mean), tf.constant(log_variance), tf.constant(noise),
                         learning_rate, BATCH)
    expected = kim_et_al_steps(mean, log_variance, noise, learning_rate, target)
    np.testing.assert_allclose(refined[0].numpy(), expected[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(refined[1].numpy(), expected[1], rtol=1e-10, atol=1e-12)
    first = 0.5 * np.sum((mean + np.exp(0.5 * log_variance) * noise[0] - target) ** 2, 1)
    np.testing.assert_allclose(refined[2].numpy(), first, rtol=1e-12)


def kim_et_al_backward(mean, log_variance, noise, learning_rate, target, carried, clip=5.0 / np.sqrt(BATCH),
                       target_clip=5.0):
    """Their optim_n2n.py's backward_mom in NumPy, for `quadratic_loss` and with its exact Hessian-vector products
    (their finite differences' limit): the gradients with respect to λ_0 = (mean, log_variance) and to `target` (the
    decoder's weights) of a read-out whose gradient at λ_K is `carried` (two arrays), whether what was carried back
    was clipped, and whether a step's share of target's gradient was. What it carries back to each λ_k is clipped,
    each image's (mean and log variance together) to `clip`, as vae_tf clips the steps' own gradients; each step's
    share of target's gradient to a global norm of `target_clip`, as theirs. The steps here are too small for their
    own clipping."""
    points, velocity = [], [np.zeros_like(mean), np.zeros_like(log_variance)]
    for noise_k in noise:
        points.append((mean, log_variance))
        std = np.exp(0.5 * log_variance)
        residual = (mean + std * noise_k - target) / BATCH
        gradients = [residual, residual * std * noise_k * 0.5]
        assert max(np.linalg.norm(g, axis=1).max() for g in gradients) < 5.0 / np.sqrt(BATCH)
        velocity = [0.5 * v - g for v, g in zip(velocity, gradients)]
        mean, log_variance = mean + learning_rate * velocity[0], log_variance + learning_rate * velocity[1]
    momentum, d_target = [np.zeros_like(mean), np.zeros_like(mean)], np.zeros_like(target)
    clipped = target_clipped = False
    for (mean, log_variance), noise_k in reversed(list(zip(points, noise))):
        momentum = [p + learning_rate * g for p, g in zip(momentum, carried)]
        std = np.exp(0.5 * log_variance)
        residual, half = (mean + std * noise_k - target) / BATCH, 0.5 * std * noise_k
        # H·p of the step's gradient g = (residual, residual·half) in (mean, log variance), and ∂g/∂target·p
        h_mean = momentum[0] / BATCH + half / BATCH * momentum[1]
        h_log_variance = half / BATCH * momentum[0] + (half ** 2 / BATCH + 0.5 * residual * half) * momentum[1]
        share = momentum[0] / BATCH + half / BATCH * momentum[1]
        target_clipped |= bool(np.linalg.norm(share) > target_clip)
        d_target += share * min(1.0, target_clip / np.linalg.norm(share))
        carried = [carried[0] - h_mean, carried[1] - h_log_variance]
        norm = np.linalg.norm(np.concatenate(carried, 1), axis=1, keepdims=True)
        clipped |= bool((norm > clip).any())
        carried = [c * np.minimum(1.0, clip / norm) for c in carried]
        momentum = [0.5 * p for p in momentum]
    return carried[0], carried[1], d_target, clipped, target_clipped


def test_the_numpy_backward_pass_is_the_derivative_of_the_steps():
    """`kim_et_al_backward` unclipped against central differences of the NumPy steps: the reference the next test
    holds vae_tf to is itself the derivative."""
    rng = np.random.default_rng(0)
    mean, log_variance, noise = rng.normal(size=(3, 2)), 0.2 * rng.normal(size=(3, 2)), rng.normal(size=(3, 3, 2))
    target, weights = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))

    def read_out(m, v):  # a scalar of the refined parameters
        return np.sum(weights * m) + np.sum(weights ** 2 * v)

    gradients = kim_et_al_backward(mean, log_variance, noise, 0.7, target, [weights, weights ** 2], np.inf, np.inf)[:3]
    for which, gradient in enumerate(gradients):
        numeric = np.zeros_like(gradient)
        for index in np.ndindex(gradient.shape):
            shifted = []
            for sign in (1, -1):
                point = [mean.copy(), log_variance.copy(), target.copy()]
                point[which][index] += sign * 1e-6
                shifted.append(read_out(*kim_et_al_steps(point[0], point[1], noise, 0.7, point[2])))
            numeric[index] = (shifted[0] - shifted[1]) / 2e-6
        np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-7)


# The second's read-out clips what is carried back, the third's also the last steps' shares of target's gradient.
@pytest.mark.parametrize("scale", [0.3, 3.0, 30.0])
def test_the_refined_posterior_is_differentiated_through_the_steps_as_kim_et_al_s_backward_pass(scale):
    """Training takes the gradient of a loss at λ_K with respect to λ_0 and to what the loss reads (the decoder)
    through every step, the second-order terms Kim et al. take by finite differences, with what reaches each λ_k and
    each step's share of the decoder's gradient clipped as their backward pass clips them: over all its weights
    together (target here two variables, its columns), and not the read-out's own gradient of them (`direct`)."""
    rng = np.random.default_rng(0)
    mean, log_variance, noise = rng.normal(size=(3, 2)), 0.2 * rng.normal(size=(3, 2)), rng.normal(size=(3, 3, 2))
    target, weights, direct = rng.normal(size=(3, 2)), scale * rng.normal(size=(3, 2)), 100.0
    columns = [keras.Variable(target[:, :1], dtype="float64"), keras.Variable(target[:, 1:], dtype="float64")]
    start = [tf.constant(mean), tf.constant(log_variance)]
    with tf.GradientTape() as tape:
        tape.watch(start)
        refined = svi.refine(quadratic_loss(*columns), *start, tf.constant(noise), 0.7, BATCH, columns)
        value = (tf.reduce_sum(weights * refined[0]) + tf.reduce_sum(weights ** 2 * refined[1])
                 + direct * tf.reduce_sum(tf.concat(columns, 1)))
    gradients = tape.gradient(value, start + columns)
    gradients = [gradients[0].numpy(), gradients[1].numpy(), np.concatenate([g.numpy() for g in gradients[2:]], 1)]
    *expected, clipped, target_clipped = kim_et_al_backward(mean, log_variance, noise, 0.7, target,
                                                            [weights, weights ** 2])
    expected[2] = expected[2] + direct
    assert (clipped, target_clipped) == (scale > 1, scale > 10)
    for gradient, want in zip(gradients, expected):
        np.testing.assert_allclose(gradient, want, rtol=1e-9, atol=1e-12)
    # and each clipping changed the gradient: λ_0's where what was carried back was clipped, target's where its shares
    unclipped = kim_et_al_backward(mean, log_variance, noise, 0.7, target, [weights, weights ** 2], np.inf, np.inf)
    assert bool(np.abs(gradients[0] - unclipped[0]).max() > 0.1) is clipped
    shares_unclipped = kim_et_al_backward(mean, log_variance, noise, 0.7, target, [weights, weights ** 2],
                                          target_clip=np.inf)
    assert bool(np.abs(gradients[2] - direct - shares_unclipped[2]).max() > 0.1) is target_clipped


def test_a_decoder_that_updates_its_state_in_svis_steps_is_refused():
    """The steps read the decoder in a keras.StatelessScope, which would drop what its layers assign (batch
    normalisation's statistics): no decoder svi_steps accepts has such state, and one that had would be refused."""
    counter = keras.Variable(0.0, dtype="float64", trainable=False)

    def loss(mean, log_variance, noise):
        counter.assign_add(1.0)
        return tf.reduce_sum(mean ** 2, 1)

    with pytest.raises(ValueError, match="would drop the state its layers update"):
        svi.refine(loss, tf.ones([2, 2], tf.float64), tf.zeros([2, 2], tf.float64), tf.zeros([1, 2, 2], tf.float64),
                   0.5, BATCH)
    assert float(counter.value) == 0.0  # dropped: what the refusal is for


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_a_semi_amortized_run_resumes_exactly_reloads_and_analyses(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    monkeypatch.chdir(ROOT)
    common = [f"--output_dir={tmp_path}", *tiny_args(num_steps=12, svi_steps=3, beta=1.0)]
    assert train_main([*common, "--run_name=straight"]) == 0
    assert train_main([*common, "--run_name=resumed", "--num_steps=6"]) == 0
    assert train_main([*common, "--run_name=resumed"]) == 0
    straight = rows(tmp_path / "straight" / "log.csv")
    assert_resumed_as_straight(tmp_path / "resumed", tmp_path / "straight")
    # SVI starts at the encoder's posterior and lowers the loss from there (their NumPy steps above), on average
    assert np.mean([float(r["svi_gain"]) for r in straight]) > 0
    model = vae_tf.load_run(tmp_path / "resumed")
    images = rng.random((5, 16, 16, 1)).astype(np.float32)
    encoder_mean = model.encoder(images)[0].numpy()
    refined_mean = model.encode(images)[0].numpy()
    assert not np.allclose(refined_mean, encoder_mean)  # what the analysis reads is the refined posterior
    np.testing.assert_array_equal(model.encode(images)[0].numpy(), refined_mean)  # from a fixed seed
    # An image's refined posterior does not depend on the images beside it: the likelihood encodes one at a time.
    for part, alone in zip(model.encode(images), model.encode(images[1:2])):
        np.testing.assert_allclose(part.numpy()[1:2], alone.numpy(), rtol=1e-5, atol=1e-6)
    assert analyze_main([str(tmp_path / "resumed"), "--num_images=32", "--no_tsne", "--likelihood_samples=4"]) == 0
    summary = json.loads((tmp_path / "resumed" / "analysis" / "summary.json").read_text())
    assert np.isfinite(summary["test_log_likelihood"])


@pytest.mark.parametrize("overrides, message", [
    (dict(svi_steps=-1), "svi_steps must be at least 0"),
    (dict(svi_steps=2, svi_learning_rate=0.0), "svi_learning_rate must be a finite number > 0"),
    (dict(svi_steps=2, flow="iaf", objective="beta_vae"), "use model vae without categorical_sizes, flow none"),
    (dict(svi_steps=2, categorical_sizes=[3]), "use model vae without categorical_sizes"),
    (dict(svi_steps=2, objective="iwae", beta=1.0), "objective iwae does not train"),
    (dict(svi_steps=2, aggressive=True), "use one"),
    (dict(svi_steps=2, prior="vamp"), "flow none and prior normal"),
    (dict(svi_steps=2, model="ladder", upper_latent_sizes=[3]), "use model vae"),
    (dict(svi_steps=2, kl_schedule="capacity"), "use kl_schedule constant, linear or cyclical, and free_bits 0"),
    (dict(svi_steps=2, free_bits=0.5), "use kl_schedule constant, linear or cyclical, and free_bits 0"),
    (dict(svi_steps=2, strategy="mirrored", cpu_devices=2), "use strategy default"),
    (dict(svi_steps=2, precision="mixed_float16"), "outside mixed_float16's loss scaling"),
])
def test_svi_it_cannot_drive_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, overrides, message):
    monkeypatch.chdir(ROOT)
    assert_train_refuses(tmp_path, capsys, overrides, message)
