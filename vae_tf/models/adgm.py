"""The auxiliary deep generative model (ADGM) of Maaløe, Sønderby, Sønderby & Winther 2016 ("Auxiliary Deep
Generative Models", §3.1): M2 with an auxiliary Gaussian a that makes the classifier's posterior richer.

Generative model: p(x, y, z, a) = p(a | x, y, z) p(x | y, z) p(y) p(z), p(y) uniform, p(z) = N(0, I); marginalising
a leaves M2's p(x, y, z). Inference: q(a, y, z | x) = q(a | x) q(y | a, x) q(z | a, y, x), so that q(y | x) =
E_q(a|x)[q(y | a, x)] is a continuous mixture of classifiers.

For a labelled image (eq. 12): −L(x, y) = E_q(a,z|x,y)[log p(a|x,y,z) + log p(x|y,z) + log p(y) + log p(z)
− log q(a|x) − log q(z|a,y,x)]; for an unlabelled one (eq. 13) y is summed out under q(y|a,x) and its entropy
added. The loss (eq. 15) adds α · E_q(a|x)[−log q(y|a,x)] on the labelled images, α as M2's. Each image draws one
a; z's KL is in closed form given a, and a's cost log q(a|x) − log p(a|x,y,z) is a one-sample estimate (log.csv's
auxiliary_kl). β and the KL schedules weigh both: they are what the latents cost.

The sum over y is batched as M2's: a, q(y|a,x) and the convolutional features run once per image, q(z|a,y,x),
p(x|y,z) and p(a|x,y,z) once over the B·K rows. The paper's MNIST model uses two hidden layers of 500 units in every
network and a and z of 100 dimensions; here every network has `encoder_layers`, z has `latent_size` and a has
`auxiliary_size` (None: `latent_size`) dimensions.
"""

import keras
import tensorflow as tf

from vae_tf import networks
from vae_tf.latents import Gaussian
from vae_tf.losses import gaussian_kl, gaussian_log_density
from vae_tf.models.m2 import FIGURES, M2

# How many draws of a average q(y|a,x) into q(y|x) for `classify` and `encode`: the same noise for every image, so
# an image's class does not depend on the batch it comes in.
CLASSIFY_SAMPLES = 16


@keras.saving.register_keras_serializable(package="vae_tf")
class ADGM(M2):
    """ADGM: q(a|x) (`auxiliary_encoder`), q(y|a,x) (`classifier`), q(z|a,y,x) (`encoder_head`), p(x|y,z)
    (`decoder`) and p(a|x,y,z) (`auxiliary_decoder`); its code is M2's, z then y one-hot: a is no part of it."""

    step_figures = FIGURES[:FIGURES.index("labelled_elbo")] + ("auxiliary_kl",) + FIGURES[FIGURES.index("labelled_elbo"):]

    def build_networks(self):
        p, image_shape, k = self.params, self.image_shape, self.classes
        self.auxiliary_size = p.auxiliary_size or p.latent_size
        auxiliary = self.proposal_parts[-1]
        layers, activation, precision = p.encoder_layers, p.activation, p.precision
        self.auxiliary_encoder = networks.build_encoder(image_shape, layers, auxiliary.heads, activation, precision,
                                                        name="auxiliary_encoder")
        # q(y|a,x) and q(z|a,y,x) share the convolutions over x; each has its own dense layers.
        self.features = networks.build_features(image_shape, layers, activation, precision)
        width = self.features.output_shape[-1]
        self.classifier = networks.build_conditional_head(width, self.auxiliary_size, layers, [("logits", k)],
                                                          activation, precision, name="classifier")
        self.encoder_head = networks.build_conditional_head(width, self.auxiliary_size + k, layers,
                                                            self.latent.gaussian.heads, activation, precision)
        self.decoder = networks.build_decoder(image_shape, self.latent.code_size, p.encoder_layers, p.decoder_layers,
                                              activation, precision, p.decoder)
        self.generative_features = networks.build_features(image_shape, layers, activation, precision,
                                                           name="generative_features")
        self.auxiliary_decoder = networks.build_conditional_head(width, k + p.latent_size, layers, auxiliary.heads,
                                                                 activation, precision, name="auxiliary_decoder")

    @property
    def proposal_parts(self):
        """z, y, then a: `log_likelihood` draws a as well."""
        return [*self.latent.parts, Gaussian(self.auxiliary_size)]

    def describe(self):
        return super().describe().replace("M2:", f"ADGM: a {self.auxiliary_size}-dimensional auxiliary a and", 1)

    def infer(self, x, seed, training):
        """(q(y|a,x)'s logits [B, K] at one a ~ q(a|x), the context of q(z|a,y,x) and p(a|x,y,z) besides y and z:
        [features [B, F], a [B, A], log q(a|x) [B], p(a|·)'s features of x [B, F]])."""
        mean, log_std = self.auxiliary_encoder(x, training=training)
        a = mean + tf.exp(log_std) * tf.random.stateless_normal(tf.shape(mean), seed=seed)
        log_q = tf.reduce_sum(gaussian_log_density(a, mean, log_std), axis=-1)
        features = self.features(x, training=training)
        logits = self.classifier([features, a], training=training)
        return logits, [features, a, log_q, self.generative_features(x, training=training)]

    def elbo_terms(self, x, context, y, noise, training):
        """−log p(x|y,z), KL(q(z|a,y,x) ‖ p(z)) and a's cost log q(a|x) − log p(a|x,y,z), each [rows], and
        q(z|a,y,x)'s (mean, log_std), at one z = mean + exp(log_std)·noise per row."""
        features, a, log_q, generative_features = context
        mean, log_std = self.encoder_head([features, tf.concat([a, y], axis=-1)], training=training)
        z = mean + tf.exp(log_std) * noise
        logits = self.decoder(tf.concat([z, y], axis=-1), training=training)
        a_mean, a_log_std = self.auxiliary_decoder([generative_features, tf.concat([y, z], axis=-1)],
                                                   training=training)
        log_p = tf.reduce_sum(gaussian_log_density(a, a_mean, a_log_std), axis=-1)
        return self.reconstruction_fn(x, logits), gaussian_kl(mean, log_std), log_q - log_p, (mean, log_std)

    def _auxiliary_draws(self, x):
        """CLASSIFY_SAMPLES draws of a ~ q(a|x), [S·B, A] sample-major, and the features of x repeated to match."""
        mean, log_std = self.auxiliary_encoder(x, training=False)
        noise = tf.random.stateless_normal((CLASSIFY_SAMPLES, 1, self.auxiliary_size), seed=[self.params.seed, 7])
        a = tf.reshape(mean[None] + tf.exp(log_std)[None] * noise, [-1, self.auxiliary_size])
        return a, tf.tile(self.features(x, training=False), [CLASSIFY_SAMPLES, 1])

    def classify(self, x):
        """q(y|x) = E_q(a|x)[q(y|a,x)] [B, K], averaged over CLASSIFY_SAMPLES draws of a."""
        a, features = self._auxiliary_draws(x)
        probabilities = tf.nn.softmax(self.classifier([features, a], training=False))
        return tf.reduce_mean(tf.reshape(probabilities, [CLASSIFY_SAMPLES, -1, self.classes]), axis=0)

    def encode(self, x):
        """[mean, log_std] of q(z|ā, ŷ, x) at a's mean ā and the most probable class ŷ of q(y|x), then log q(y|x)
        [B, K] as the categorical's logits."""
        probabilities = self.classify(x)
        predicted = tf.one_hot(tf.argmax(probabilities, -1), self.classes)
        a, _ = self.auxiliary_encoder(x, training=False)
        mean, log_std = self.encoder_head([self.features(x, training=False), tf.concat([a, predicted], axis=-1)],
                                          training=False)
        return [mean, log_std, tf.math.log(probabilities + 1e-12)]

    def log_densities(self, x, posterior, noise):
        """(log p(x|y_k,z_k), log p(y_k) p(z_k) p(a_k|x,y_k,z_k) − log q(a_k|x) q(y_k|a_k,x) q(z_k|a_k,y_k,x)), each
        [k, n], at exact draws a_k ~ q(a|x) (`noise[2]`), y_k ~ q(y|a_k,x) (the Gumbel-max trick on `noise[1]`) and
        z_k ~ q(z|a_k,y_k,x) (`noise[0]`). p(a|x,y,z) integrates to 1 over a, so the weights' mean is p(x) in
        expectation (Maaløe et al. 2016, eq. 12 with K samples)."""
        k, n = tf.shape(noise[0])[0], tf.shape(x)[0]
        gaussian, categorical, _ = self.proposal_parts
        a_mean, a_log_std = self.auxiliary_encoder(x, training=False)
        a = a_mean[None] + tf.exp(a_log_std)[None] * noise[2]  # [k, n, A]
        log_q_a = tf.reduce_sum(gaussian_log_density(a, a_mean, a_log_std), axis=-1)
        a = tf.reshape(a, [-1, self.auxiliary_size])
        features = tf.tile(self.features(x, training=False), tf.stack([k, 1]))  # sample-major, as a
        logits = tf.reshape(self.classifier([features, a], training=False), [k, n, self.classes])
        y = categorical.draw([logits], noise[1])  # [k, n, K]
        flat_y = tf.reshape(y, [-1, self.classes])
        mean, log_std = self.encoder_head([features, tf.concat([a, flat_y], axis=-1)], training=False)
        z = mean + tf.exp(log_std) * tf.reshape(noise[0], [-1, self.params.latent_size])
        generative_features = tf.tile(self.generative_features(x, training=False), tf.stack([k, 1]))
        p_mean, p_log_std = self.auxiliary_decoder([generative_features, tf.concat([flat_y, z], axis=-1)],
                                                   training=False)
        log_p_a = tf.reshape(tf.reduce_sum(gaussian_log_density(a, p_mean, p_log_std), axis=-1), [k, n])
        prior_ratio = (tf.reshape(gaussian.log_prior_ratio([mean, log_std], z), [k, n])
                       + categorical.log_prior_ratio([logits], y) + log_p_a - log_q_a)
        decoded = self.decoder(tf.concat([z, flat_y], axis=-1), training=False)
        log_likelihood = -self.negative_log_likelihood(tf.tile(x, [k, 1, 1, 1]), decoded)
        return tf.reshape(log_likelihood, [k, n]), prior_ratio
