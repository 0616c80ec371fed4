import math

import numpy as np
import pytest
import tensorflow as tf

from vae_tf.losses import absolute_error, bernoulli, gaussian_kl, squared_error


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
