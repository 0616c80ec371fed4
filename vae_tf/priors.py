"""Priors p(z) of the Gaussian code, by name (`params.prior`): the standard normal, a mixture of Gaussians, the
VampPrior.

A prior offers `log_density(z)` (z [..., D] -> [...], nats) and `codes(rng, n)`, n draws as a NumPy array [n, D]. A
learned prior is a Keras layer whose weights train with the model's; with it KL(q(z|x) ‖ p(z)) has no closed form,
and the Gaussian part estimates it at the step's sample (`vae_tf.latents.Gaussian.kl`).
"""

import contextlib
import math

import keras
import numpy as np
import tensorflow as tf

from vae_tf.losses import LOG_2PI, standard_normal_log_density
from vae_tf.objectives import initializer_seed


def mixture_log_density(z, means, log_stds):
    """log (1/K) Σ_k N(z; means_k, diag exp(log_stds_k)²) of z [..., D], components [K, D] -> [...] (nats).

    Each component's Σ_d (z_d − μ_kd)² / σ_kd² expanded as z² · σ⁻² − 2 z · μσ⁻² + μ² · σ⁻²: two matrix products
    instead of a [..., K, D] tensor, which a test log-likelihood (5,000 samples against 500 components) spent ten
    times as long writing and reading. The terms cancel where z is near a narrow component (float32 was 0.005 nats
    off there), so the sum is taken in float64: products of [N, D] by [D, K], cheap beside the decoder.
    """
    flat = tf.cast(tf.reshape(z, [-1, tf.shape(z)[-1]]), tf.float64)  # [N, D]
    means, log_stds = tf.cast(means, tf.float64), tf.cast(log_stds, tf.float64)
    precisions = tf.exp(-2.0 * log_stds)  # [K, D]
    squared_distance = (tf.matmul(tf.square(flat), precisions, transpose_b=True)
                        - 2.0 * tf.matmul(flat, means * precisions, transpose_b=True)
                        + tf.reduce_sum(tf.square(means) * precisions, axis=-1))  # [N, K]
    size = tf.cast(tf.shape(means)[-1], tf.float64)
    per_component = -0.5 * (size * LOG_2PI + squared_distance) - tf.reduce_sum(log_stds, axis=-1)
    log_density = tf.reduce_logsumexp(per_component, axis=-1) - math.log(means.shape[0])  # [N]
    return tf.reshape(tf.cast(log_density, z.dtype), tf.shape(z)[:-1])


class StandardNormal:
    """p(z) = N(0, I), the VAE's (Kingma & Welling 2014); the KL to it has a closed form."""

    closed_form = True

    def __init__(self, size):
        self.size = size

    def describe(self):
        return "N(0, I) as the prior"

    def log_density(self, z):
        return standard_normal_log_density(z)

    def codes(self, rng, n):
        return rng.standard_normal((n, self.size))


class Mixture(keras.layers.Layer):
    """p(z) = (1/K) Σ_k N(z; μ_k, diag σ_k²), equal weights; `components()` gives (μ [K, D], log σ [K, D])."""

    closed_form = False
    _given = None  # (μ, log σ) while `given` holds them

    @contextlib.contextmanager
    def given(self, components):
        """`log_density` reads `components` (μ [K, D], log σ [K, D]) inside the block instead of computing them: a
        log-likelihood's compiled calls take the VampPrior's encoded pseudo-inputs as an argument computed once,
        rather than encoding the K pseudo-inputs again in each call (about a fifth of a VampPrior's analysis). One
        block at a time: the components are the layer's state while it lasts."""
        self._given = tuple(components)
        try:
            yield
        finally:
            self._given = None

    def codes(self, rng, n):
        """n draws [n, D] from the prior as it is now: a component drawn uniformly, then its Gaussian."""
        epsilon, chosen = rng.standard_normal((n, self.size)), rng.integers(self.count, size=n)
        means, log_stds = (t.numpy().astype(np.float64) for t in self.components())
        return means[chosen] + np.exp(log_stds[chosen]) * epsilon

    def log_density(self, z):
        return mixture_log_density(z, *(self._given or self.components()))


class MixtureOfGaussians(Mixture):
    """A mixture of `components` Gaussians with learned means and standard deviations (the MoG prior Tomczak & Welling
    2018 compare with the VampPrior). The means start as standard-normal draws, the standard deviations at 1; a
    mixture of one component starts at mean 0, as N(0, I)."""

    def __init__(self, components, size, seed=0, **kwargs):
        """`seed`: the run's (`Params.seed`), which draws the means."""
        super().__init__(**kwargs)
        self.count, self.size = components, size
        spread = 1.0 if components > 1 else 0.0
        self.means = self.add_weight(
            shape=(components, size), name="means",
            initializer=keras.initializers.RandomNormal(0.0, spread, seed=initializer_seed(seed, components)))
        self.log_stds = self.add_weight(shape=(components, size), name="log_stds", initializer="zeros")

    def describe(self):
        return f"a mixture of {self.count} learned Gaussians as the prior"

    def components(self):
        return self.means, self.log_stds


class VampPrior(Mixture):
    """The VampPrior (Tomczak & Welling 2018, eq. 9): p(z) = (1/K) Σ_k q(z|u_k), the encoder's posteriors of K learned
    pseudo-inputs u_k. The pseudo-inputs are images [K, H, W, C] clipped to [0, 1], starting near 0.05 (their code's
    initialisation for binary images: N(0.05, 0.01)); the encoder is the model's own, so that the prior follows it."""

    def __init__(self, components, size, image_shape, encode=None, seed=0, **kwargs):
        """`encode`: images -> (mean, log_std) of q(z|x), the model's encoder (set by the model, not saved); `seed`: the
        run's (`Params.seed`), which draws the pseudo-inputs."""
        super().__init__(**kwargs)
        self.count, self.size = components, size
        self.pseudo_inputs = self.add_weight(
            shape=(components, *image_shape), name="pseudo_inputs",
            initializer=keras.initializers.RandomNormal(0.05, 0.01, seed=initializer_seed(seed, components)))
        self.encode = encode

    def describe(self):
        return f"a VampPrior of {self.count} learned pseudo-inputs"

    def components(self):
        return self.encode(tf.clip_by_value(self.pseudo_inputs, 0.0, 1.0))


def build_prior(params, size, image_shape, encode, name="prior"):
    """The prior `params.prior` names over a Gaussian code of `size` dimensions (the VAE's code, a layered model's top
    layer); `encode` (images -> mean, log_std of that code's posterior) for the VampPrior."""
    if params.prior == "mog":
        return MixtureOfGaussians(params.prior_components, size, params.seed, name=name)
    if params.prior == "vamp":
        return VampPrior(params.prior_components, size, image_shape, encode, params.seed, name=name)
    return StandardNormal(size)
