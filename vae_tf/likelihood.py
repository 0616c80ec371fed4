"""How likely a trained VAE finds images: the importance-sampled log p(x) and the ELBO, in nats per image.

p(x|z) is the reconstruction loss's likelihood with its normalising constant (`losses.NORMALISING_CONSTANTS`):
Bernoulli (exact for binary images; on grey images the cross-entropy is no normalised density, so the figure is a
score, not a likelihood), Gaussian of variance ½ for squared error, Laplace of scale 1 for absolute error.
"""

import weakref

import numpy as np
import tensorflow as tf

from vae_tf.errors import UserError
from vae_tf.losses import LOG_2PI, gaussian_kl, gaussian_log_density

DECODER_BATCH = 4096  # decoder evaluations per compiled call: bounds the memory whatever num_samples is
_COMPILED = weakref.WeakKeyDictionary()  # model -> its compiled log densities, traced once


def _checked(model, images, num_samples, batch_size):
    images = np.asarray(images, np.float32)
    expected = tuple(model.encoder.input_shape[1:])
    if images.ndim != 4 or images.shape[1:] != expected or len(images) == 0:
        raise UserError(f"images must be a non-empty array [n, {', '.join(map(str, expected))}] like the model's "
                        f"inputs, got shape {images.shape}")
    if num_samples < 1 or batch_size < 1:
        raise UserError(f"num_samples and batch_size must be at least 1, got {num_samples} and {batch_size}")
    return images


def _log_densities(model):
    """A compiled (x [n, H, W, C], mean, log_std [n, D], noise [k, n, D]) -> (log p(x|z_k), log p(z_k) − log q(z_k|x)),
    each [k, n], at z_k = mean + exp(log_std)·noise_k."""

    if model in _COMPILED:
        return _COMPILED[model]
    d = model.latent_size
    signature = [tf.TensorSpec((None, *model.encoder.input_shape[1:]), tf.float32), tf.TensorSpec((None, d), tf.float32),
                 tf.TensorSpec((None, d), tf.float32), tf.TensorSpec((None, None, d), tf.float32)]

    @tf.function(input_signature=signature)  # one trace for every chunk shape
    def log_densities(x, mean, log_std, noise):
        k = tf.shape(noise)[0]
        z = mean[None] + tf.exp(log_std)[None] * noise  # [k, n, D]
        logits = model.decoder(tf.reshape(z, [-1, model.latent_size]), training=False)  # sample-major
        log_prior = tf.reduce_sum(-0.5 * (LOG_2PI + tf.square(z)), axis=2)
        log_posterior = tf.reduce_sum(gaussian_log_density(z, mean[None], log_std[None]), axis=2)
        log_likelihood = -model.negative_log_likelihood(tf.tile(x, [k, 1, 1, 1]), logits)
        return tf.reshape(log_likelihood, tf.shape(log_prior)), log_prior - log_posterior

    _COMPILED[model] = log_densities
    return log_densities


def _per_image(model, images, num_samples, batch_size, seed, reduce):
    """`reduce(log p(x|z) [K, n], log p(z) − log q(z|x) [K, n], mean, log_std) -> [n]` over every image's K =
    `num_samples` posterior samples, decoded about `batch_size` at a time. Image i's noise is its own stream
    (seed, i), so the result does not depend on the chunking."""
    images = _checked(model, images, num_samples, batch_size)
    log_densities = _log_densities(model)
    per_call = max(1, batch_size // num_samples)  # images per call
    chunk = max(1, batch_size // per_call)  # samples of each image per call
    results = []
    for start in range(0, len(images), per_call):
        x = images[start:start + per_call]
        mean, log_std = model.encode(x)
        noise = np.stack([np.random.default_rng([seed, start + i]).standard_normal((num_samples, model.latent_size))
                          for i in range(len(x))], axis=1).astype(np.float32)  # [K, n, D]
        parts = [log_densities(x, mean, log_std, noise[k:k + chunk]) for k in range(0, num_samples, chunk)]
        likelihood, prior_ratio = (np.concatenate([p[j].numpy() for p in parts]).astype(np.float64) for j in (0, 1))
        results.append(reduce(likelihood, prior_ratio, mean, log_std))
    return np.concatenate(results)


def log_likelihood(model, images, num_samples=5000, batch_size=DECODER_BATCH, seed=0):
    """Importance-sampled log p(x) [n] (float64, nats) of images [n, H, W, C] in [0, 1].

    The encoder is the proposal: log (1/K) Σ_k p(x|z_k) p(z_k)/q(z_k|x), z_k ~ q(z|x), K = num_samples. It is the
    K-sample IWAE bound (Burda et al. 2016, eq. 8): below log p(x) in expectation, rising towards it as K grows, at
    or above the ELBO. `batch_size` decoder evaluations run per call, so memory stays bounded.
    """
    def importance_weighted(likelihood, prior_ratio, *_):
        log_w = likelihood + prior_ratio
        top = log_w.max(axis=0)
        return top + np.log(np.mean(np.exp(log_w - top), axis=0))

    return _per_image(model, images, num_samples, batch_size, seed, importance_weighted)


def elbo(model, images, num_samples=100, batch_size=DECODER_BATCH, seed=0):
    """The evidence lower bound [n] (float64, nats): E_q[log p(x|z)] over `num_samples` posterior samples minus the
    closed-form KL(q(z|x) ‖ N(0, I)) (Kingma & Welling 2014, eq. 10), at `log_likelihood`'s first samples."""
    def bound(likelihood, prior_ratio, mean, log_std):
        return likelihood.mean(axis=0) - gaussian_kl(mean, log_std).numpy().astype(np.float64)

    return _per_image(model, images, num_samples, batch_size, seed, bound)
