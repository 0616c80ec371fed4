"""The latent code as objects: each part is a posterior family with its prior, and a `Latent` joins the parts.

A part says what the encoder outputs for it (`heads`: Dense layers, by name and width), how a training step samples
it from noise, what its KL to the prior is, how it is decoded deterministically (`mode`), what the metrics read of it
(`representation`), how evaluation draws it exactly (`draw_with_ratio`: the draw and log p − log q of it),
and how the prior is sampled. The model, the objectives, the likelihood, the metrics' representation and the
analysis all go through these methods, so a new posterior family is one class here.

- `Gaussian(size, prior)`: q(z|x) = N(mean, exp(log_std)²), prior N(0, I) or a learned one (`vae_tf.priors`);
  z = mean + exp(log_std)·ε (the reparameterisation trick, Kingma & Welling 2014); KL in closed form to N(0, I)
  (their appendix B), else estimated at the sample, log q(z|x) − log p(z).
- `FlowGaussian(size, flow, prior)`: the Gaussian's draw pushed through a normalizing flow (`vae_tf.flows`); the
  code is the flow's output, its KL a one-sample estimate.
- `Categorical(size, temperature)`: q(c|x) = Cat(softmax(logits)), prior uniform over `size` categories. Training
  decodes the concrete (Gumbel-softmax) relaxation softmax((logits + g)/τ), g ~ Gumbel(0, 1) (Maddison et al. 2017;
  Jang et al. 2017); evaluation decodes the category itself, one-hot: its mode, or a Gumbel-max draw (an exact
  sample). Its KL is the categorical's closed form KL(q(c|x) ‖ U) = Σ q log q + log K, which JointVAE trains
  (Dupont 2018, §3): the relaxed variables' own KL has no closed form.

Shapes: the encoder returns the parts' heads in order, `posterior` = [mean, log_std, logits_0, logits_1, ...], each
[B, width]; the decoder reads the parts' samples side by side, a `code` [B, Σ size].
"""

import functools
import math

import numpy as np
import tensorflow as tf

from vae_tf import latent_space
from vae_tf.losses import gaussian_kl, gaussian_log_density
from vae_tf.priors import StandardNormal

GUMBEL_EPSILON = 1e-20  # keeps log(−log u) finite at u = 0


class Part:
    """What every part shares: an exact draw for the likelihood with its importance weight."""

    def draw_with_ratio(self, parameters, noise):
        """An exact draw of q(code|x) made by `noise` [..., B, width], and log p(code) − log q(code|x) [..., B]."""
        code = self.draw(parameters, noise)
        return code, self.log_prior_ratio(parameters, code)


class GaussianHeads(Part):
    """What a diagonal Gaussian q_0(z_0|x) = N(mean, exp(log_std)²) gives both Gaussian families: its heads, noise,
    prior, and the KL, in closed form to N(0, I), else estimated at the draw the step decodes."""

    def __init__(self, size, prior=None):
        self.size, self.prior = size, prior or StandardNormal(size)
        self.heads = (("mean", size), ("log_std", size))
        self.closed_form = self.prior.closed_form  # whether `kl` is exact, or a one-sample estimate
        self.code_information = True  # whether I(x; z) of (mean, log_std) is the code's (`latent_space.index_code_mi`)

    def describe(self):
        if self.closed_form:
            return f"{self.size} Gaussian dimensions (KL in closed form)"
        return f"{self.size} Gaussian dimensions, {self.prior.describe()} (KL: a one-sample estimate)"

    def noise(self, rows, seed):
        return tf.random.stateless_normal(tf.stack([rows, self.size]), seed=seed)

    def kl(self, parameters, noise=None):
        """KL(q(z|x) ‖ p(z)) [B]: in closed form to N(0, I); else (a learned prior, a flow) its one-sample estimate
        log q(z|x) − log p(z) at the draw `noise` [B, size] makes, the one the step decodes (unbiased; Tomczak &
        Welling 2018, eq. 4)."""
        if self.closed_form:
            return gaussian_kl(*parameters[:2])
        return -self.draw_with_ratio(parameters, noise)[1]

    def evaluation_noise(self, rng, samples):
        return rng.standard_normal((samples, self.size))

    def active_units(self, parameters, seed=0):
        """Which of the code's dimensions are active [size] (bool) over n images' posteriors `parameters` (NumPy,
        [n, ·] each): Burda et al.'s criterion on the means, E[z|x]."""
        return latent_space.active_units(parameters[0])

    def prior_codes(self, rng, n):
        return self.prior.codes(rng, n)


class Gaussian(GaussianHeads):
    """Diagonal Gaussian posterior; the standard normal prior, or `prior` (`vae_tf.priors`)."""

    def sample(self, parameters, noise):
        mean, log_std = parameters
        return mean + tf.exp(log_std) * noise

    draw = sample  # the reparameterised sample is an exact one

    def mode(self, parameters):
        return parameters[0]

    def representation(self, parameters):
        """The posterior mean [B, size]: what the metrics and the latent-space figures read."""
        return parameters[0]

    def log_prior_ratio(self, parameters, z):
        """log p(z) − log q(z|x) summed over the part, for samples z [..., B, size] -> [..., B]."""
        mean, log_std = parameters
        return self.prior.log_density(z) - tf.reduce_sum(gaussian_log_density(z, mean, log_std), axis=-1)


class FlowGaussian(GaussianHeads):
    """A diagonal Gaussian q_0(z_0|x) pushed through a normalizing flow (`vae_tf.flows`): the code is z_K, and
    log q(z_K|x) = log q_0(z_0|x) − Σ_k log |det ∂f_k/∂z| per sample. Its KL has no closed form, and log q(z_K|x)
    needs the draw's noise (z_0), so its weight comes with the draw (`draw_with_ratio`), never from z_K alone."""

    def __init__(self, size, flow, prior=None):
        super().__init__(size, prior)
        self.flow = flow
        self.heads = self.heads + flow.heads  # the flow's amortised parameters follow the mean and log_std
        self.closed_form = False
        self.code_information = False  # the flow's parameters depend on x: z_K can hold what q_0 does not

    def describe(self):
        return (f"{self.size} Gaussian dimensions through {self.flow.describe()}, {self.prior.describe()} (KL: a "
                f"one-sample estimate)")

    def draw_with_ratio(self, parameters, noise):
        mean, log_std, *flow_parameters = parameters
        base = mean + tf.exp(log_std) * noise
        z, log_det = self.flow.transform(base, flow_parameters)
        log_q = tf.reduce_sum(gaussian_log_density(base, mean, log_std), axis=-1) - log_det
        return z, self.prior.log_density(z) - log_q

    def sample(self, parameters, noise):
        return self.draw_with_ratio(parameters, noise)[0]

    draw = sample

    def mode(self, parameters):
        """The flow's image of the base mean: a deterministic code (the mode of q_0, not of q_K)."""
        mean, _, *flow_parameters = parameters
        return self.flow.transform(mean, flow_parameters)[0]

    representation = mode

    def active_units(self, parameters, seed=0):
        """Burda et al.'s criterion on z_K, the code the decoder reads: the flow's parameters depend on x, so z_K can
        vary with x where q_0's mean does not, and E[z_K|x] has no closed form: its variance over the images is
        estimated from ACTIVE_DRAWS draws of each posterior (`latent_space.variance_of_posterior_means`)."""
        noise = np.random.default_rng(seed).standard_normal((latent_space.ACTIVE_DRAWS, *parameters[0].shape))
        draws = self._draws([tf.constant(p, tf.float32) for p in parameters], tf.constant(noise, tf.float32))
        return latent_space.variance_of_posterior_means(draws.numpy()) > latent_space.ACTIVE_VARIANCE

    @functools.cached_property
    def _draws(self):
        return tf.function(self.draw, autograph=False)  # traced once per shape: a validation's every time


class Categorical(Part):
    """A categorical posterior over `size` categories with a uniform prior, relaxed at `temperature` while training."""

    def __init__(self, size, temperature, index=0):
        self.size, self.temperature, self.name = size, temperature, f"c{index}"
        self.heads = ((f"categorical{index}", size),)

    def describe(self):
        return (f"a {self.size}-way categorical {self.name} (concrete relaxation at temperature {self.temperature:g} "
                f"while training, one-hot at evaluation; KL in the categorical's closed form)")

    def noise(self, rows, seed):
        return tf.random.stateless_uniform(tf.stack([rows, self.size]), seed=seed)

    def _gumbel(self, uniform):
        return -tf.math.log(-tf.math.log(uniform + GUMBEL_EPSILON) + GUMBEL_EPSILON)

    def sample(self, parameters, noise):
        """The concrete relaxation softmax((logits + g)/τ) [B, size] of a category drawn from q(c|x)."""
        return tf.nn.softmax((parameters[0] + self._gumbel(noise)) / self.temperature)

    def draw(self, parameters, noise):
        """An exact draw from q(c|x), one-hot [..., B, size]: the Gumbel-max trick."""
        return tf.one_hot(tf.argmax(parameters[0] + self._gumbel(noise), axis=-1), self.size)

    def kl(self, parameters):
        """KL(Cat(softmax(logits)) ‖ U(size)) [B] = Σ q log q + log size."""
        log_q = tf.nn.log_softmax(parameters[0])
        return tf.reduce_sum(tf.exp(log_q) * log_q, axis=-1) + math.log(self.size)

    def mode(self, parameters):
        return tf.one_hot(tf.argmax(parameters[0], axis=-1), self.size)

    def representation(self, parameters):
        """The most probable category [B, 1] (as a float), not a probability: binned metrics such as MIG put its K
        values in K bins of their own (while K <= their number of bins, 20)."""
        return tf.cast(tf.argmax(parameters[0], axis=-1), tf.float32)[:, None]

    def log_prior_ratio(self, parameters, code):
        """log p(c) − log q(c|x) of one-hot draws [..., B, size] -> [..., B]."""
        return tf.reduce_sum(code * (-math.log(self.size) - tf.nn.log_softmax(parameters[0])), axis=-1)

    def evaluation_noise(self, rng, samples):
        return rng.uniform(size=(samples, self.size))

    def prior_codes(self, rng, n):
        return np.eye(self.size)[rng.integers(self.size, size=n)]


class Latent:
    """The whole code: `latent_size` Gaussian dimensions (with `prior`, None: N(0, I), and through `flow`, None: none),
    then one categorical per entry of `categorical_sizes`."""

    def __init__(self, latent_size, categorical_sizes=(), temperature=0.67, prior=None, flow=None):
        self.gaussian = Gaussian(latent_size, prior) if flow is None else FlowGaussian(latent_size, flow, prior)
        self.categoricals = [Categorical(size, temperature, i) for i, size in enumerate(categorical_sizes)]
        self.parts = [self.gaussian, *self.categoricals]
        self.heads = [head for part in self.parts for head in part.heads]
        self.code_size = sum(part.size for part in self.parts)
        self.representation_size = latent_size + len(self.categoricals)  # the metrics' columns: one per categorical

    def describe(self):
        return "latent: " + " and ".join(part.describe() for part in self.parts)

    def split(self, posterior):
        """The encoder's outputs -> one tuple of parameters per part."""
        posterior, parts = list(posterior), []
        for part in self.parts:
            parts.append(tuple(posterior[:len(part.heads)]))
            posterior = posterior[len(part.heads):]
        return parts

    def join(self, codes):
        """The parts' codes side by side -> the decoder's input [..., code_size]."""
        return codes[0] if len(codes) == 1 else tf.concat(codes, axis=-1)

    def mode(self, posterior):
        """The deterministic code of each image: the Gaussian mean and each categorical's most probable category."""
        return self.join([part.mode(p) for part, p in zip(self.parts, self.split(posterior))])

    def representation(self, posterior):
        """Codes for the metrics [B, latent_size + number of categoricals]."""
        return self.join([part.representation(p) for part, p in zip(self.parts, self.split(posterior))])

    def prior_codes(self, rng, n):
        """n codes [n, code_size] (float32) drawn from the prior with NumPy's `rng`, part by part."""
        return np.concatenate([part.prior_codes(rng, n) for part in self.parts], axis=1).astype(np.float32)

    def categorical_kl(self, posterior):
        """Σ over the categoricals of KL(q(c|x) ‖ U) [B]."""
        parts = self.split(posterior)[1:]
        return tf.add_n([part.kl(p) for part, p in zip(self.categoricals, parts)])

    def categorical_marginal_kl(self, posterior):
        """Σ over the categoricals of KL(q̄(c) ‖ U) (a scalar), q̄(c) the average of q(c|x) over the posteriors'
        rows (in training, the global batch's, gathered across replicas by `VAE.forward`): the part of the
        average KL(q(c|x) ‖ U) that is no information about x (the KL's decomposition, Hoffman & Johnson 2016:
        E_x KL(q(c|x) ‖ p) = I(x; c) + KL(q̄(c) ‖ p)). Confident posteriors that all pick one category meet
        JointVAE's capacity term with no information at all; this term is what tells them apart."""
        # log q̄ serves as logits: softmax(log q̄) = q̄
        averages = [tf.math.log(tf.reduce_mean(tf.nn.softmax(logits), axis=0, keepdims=True) + 1e-12)
                    for (logits,) in self.split(posterior)[1:]]
        return tf.add_n([part.kl((average,))[0] for part, average in zip(self.categoricals, averages)])

    def hsic(self, posterior, kernel="linear"):
        """HSIC(mean, q) (a scalar), the Hilbert-Schmidt independence criterion (Gretton et al. 2005, the biased
        estimator (1/B²)·tr(K H L H), H = I − 1/B) between the Gaussian part's posterior means mean [B, latent_size] and
        the categoricals' probabilities q(c|x) side by side q [B, Σ K], over the posteriors' rows. L = q qᵀ, linear in
        q: on one-hot codes that kernel tells every pair of categories apart. K is `kernel` on the means: "linear"
        (mean meanᵀ, when HSIC is Σ_{d,k} Cov(mean_d, q_k)², DIP-VAE's off-diagonal penalty (Kumar et al. 2018) on the
        block between the parts) or "rbf" (exp(−‖meanᵢ − meanⱼ‖²/2σ²), 2σ² the average squared distance between
        two rows, held out of the gradient; zero in the limit only when the parts are independent, Gretton et al.'s
        theorem 4). A categorical that varies independently of the Gaussian code, as a discrete factor drawn apart
        from the others does of their latents, costs nothing; one that repeats what a Gaussian latent holds (the
        sprites split by size beside a latent of size) pays for it. HSIC-constrained VAEs: Lopez et al. 2018."""
        (mean, _), *categorical = self.split(posterior)
        probabilities = tf.concat([tf.nn.softmax(logits) for (logits,) in categorical], axis=1)
        centred_probabilities = probabilities - tf.reduce_mean(probabilities, axis=0, keepdims=True)  # H q
        rows = tf.cast(tf.shape(mean)[0], mean.dtype)
        if kernel == "linear":
            centred_mean = mean - tf.reduce_mean(mean, axis=0, keepdims=True)
            covariance = tf.matmul(centred_mean, centred_probabilities, transpose_a=True) / rows  # [latent_size, Σ K]
            return tf.reduce_sum(tf.square(covariance))
        squared = tf.reduce_sum(tf.square(mean[:, None, :] - mean[None, :, :]), axis=-1)  # [B, B]
        bandwidth = tf.stop_gradient(tf.reduce_sum(squared) / (rows * (rows - 1.0)))  # 2σ²
        gram = tf.exp(-squared / (bandwidth + 1e-12))
        # tr(K H L H) = Σ_k (H q_k)ᵀ K (H q_k), L = q qᵀ
        return tf.reduce_sum(centred_probabilities * tf.matmul(gram, centred_probabilities)) / tf.square(rows)
