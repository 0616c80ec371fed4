"""How likely a trained VAE finds images: the importance-sampled log p(x) and the ELBO, in nats per image.

p(x|z) is the reconstruction loss's likelihood with its normalising constant (`losses.NORMALISING_CONSTANTS`):
Bernoulli (exact for binary images; on grey images the cross-entropy is no normalised density, so the figure is a
score, not a likelihood), Gaussian of variance ½ for squared error, Laplace of scale 1 for absolute error.
"""

import contextlib
import math
import weakref

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from vae_tf.errors import UserError

# Floats in the widest tensor of a compiled call: bounds the memory whatever num_samples is. A call's peak is a few
# times its widest tensor (a 64×64 spatial broadcast decoder holds 32 maps of 64×64 per row: 4096 rows of it took 5.5
# GB; a PixelCNN keeps more of its maps alive, 10 to 15 times its widest, but is compute bound at any size), so the
# rows per call are this over the widest tensor one row needs in any of the model's networks or a learned prior's
# distances to its components: 256 rows of that decoder, 1,024 of the 32×32 one, 42,799 of the likelihood table's MLP
# (28×28 outputs; 33,554 under a VampPrior of 500), whose speed barely depends on its rows per call (docs/speed.md).
WIDEST_TENSOR = 2 ** 25
ELBO_SAMPLES = 100  # posterior samples per image for `elbo` by default
_COMPILED = weakref.WeakKeyDictionary()  # model -> its compiled log densities, traced once


def _checked(model, images, num_samples, batch_size):
    """(images as float32, decoder rows per call)."""
    images = np.asarray(images, np.float32)
    expected = model.image_shape
    if images.ndim != 4 or images.shape[1:] != expected or len(images) == 0:
        raise UserError(f"images must be a non-empty array [n, {', '.join(map(str, expected))}] like the model's "
                        f"inputs, got shape {images.shape}")
    batch_size = _rows_per_call(model) if batch_size is None else batch_size
    if num_samples < 1 or batch_size < 1:
        raise UserError(f"num_samples and batch_size must be at least 1, got {num_samples} and {batch_size}")
    return images, batch_size


def _widest_row(network):
    """The most floats one row holds in a layer's output, over every functional network of `network` (a model's
    encoder, decoder, classifier, …, nested ones included): the networks a call runs on each of its rows."""
    widest = 0
    for layer in network.layers:
        if isinstance(layer, keras.Model):
            widest = max(widest, _widest_row(layer))
            continue
        try:
            outputs = keras.tree.flatten(layer.output)
        except AttributeError:  # a layer never called on symbolic inputs (a prior): not a network's
            continue
        widest = max([widest] + [math.prod(output.shape[1:]) for output in outputs])
    return widest


def _rows_per_call(model):
    """Decoder rows per call: WIDEST_TENSOR over the floats one row needs in the widest tensor, a network's widest
    activation or a learned prior's [rows, K] distances (float64, two floats each)."""
    prior = model.code_prior
    widest = max(_widest_row(model), 0 if prior.closed_form else 2 * prior.count)
    return max(1, WIDEST_TENSOR // widest)


def _log_densities(model):
    """`model.log_densities` compiled once per model, for every chunk shape, as f(x, posterior, noise, components):
    under a learned prior its components (μ, log σ [K, D]), computed once per `_per_image` and read through
    `Mixture.given`; under N(0, I) an empty list. With XLA if the run trains with it (`jit_compile`): faster for an
    MLP, slower for a convolutional model on a CPU, as in training (docs/speed.md)."""
    if model in _COMPILED:
        return _COMPILED[model]
    heads = [tf.TensorSpec((None, width), tf.float32) for _, width in model.latent.heads]
    noises = [tf.TensorSpec((None, None, part.size), tf.float32) for part in model.proposal_parts]
    prior = model.code_prior
    learned = not prior.closed_form
    component_specs = [tf.TensorSpec((prior.count, prior.size), tf.float32)] * 2 if learned else []

    def log_densities(x, posterior, noise, components):
        with prior.given(components) if learned else contextlib.nullcontext():
            return model.log_densities(x, posterior, noise)

    signature = [tf.TensorSpec((None, *model.image_shape), tf.float32), heads, noises, component_specs]
    _COMPILED[model] = tf.function(log_densities, input_signature=signature, autograph=False,
                                   jit_compile=model.params.jit_compile)
    return _COMPILED[model]


def _per_image(model, images, num_samples, batch_size, seed, first_index, reduce, progress, what):
    """`reduce(log p(x|code) [K, n], log p(code) − log q(code|x) [K, n], posterior) -> [n]` over every image's K =
    `num_samples` posterior draws, decoded about `batch_size` at a time (None: WIDEST_TENSOR's worth). Image i's
    noise is its own stream (seed, first_index + i), drawn part by part, so the result depends neither on the
    chunking nor on how a set is split into calls. `progress` shows a bar named `what`."""
    images, batch_size = _checked(model, images, num_samples, batch_size)
    log_densities, parts = _log_densities(model), model.proposal_parts
    components = [] if model.code_prior.closed_form else list(model.code_prior.components())
    per_call = max(1, batch_size // num_samples)  # images per call
    chunk = max(1, batch_size // per_call)  # samples of each image per call
    results = []
    starts = range(0, len(images), per_call)
    for start in tqdm(starts, desc=what, unit="call", disable=not progress, leave=False):
        x = images[start:start + per_call]
        posterior = model.encode(x)
        generators = [np.random.default_rng([seed, first_index + start + i]) for i in range(len(x))]
        noise = [np.stack([part.evaluation_noise(rng, num_samples) for rng in generators], axis=1).astype(np.float32)
                 for part in parts]  # [K, n, width] per part
        calls = [log_densities(x, posterior, [n[k:k + chunk] for n in noise], components)
                 for k in range(0, num_samples, chunk)]
        likelihood, prior_ratio = (np.concatenate([c[j].numpy() for c in calls]).astype(np.float64) for j in (0, 1))
        results.append(reduce(likelihood, prior_ratio, posterior))
    return np.concatenate(results)


def log_likelihood(model, images, num_samples=5000, batch_size=None, seed=0, progress=False, first_index=0):
    """Importance-sampled log p(x) [n] (float64, nats) of images [n, H, W, C] in [0, 1].

    The encoder is the proposal: log (1/K) Σ_k p(x|z_k) p(z_k)/q(z_k|x), z_k ~ q(z|x), K = num_samples; a categorical
    latent is drawn exactly (not relaxed) and weighed by p(c)/q(c|x), which sums over its categories. It is the
    K-sample IWAE bound (Burda et al. 2016, eq. 8): below log p(x) in expectation, rising towards it as K grows, at
    or above the ELBO. `batch_size` decoder evaluations run per call (default: as many as keep a call's widest tensor
    to WIDEST_TENSOR floats), so memory stays bounded; `progress` shows a bar. `first_index`: images[0]'s index in
    the set they are part of, which numbers their noise: a set's images estimated a part at a time (as `analyze.py`
    does, to resume) get the draws the whole set gets in one call.
    """
    def importance_weighted(likelihood, prior_ratio, _):
        log_w = likelihood + prior_ratio
        top = log_w.max(axis=0)
        return top + np.log(np.mean(np.exp(log_w - top), axis=0))

    return _per_image(model, images, num_samples, batch_size, seed, first_index, importance_weighted, progress,
                      f"log p(x), K = {num_samples}")


def elbo(model, images, num_samples=ELBO_SAMPLES, batch_size=None, seed=0, progress=False, first_index=0):
    """The evidence lower bound [n] (float64, nats): E_q[log p(x|z)] over `num_samples` posterior samples minus the
    closed-form KL(q(code|x) ‖ p(code)) (Kingma & Welling 2014, eq. 10; a categorical's KL is exact for its
    one-hot draws), at `log_likelihood`'s first samples. A model whose KL has no closed form at `encode`'s posterior
    (`kl_in_closed_form` False: M2's z depends on the class drawn, ADGM's on a) gives the samples' mean of
    log p(x|code) + log p(code) − log q(code|x), the same bound estimated by sampling. `first_index` as there."""
    def bound(likelihood, prior_ratio, posterior):
        if not model.kl_in_closed_form:
            return (likelihood + prior_ratio).mean(axis=0)
        parts = model.latent.split(posterior)
        kl = sum(part.kl(parameters).numpy().astype(np.float64) for part, parameters in zip(model.latent.parts, parts))
        return likelihood.mean(axis=0) - kl

    return _per_image(model, images, num_samples, batch_size, seed, first_index, bound, progress, "ELBO")
