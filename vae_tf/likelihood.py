"""How likely a trained VAE finds images: the importance-sampled log p(x) and the ELBO, in nats per image.

p(x|z) is the reconstruction loss's likelihood with its normalising constant (`losses.NORMALISING_CONSTANTS`):
Bernoulli (exact for binary images; on grey images the cross-entropy is no normalised density, so the figure is a
score, not a likelihood), Gaussian of variance ½ for squared error, Laplace of scale 1 for absolute error.
"""

import weakref

import numpy as np
import tensorflow as tf

from vae_tf.errors import UserError

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
    """A compiled (x [n, H, W, C], posterior (the encoder's outputs), noise (one [k, n, width] per part)) ->
    (log p(x|code_k), log p(code_k) − log q(code_k|x)), each [k, n], at exact draws code_k of q(code|x): the Gaussian
    part mean + exp(log_std)·noise_k, each categorical a Gumbel-max draw (`vae_tf.latents`)."""

    if model in _COMPILED:
        return _COMPILED[model]
    latent = model.latent
    heads = [tf.TensorSpec((None, width), tf.float32) for _, width in latent.heads]
    noises = [tf.TensorSpec((None, None, part.size), tf.float32) for part in latent.parts]
    signature = [tf.TensorSpec((None, *model.encoder.input_shape[1:]), tf.float32), heads, noises]

    @tf.function(input_signature=signature)  # one trace for every chunk shape
    def log_densities(x, posterior, noise):
        k = tf.shape(noise[0])[0]
        parts = latent.split(posterior)
        codes = [part.draw([p[None] for p in parameters], part_noise)  # [k, n, size]
                 for part, parameters, part_noise in zip(latent.parts, parts, noise)]
        prior_ratio = tf.add_n([part.log_prior_ratio([p[None] for p in parameters], code)
                                for part, parameters, code in zip(latent.parts, parts, codes)])
        code = latent.join(codes)
        logits = model.decoder(tf.reshape(code, [-1, latent.code_size]), training=False)  # sample-major
        log_likelihood = -model.negative_log_likelihood(tf.tile(x, [k, 1, 1, 1]), logits)
        return tf.reshape(log_likelihood, tf.shape(prior_ratio)), prior_ratio

    _COMPILED[model] = log_densities
    return log_densities


def _per_image(model, images, num_samples, batch_size, seed, reduce):
    """`reduce(log p(x|code) [K, n], log p(code) − log q(code|x) [K, n], posterior) -> [n]` over every image's K =
    `num_samples` posterior draws, decoded about `batch_size` at a time. Image i's noise is its own stream
    (seed, i), drawn part by part, so the result does not depend on the chunking."""
    images = _checked(model, images, num_samples, batch_size)
    log_densities, parts = _log_densities(model), model.latent.parts
    per_call = max(1, batch_size // num_samples)  # images per call
    chunk = max(1, batch_size // per_call)  # samples of each image per call
    results = []
    for start in range(0, len(images), per_call):
        x = images[start:start + per_call]
        posterior = model.encode(x)
        generators = [np.random.default_rng([seed, start + i]) for i in range(len(x))]
        noise = [np.stack([part.evaluation_noise(rng, num_samples) for rng in generators], axis=1).astype(np.float32)
                 for part in parts]  # [K, n, width] per part
        calls = [log_densities(x, posterior, [n[k:k + chunk] for n in noise]) for k in range(0, num_samples, chunk)]
        likelihood, prior_ratio = (np.concatenate([c[j].numpy() for c in calls]).astype(np.float64) for j in (0, 1))
        results.append(reduce(likelihood, prior_ratio, posterior))
    return np.concatenate(results)


def log_likelihood(model, images, num_samples=5000, batch_size=DECODER_BATCH, seed=0):
    """Importance-sampled log p(x) [n] (float64, nats) of images [n, H, W, C] in [0, 1].

    The encoder is the proposal: log (1/K) Σ_k p(x|z_k) p(z_k)/q(z_k|x), z_k ~ q(z|x), K = num_samples; a categorical
    latent is drawn exactly (not relaxed) and weighed by p(c)/q(c|x), which sums over its categories. It is the
    K-sample IWAE bound (Burda et al. 2016, eq. 8): below log p(x) in expectation, rising towards it as K grows, at
    or above the ELBO. `batch_size` decoder evaluations run per call, so memory stays bounded.
    """
    def importance_weighted(likelihood, prior_ratio, _):
        log_w = likelihood + prior_ratio
        top = log_w.max(axis=0)
        return top + np.log(np.mean(np.exp(log_w - top), axis=0))

    return _per_image(model, images, num_samples, batch_size, seed, importance_weighted)


def elbo(model, images, num_samples=100, batch_size=DECODER_BATCH, seed=0):
    """The evidence lower bound [n] (float64, nats): E_q[log p(x|z)] over `num_samples` posterior samples minus the
    closed-form KL(q(code|x) ‖ p(code)) (Kingma & Welling 2014, eq. 10; a categorical's KL is exact for its
    one-hot draws), at `log_likelihood`'s first samples."""
    def bound(likelihood, prior_ratio, posterior):
        parts = model.latent.split(posterior)
        kl = sum(part.kl(parameters).numpy().astype(np.float64) for part, parameters in zip(model.latent.parts, parts))
        return likelihood.mean(axis=0) - kl

    return _per_image(model, images, num_samples, batch_size, seed, bound)
