"""Several stochastic layers z_1 … z_L: the hierarchical VAE of Burda et al. 2016 (`model = "hierarchical"`) and the
Ladder VAE of Sønderby et al. 2016 (`model = "ladder"`), `latent_size` the size of z_1 and `upper_latent_sizes` those
above it, bottom first.

Both share the generative model p(x, z) = p(x|z_1) Π_{l<L} p(z_l|z_{l+1}) p(z_L): p(z_L) = N(0, I) or a learned
prior (`params.prior`, `vae_tf.priors`: the mixture, or the VampPrior of the top layer's posteriors of learned
pseudo-inputs, Tomczak & Welling 2018's hierarchical VampPrior), each p(z_l|z_{l+1}) a diagonal Gaussian from an MLP
(`down_l`), the decoder reading z_1. They differ in inference:

- hierarchical (Burda et al. §5): bottom-up, q(z_1|x) Π_l q(z_{l+1}|z_l), each an MLP of the draw below (`up_l`).
  Each layer's KL, log q(z_l|z_{l−1}) − log p(z_l|z_{l+1}), is estimated at the draws (z_{l+1} depends on z_l).
- ladder (Sønderby et al. 2016, eq. 17-21): a deterministic bottom-up pass d_1 = encoder(x), d_{l+1} = MLP(d_l) with
  batch normalisation, each giving a Gaussian (μ̂_l, σ̂_l); then top-down, q(z_L|x) = N(μ̂_L, σ̂_L) and for l < L the
  precision-weighted merge of N(μ̂_l, σ̂_l) with the prior p(z_l|z_{l+1}): σ_q² = 1/(σ̂⁻² + σ_p⁻²),
  μ_q = (μ̂·σ̂⁻² + μ_p·σ_p⁻²)·σ_q². The posterior's own draw z_l goes down the ladder (the reference repository passes the
  prior's: the paper does not). Each layer's KL(q(z_l|·) ‖ p(z_l|z_{l+1})) is in closed form given z_{l+1}.

The code, for the metrics and the figures, holds every layer along the mean path (each layer at its mean given the
means above or below), bottom first, each as what it adds to its prior's mean given the layer above (`innovations`):
`decode` rebuilds the layers from the top, so that traversing an upper dimension moves every layer below it.

A learned prior on z_L has no KL per dimension: there the top layer's KL is the one-sample estimate log q(z_L|·) −
log p(z_L) while training, and along the mean path each of its dimensions' KL to N(0, 1) plus an equal share of
E_q[log N(z_L; 0, I) − log p(z_L)], estimated at one draw of a fixed seed: the layer's total is the estimate of its
KL, its dimensions keep their order.
"""

import keras
import numpy as np
import tensorflow as tf

from vae_tf import networks, priors
from vae_tf.latents import Gaussian
from vae_tf.losses import RECONSTRUCTION_LOSSES, gaussian_log_density, importance_weighted_bound
from vae_tf.models.base import STATISTICS_FIGURES, Model, posterior_statistics
from vae_tf.objectives import OBJECTIVES, stream_seed
from vae_tf.schedules import schedule_of

LOG_STD_FLOOR = -7.0  # keeps a merged or conditional Gaussian's precision finite


def gaussian_kl_between(mean, log_std, prior_mean, prior_log_std):
    """KL(N(mean, σ²) ‖ N(prior_mean, σ_p²)) per dimension [..., D]: log σ_p/σ + (σ² + (mean − prior_mean)²)/(2σ_p²) − ½."""
    return (prior_log_std - log_std + 0.5 * (tf.exp(2.0 * log_std) + tf.square(mean - prior_mean))
            * tf.exp(-2.0 * prior_log_std) - 0.5)


def merge(mean, log_std, prior_mean, prior_log_std):
    """The Ladder VAE's precision-weighted merge of the bottom-up N(mean, σ²) and the top-down N(prior_mean, σ_p²)."""
    precision, prior_precision = tf.exp(-2.0 * log_std), tf.exp(-2.0 * prior_log_std)
    variance = 1.0 / (precision + prior_precision)
    return (mean * precision + prior_mean * prior_precision) * variance, 0.5 * tf.math.log(variance)


def mlp(input_size, units, heads, activation, batch_norm, precision, name):
    """[B, input_size] -> [the hidden features [B, units], then one float32 Dense output per head (name, width)]: two
    hidden layers of `units` computing in `precision`, batch-normalised before the activation where `batch_norm`
    (the Ladder VAE's)."""
    x = inputs = keras.Input((input_size,), name="input")
    for i in range(2):
        x = keras.layers.Dense(networks.widened(units, activation), name=f"dense{i}", dtype=precision)(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"batch_norm{i}", dtype=precision)(x)
        x = networks.activation_layer(activation, f"activation{i}", precision)(x)
    return keras.Model(inputs, [x] + [keras.layers.Dense(width, name=head, dtype="float32")(x) for head, width in heads],
                       name=name)


class LayeredLatent:
    """What the rest of vae_tf reads of a layered code: the encoder's heads, one Gaussian part per layer (the
    likelihood draws each layer's noise from it), and the code the decoder reads, z_1."""

    categoricals = ()

    def __init__(self, sizes, heads):
        self.sizes, self.heads = sizes, heads
        self.parts = [Gaussian(size) for size in sizes]
        self.gaussian = self.parts[0]
        self.code_size = self.representation_size = sum(sizes)

    def describe(self):
        return "latent: " + ", ".join(f"z_{l + 1} of {size}" for l, size in enumerate(self.sizes))

    def split(self, posterior):
        return [tuple(posterior)]

    def prior_codes(self, rng, n):
        """n codes [n, Σ sizes] of draws from p(z): z_L from its prior as it is now, then down the layers."""
        noise = rng.standard_normal((n, self.code_size))
        top = self.model.top_prior
        if not top.closed_form:
            noise[:, -top.size:] = top.codes(rng, n)
        return self.model.ancestral_codes(noise)


class Layered(Model):
    """The shared generative model, training step and evaluation of the layered models. A family adds its inference:
    `build_inference()` (its encoder, `heads` and `up` networks), `encoder_posterior(x, training)` (what `encode`
    returns), `kl_note()` (how its KL per layer is computed, for the run's first line) and
    `walk(posterior, noise, training, with_path=False)`: one draw of every layer for R rows from the
    encoder's `posterior` of their images [R, ...] and `noise`, one [R, size] per layer, giving (z per layer,
    log q − log p per layer and dimension [R, size]: the draw's log weights, KL per layer and dimension [R, size]: what
    the training loss takes, z_1's posterior (mean, log_std)), and with `with_path` every layer's posterior too."""

    kl_in_closed_form = False  # the ELBO averages the sampled log weights
    layered = True  # latents.csv and the analysis read `code_posterior`

    def __init__(self, params, image_shape, dataset_size=0, **kwargs):
        super().__init__(params, image_shape, dataset_size, **kwargs)
        p = self.params
        self.sizes = [p.latent_size, *p.upper_latent_sizes]
        self.build_inference()
        self.top_prior = priors.build_prior(p, self.sizes[-1], image_shape, self.top_posterior, name="top_prior")
        self.latent = LayeredLatent(self.sizes, self.heads)
        self.latent.model = self
        # p(z_l | z_{l+1}) for l = 1 … L−1
        self.down = [mlp(self.sizes[l + 1], p.upper_layer_units, [("mean", size), ("log_std", size)], p.activation,
                         self.batch_norm, p.precision, f"down{l + 1}") for l, size in enumerate(self.sizes[:-1])]
        self.decoder = networks.build_decoder(image_shape, self.sizes[0], p.encoder_layers, p.decoder_layers,
                                              p.activation, p.precision, p.decoder)
        self.reconstruction_fn = RECONSTRUCTION_LOSSES[p.reconstruction_loss]
        self.schedule = schedule_of(p)
        self.objective = OBJECTIVES[p.objective](self.schedule, p, dataset_size)  # for its figures and checkpoint
        layers = tuple(f"kl_layer{l + 1}" for l in range(len(self.sizes)))
        self.step_figures = (("loss", "reconstruction_loss", "kl_loss", "kl_weight") + layers
                             + self.objective.figures + STATISTICS_FIGURES)
        self.built = True

    @property
    def code_prior(self):
        return self.top_prior

    def describe(self):
        prior = "" if self.top_prior.closed_form else f"; on z_{len(self.sizes)}, {self.top_prior.describe()}"
        layers = self.latent.describe()[len("latent: "):]
        return f"{self.params.model}: {layers}{prior} (KL per layer: {self.kl_note()})"

    def top_log_ratio(self, z, mean, log_std):
        """log q(z_L|·) − log p(z_L) at draws z [R, size] of the top layer's posterior N(mean, exp(log_std)²): per
        dimension [R, size] under N(0, I); under a learned prior, which has no part per dimension, [R, 1]."""
        if self.top_prior.closed_form:
            return _log_normal_ratio(z, mean, log_std, tf.zeros_like(z), tf.zeros_like(z))
        log_q = tf.reduce_sum(gaussian_log_density(z, mean, log_std), -1, keepdims=True)
        return log_q - self.top_prior.log_density(z)[:, None]

    def top_kl_along_path(self, mean, log_std):
        """The top layer's KL per dimension [R, size] along the mean path: to N(0, 1) in closed form, and under a
        learned prior each dimension's plus an equal share of E_q[log N(z; 0, I) − log p(z)] at one fixed draw."""
        kl = gaussian_kl_between(mean, log_std, tf.zeros_like(mean), tf.zeros_like(mean))
        if self.top_prior.closed_form:
            return kl
        z = mean + tf.exp(log_std) * tf.random.stateless_normal(tf.shape(mean), seed=[self.params.seed, 1])
        rest = priors.StandardNormal(self.sizes[-1]).log_density(z) - self.top_prior.log_density(z)  # [R]
        return kl + rest[:, None] / self.sizes[-1]

    def prior(self, level, above, training=False):
        """p(z_level | z_{level+1} = above): (mean, log_std) [B, size], level counted from 0."""
        _, mean, log_std = self.down[level](above, training=training)
        return mean, tf.maximum(log_std, LOG_STD_FLOOR)

    def loss_terms(self, data, step, stream):
        """Validation's and evaluation's figures: the networks in inference mode (batch normalisation's moving
        statistics, left as training made them)."""
        return self.forward(data, step, stream, training=False)[0]

    def forward(self, x, step, stream, replica=0, replicas=1, training=True):
        """(figures, None) of one batch on one device (the layered models train on one); `training` False evaluates
        with batch normalisation's moving statistics and updates none."""
        seed = stream_seed(self.params.seed, step, stream)
        k = self.params.iwae_samples if self.params.objective == "iwae" else 1
        rows = tf.shape(x)[0]
        noise = [tf.random.stateless_normal(tf.stack([k * rows, size]),
                                            seed=tf.random.experimental.stateless_fold_in(seed, level))
                 for level, size in enumerate(self.sizes)]
        repeated = tf.tile(x, [k, 1, 1, 1])  # sample-major
        posterior = [tf.tile(p, [k, 1]) for p in self.encoder_posterior(x, training=training)]
        z, log_ratio, kls, (mean, log_std) = self.walk(posterior, noise, training=training)
        logits = self.decoder(z[0], training=training)
        reconstruction = self.reconstruction_fn(repeated, logits)  # [k·B]
        layer_kls = [tf.reduce_mean(tf.reduce_sum(kl, -1)) for kl in kls]
        figures = {f"kl_layer{l + 1}": value for l, value in enumerate(layer_kls)}
        kl = tf.add_n(layer_kls)
        if self.params.objective == "iwae":  # Burda et al.'s bound over k draws of every layer
            log_weights = (-self.negative_log_likelihood(repeated, logits)
                           - tf.add_n([tf.reduce_sum(r, -1) for r in log_ratio]))
            bound = tf.reduce_mean(importance_weighted_bound(tf.reshape(log_weights, [k, rows])))
            loss, figures["iwae_bound"] = -bound, bound
        else:
            loss = tf.reduce_mean(reconstruction) + self.schedule.penalty(kl, step)
        return {"loss": loss, "reconstruction_loss": tf.reduce_mean(reconstruction), "kl_loss": kl,
                "kl_weight": self.schedule.weight(step), **figures, **posterior_statistics(mean, log_std)}, None

    def encode(self, x):
        return self.encoder_posterior(x, training=False)

    def log_densities(self, x, posterior, noise):
        """(log p(x|z_1), log p(z) − log q(z|x)), each [k, n], at draws of every layer made by `noise` [k, n, size]."""
        k, n = tf.shape(noise[0])[0], tf.shape(x)[0]
        repeated = tf.tile(x, [k, 1, 1, 1])
        tiled = [tf.tile(p, [k, 1]) for p in posterior]
        z, log_ratio, _, _ = self.walk(tiled, [tf.reshape(e, [k * n, -1]) for e in noise])
        log_likelihood = -self.negative_log_likelihood(repeated, self.decoder(z[0], training=False))
        prior_ratio = -tf.add_n([tf.reduce_sum(r, -1) for r in log_ratio])
        return tf.reshape(log_likelihood, [k, n]), tf.reshape(prior_ratio, [k, n])

    def code_posterior(self, x):
        """(code, mean, log_std, KL) [B, Σ sizes] each, bottom layer first, along the mean path (every layer at its
        mean given the means above or below): the code (`innovations`, what `decode` reads), each layer's posterior
        mean and log std there, and each dimension's KL to its prior; latents.csv's and the analysis' figures."""
        posterior = self.encoder_posterior(x, training=False)
        zeros = [tf.zeros([tf.shape(x)[0], size]) for size in self.sizes]
        means, _, kls, _, path = self.walk(posterior, zeros, with_path=True)
        return (self.innovations(means), tf.concat(means, -1), tf.concat([s for _, s in path], -1),
                tf.concat(kls, -1))

    def innovations(self, layers):
        """Layers [z_1, …, z_L] -> their code [B, Σ sizes]: each z_l less its prior's mean given z_{l+1} (what the
        layer adds to the one above), z_L as it is."""
        parts = [z - self.prior(level, layers[level + 1])[0] for level, z in enumerate(layers[:-1])]
        return tf.concat(parts + [layers[-1]], -1)

    def represent(self, x):
        return self.code_posterior(x)[0]

    def split_code(self, code):
        return tf.split(code, self.sizes, axis=-1)

    def bottom_layer(self, code):
        """A code [B, Σ sizes] (`innovations`) -> the z_1 [B, latent_size] it decodes through: from the top, each
        layer is its prior's mean given the layer above plus its own part of the code, so that a change in an upper
        layer's part moves every layer below it, as the generative model would."""
        parts = self.split_code(tf.convert_to_tensor(code, tf.float32))
        z = parts[-1]
        for level in reversed(range(len(self.sizes) - 1)):
            z = parts[level] + self.prior(level, z)[0]
        return z

    def likelihood_logits(self, code, x, training=False):
        return self.decoder(self.bottom_layer(code), training=training)

    def decode(self, code):
        return tf.sigmoid(self.likelihood_logits(code, None))

    def reconstruct(self, x):
        return self.decode(self.represent(x))

    def ancestral_codes(self, noise):
        """Codes [n, Σ sizes] (`innovations`) of draws from p(z) made by standard normal `noise` [n, Σ sizes]: z_L its
        noise, each z_l's part σ_p·noise given the layer above."""
        parts = self.split_code(tf.constant(noise, tf.float32))
        z, code = parts[-1], [parts[-1]]
        for level in reversed(range(len(self.sizes) - 1)):
            mean, log_std = self.prior(level, z)
            code.insert(0, tf.exp(log_std) * parts[level])
            z = mean + code[0]
        return tf.concat(code, -1).numpy()

    def sample(self, n, seed=0):
        return self.decode(self.latent.prior_codes(np.random.default_rng(seed), n))


def _log_normal_ratio(z, mean, log_std, prior_mean, prior_log_std):
    """log q(z) − log p(z) per dimension for diagonal Gaussians q = N(mean, σ²), p = N(prior_mean, σ_p²)."""
    return gaussian_log_density(z, mean, log_std) - gaussian_log_density(z, prior_mean, prior_log_std)


@keras.saving.register_keras_serializable(package="vae_tf")
class Hierarchical(Layered):
    """Burda et al.'s hierarchical VAE: q(z_1|x) from the encoder, q(z_{l+1}|z_l) from an MLP of the draw below."""

    batch_norm = False

    def kl_note(self):
        return "one-sample estimates at the draws"

    def build_inference(self):
        p = self.params
        self.heads = (("mean", p.latent_size), ("log_std", p.latent_size))
        self.encoder = networks.build_encoder(self.image_shape, p.encoder_layers, self.heads, p.activation,
                                              p.precision)
        self.up = [mlp(below, p.upper_layer_units, [("mean", size), ("log_std", size)], p.activation, False,
                       p.precision, f"up{l + 2}") for l, (below, size) in enumerate(zip(self.sizes, self.sizes[1:]))]

    def encoder_posterior(self, x, training=False):
        return self.encoder(x, training=training)

    def top_posterior(self, x):
        """q(z_L | x) along the mean path, in inference mode: (mean, log_std) [B, size] (what the VampPrior mixes)."""
        mean, log_std = self.encoder(x, training=False)
        for up in self.up:
            _, mean, log_std = up(mean, training=False)
            log_std = tf.maximum(log_std, LOG_STD_FLOOR)
        return mean, log_std

    def walk(self, posterior, noise, training=False, with_path=False):
        (mean, log_std), draws, gaussians = posterior, [], []
        for level in range(len(self.sizes)):
            if level:
                _, mean, log_std = self.up[level - 1](draws[-1], training=training)
                log_std = tf.maximum(log_std, LOG_STD_FLOOR)
            gaussians.append((mean, log_std))
            draws.append(mean + tf.exp(log_std) * noise[level])
        top = len(self.sizes) - 1
        log_ratio = [_log_normal_ratio(z, mean, log_std, *self.prior(level, draws[level + 1], training))
                     for level, (z, (mean, log_std)) in enumerate(zip(draws[:top], gaussians[:top]))]
        log_ratio.append(self.top_log_ratio(draws[top], *gaussians[top]))
        # Along the mean path (noise 0) the draws are the means: the KL per dimension there is q's to the prior
        # given the mean above, in closed form; while training, the sampled estimate (z_{l+1} depends on z_l).
        kls = ([gaussian_kl_between(m, s, *self.prior(level, draws[level + 1]))
                for level, (m, s) in enumerate(gaussians[:top])] + [self.top_kl_along_path(*gaussians[top])]
               if with_path else log_ratio)
        result = (draws, log_ratio, kls, gaussians[0])
        return result + (gaussians,) if with_path else result


@keras.saving.register_keras_serializable(package="vae_tf")
class Ladder(Layered):
    """Sønderby et al.'s Ladder VAE: a deterministic bottom-up pass, then a top-down one merging each layer's
    bottom-up Gaussian with the prior by precision."""

    batch_norm = True

    def kl_note(self):
        top = "" if self.top_prior.closed_form else f"; z_{len(self.sizes)}'s a one-sample estimate"
        return f"in closed form given the draw above{top}"

    def build_inference(self):
        p = self.params
        self.heads = tuple(head for l, size in enumerate(self.sizes)
                           for head in ((f"mean{l + 1}", size), (f"log_std{l + 1}", size)))
        self.encoder = networks.build_encoder(self.image_shape, p.encoder_layers,
                                              (("features", p.upper_layer_units),) + self.heads[:2], p.activation,
                                              p.precision)
        self.up = [mlp(p.upper_layer_units, p.upper_layer_units, [("mean", size), ("log_std", size)], p.activation,
                       True, p.precision, f"up{l + 2}") for l, size in enumerate(self.sizes[1:])]

    def encoder_posterior(self, x, training=False):
        """The bottom-up Gaussians (μ̂_l, log σ̂_l) of every layer, bottom first: [mean_1, log_std_1, mean_2, …]."""
        features, mean, log_std = self.encoder(x, training=training)
        gaussians = [mean, log_std]
        for up in self.up:
            features, mean, log_std = up(features, training=training)
            gaussians += [mean, log_std]
        return gaussians

    def top_posterior(self, x):
        """q(z_L | x), the top layer's bottom-up Gaussian, in inference mode (batch normalisation's moving
        statistics): (mean, log_std) [B, size], what the VampPrior mixes."""
        mean, log_std = self.encoder_posterior(x, training=False)[-2:]
        return mean, tf.maximum(log_std, LOG_STD_FLOOR)

    def walk(self, posterior, noise, training=False, with_path=False):
        levels = len(self.sizes)
        bottom_up = [(posterior[2 * l], tf.maximum(posterior[2 * l + 1], LOG_STD_FLOOR)) for l in range(levels)]
        draws, log_ratio, kls, gaussians = [None] * levels, [None] * levels, [None] * levels, [None] * levels
        for level in reversed(range(levels)):
            if level + 1 < levels:
                prior = self.prior(level, draws[level + 1], training)
                mean, log_std = merge(*bottom_up[level], *prior)
            else:
                mean, log_std = bottom_up[level]
            draws[level] = mean + tf.exp(log_std) * noise[level]
            gaussians[level] = (mean, log_std)
            if level + 1 < levels:
                log_ratio[level] = _log_normal_ratio(draws[level], mean, log_std, *prior)
                kls[level] = gaussian_kl_between(mean, log_std, *prior)
            else:  # the top layer: in closed form to N(0, I); to a learned prior, its estimate
                log_ratio[level] = self.top_log_ratio(draws[level], mean, log_std)
                kls[level] = (self.top_kl_along_path(mean, log_std) if with_path or self.top_prior.closed_form
                              else log_ratio[level])
        result = (draws, log_ratio, kls, gaussians[0])
        return result + (gaussians,) if with_path else result
