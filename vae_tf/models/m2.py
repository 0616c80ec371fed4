"""M2, the semi-supervised VAE of Kingma, Rezende, Mohamed & Welling 2014 ("Semi-Supervised Learning with Deep
Generative Models", §2.2): a class y beside the Gaussian code z, p(x, y, z) = p(x | y, z) p(y) p(z) with p(y)
uniform, inferred by q(y | x) (a classifier) and q(z | x, y).

For a labelled image (eq. 6): −L(x, y) = E_q(z|x,y)[log p(x|y,z)] + log p(y) − KL(q(z|x,y) ‖ p(z)).
For an unlabelled one (eq. 7), y is summed out: −U(x) = Σ_y q(y|x) (−L(x, y)) + H(q(y|x)).
The loss (eq. 9) adds the classifier's cross-entropy on the labelled images, weighted by α:
mean_l L(x, y) + mean_u U(x) + α · mean_l [−log q(y|x)].

The paper's α = 0.1·N multiplies an expectation over the labelled images inside a sum over all N images; with the
equal labelled and unlabelled batches used here, each averaging its ELBO, the same balance between the classifier's
term and one image's ELBO is α = 0.1·N / N_labelled (`classification_weight` None). β and the KL schedules weigh the
KL of z, as in the VAE.

DIP-VAE-II (Kumar et al. 2018) composes: its penalty is taken on the covariance of the step's aggregate posterior
q(z), each unlabelled image's q(z|x) the mixture Σ_y q(y|x) q(z|x,y) (`decorrelation`).

The sum over y is batched: the encoder's convolutions run once per image, their features are repeated for each of the
K classes, and q(z|x,y) and the decoder each run once over the B·K rows. Unlike the reference implementation's known
slips (a softplus applied to a log-variance; the KL taken at a sample the decoder never saw), q(z|x,y) is a
Gaussian of log standard deviation and the decoder reads the very z the KL is taken at.
"""

import math

import keras
import tensorflow as tf

from vae_tf import networks
from vae_tf.latents import Latent
from vae_tf.losses import RECONSTRUCTION_LOSSES, gaussian_kl
from vae_tf.models.base import STATISTICS_FIGURES, VALIDATION_FIGURES, Model, posterior_statistics
from vae_tf.objectives import OBJECTIVES, stream_seed
from vae_tf.schedules import schedule_of

# log.csv's columns: the loss and its parts on the unlabelled batch (y summed out), then the two ELBOs (nats, β = 1),
# the classifier's cross-entropy and accuracy on the labelled batch, and the posterior statistics of q(z|x,y).
FIGURES = ("loss", "reconstruction_loss", "kl_loss", "kl_weight", "labelled_elbo", "unlabelled_elbo",
           "classification_loss", "labelled_accuracy") + STATISTICS_FIGURES


@keras.saving.register_keras_serializable(package="vae_tf")
class M2(Model):
    """M2: a classifier q(y|x), an encoder q(z|x,y), a decoder p(x|y,z); its code is z then y one-hot (a
    `Latent` of `latent_size` Gaussian dimensions and one categorical of the label's K classes)."""

    classifies = True
    step_figures = FIGURES
    kl_in_closed_form = False  # z's KL depends on the class drawn: the ELBO averages the sampled log weights
    # Validated on images with their labels: labelled_accuracy there is q(y|x)'s validation accuracy.
    validation_figures = VALIDATION_FIGURES + ("labelled_elbo", "unlabelled_elbo", "classification_loss",
                                               "labelled_accuracy")

    def __init__(self, params, image_shape, dataset_size=0, **kwargs):
        super().__init__(params, image_shape, dataset_size, **kwargs)
        from vae_tf.datasets import class_names
        p = self.params
        self.classes = len(class_names(p))
        self.latent = Latent(p.latent_size, [self.classes])
        self.build_networks()
        self.reconstruction_fn = RECONSTRUCTION_LOSSES[p.reconstruction_loss]
        self.schedule = schedule_of(p)
        self.objective = OBJECTIVES[p.objective](self.schedule, p, dataset_size)  # its auxiliary update: none
        self.decorrelates = p.objective == "dip_vae_ii"  # beta_vae's penalty is the KL schedule's, applied below
        labelled = max(p.labels, 1)
        self.alpha = (p.classification_weight if p.classification_weight is not None
                      else 0.1 * dataset_size / labelled)
        self.built = True

    def build_networks(self):
        """q(y|x) (`classifier`, of `classifier_layers`), q(z|x,y) (`features`, then `encoder_head`) and p(x|y,z)
        (`decoder`)."""
        p, image_shape = self.params, self.image_shape
        self.features = networks.build_features(image_shape, p.encoder_layers, p.activation, p.precision)
        self.encoder_head = networks.build_conditional_head(self.features.output_shape[-1], self.classes,
                                                            p.encoder_layers, self.latent.gaussian.heads,
                                                            p.activation, p.precision)
        self.classifier = networks.build_encoder(image_shape, p.classifier_layers or p.encoder_layers,
                                                 [("logits", self.classes)],
                                                 p.activation, p.precision, name="classifier")
        self.decoder = networks.build_decoder(image_shape, self.latent.code_size, p.encoder_layers, p.decoder_layers,
                                              p.activation, p.precision, p.decoder)

    def describe(self):
        return (f"M2: {self.params.latent_size} Gaussian dimensions and the class of {self.params.label_factor} "
                f"({self.classes} classes, summed out for unlabelled images), {self.params.labels} labelled images, "
                f"classification weight {self.alpha:g}")

    def z_posterior(self, features, y):
        """q(z|x,y): the Gaussian's [mean, log_std] [rows, latent_size] of features [rows, F] and classes y one-hot
        [rows, K]."""
        return self.encoder_head([features, y], training=False)

    def encode(self, x):
        """[mean, log_std] of q(z|x, ŷ) at the most probable class ŷ, then q(y|x)'s logits [B, K]: the parameters of
        the code's two parts, as `Latent` splits them."""
        logits = self.classifier(x, training=False)
        predicted = tf.one_hot(tf.argmax(logits, -1), self.classes)
        mean, log_std = self.z_posterior(self.features(x, training=False), predicted)
        return [mean, log_std, logits]

    def classify(self, x):
        """q(y|x) [B, K]: the probability of each class."""
        return tf.nn.softmax(self.classifier(x, training=False))

    def infer(self, x, seed, training):
        """(q(y|x)'s logits [B, K], the context [B, ...] of q(z|x,y) besides y: a list of tensors, repeated row by row
        for the sum over y). `seed` draws what a model samples before y (M2: nothing)."""
        return self.classifier(x, training=training), [self.features(x, training=training)]

    def elbo_terms(self, x, context, y, noise, training):
        """Reconstruction −log p(x|y,z) and KL(q(z|x,y) ‖ p(z)), each [rows], the auxiliary variable's cost [rows]
        (M2: None), and q(z|x,y)'s (mean, log_std), at one z = mean + exp(log_std)·noise per row."""
        features, = context
        mean, log_std = self.encoder_head([features, y], training=training)
        z = mean + tf.exp(log_std) * noise
        logits = self.decoder(tf.concat([z, y], axis=-1), training=training)
        return self.reconstruction_fn(x, logits), gaussian_kl(mean, log_std), None, (mean, log_std)

    def forward(self, data, step, stream, replica=0, replicas=1):
        """(figures, None) of a step's (unlabelled images [B, ...], labelled images [B, ...], their classes [B])."""
        x, labelled, classes = data
        k, log_k = self.classes, math.log(self.classes)
        rows, labelled_rows, size = tf.shape(x)[0], tf.shape(labelled)[0], self.params.latent_size
        seed = stream_seed(self.params.seed, step, stream)
        y = tf.one_hot(classes, k)
        # Labelled: −L(x, y), and the classifier's cross-entropy.
        label_logits, context = self.infer(labelled, tf.random.experimental.stateless_fold_in(seed, 2), True)
        noise = tf.random.stateless_normal(tf.stack([labelled_rows, size]), seed=seed)
        rec_l, kl_l, auxiliary_l, (mean, log_std) = self.elbo_terms(labelled, context, y, noise, True)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(classes, label_logits)
        # Unlabelled: every class at once, B·K rows (row b·K + c is image b with class c).
        logits, context = self.infer(x, tf.random.experimental.stateless_fold_in(seed, 3), True)
        q = tf.nn.softmax(logits)  # [B, K]
        context = [tf.repeat(part, k, axis=0) for part in context]
        every_y = tf.tile(tf.eye(k), tf.stack([rows, 1]))
        noise = tf.random.stateless_normal(tf.stack([rows * k, size]),
                                           seed=tf.random.experimental.stateless_fold_in(seed, 1))
        rec, kl, auxiliary, unlabelled_posterior = self.elbo_terms(tf.repeat(x, k, axis=0), context, every_y, noise,
                                                                   True)
        figures = {}
        if auxiliary is not None:  # the auxiliary's cost joins z's KL: both are what the latents cost
            figures["auxiliary_kl"] = tf.reduce_mean(tf.reduce_sum(q * tf.reshape(auxiliary, [-1, k]), axis=1))
            kl_l, kl = kl_l + auxiliary_l, kl + auxiliary
        rec_u = tf.reduce_sum(q * tf.reshape(rec, [-1, k]), axis=1)  # E_q(y|x) [B]
        kl_u = tf.reduce_sum(q * tf.reshape(kl, [-1, k]), axis=1)
        entropy = -tf.reduce_sum(q * tf.math.log(q + 1e-12), axis=1)
        kl_y = log_k - entropy  # KL(q(y|x) ‖ U(K))
        loss = (tf.reduce_mean(rec_l) + self.schedule.penalty(tf.reduce_mean(kl_l), step) + log_k
                + tf.reduce_mean(rec_u) + self.schedule.penalty(tf.reduce_mean(kl_u), step) + tf.reduce_mean(kl_y)
                + self.alpha * tf.reduce_mean(cross_entropy))
        if self.decorrelates:
            loss += self.decorrelation((mean, log_std), unlabelled_posterior, q)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(label_logits, -1), classes), tf.float32))
        return {**figures, "loss": loss, "reconstruction_loss": tf.reduce_mean(rec_u), "kl_loss": tf.reduce_mean(kl_u + kl_y),
                "kl_weight": self.schedule.weight(step),
                "labelled_elbo": -tf.reduce_mean(rec_l + kl_l + log_k),
                "unlabelled_elbo": -tf.reduce_mean(rec_u + kl_u + kl_y),
                "classification_loss": tf.reduce_mean(cross_entropy), "labelled_accuracy": accuracy,
                **posterior_statistics(mean, log_std)}, None

    def decorrelation(self, labelled, unlabelled, q):
        """DIP-VAE-II's penalty on the covariance of the step's aggregate posterior q(z), the mixture of each labelled
        image's q(z|x,y) (mean, log_std) [B_l, D] and each unlabelled image's Σ_y q(y|x) q(z|x,y), its components
        (mean, log_std) [B·K, D] weighted by q [B, K]: every image weighs the same."""
        images = tf.cast(tf.shape(q)[0] + tf.shape(labelled[0])[0], q.dtype)
        weights = tf.concat([tf.fill(tf.shape(labelled[0])[:1], 1.0 / images), tf.reshape(q, [-1]) / images], 0)
        mean, log_std = (tf.concat([a, b], axis=0) for a, b in zip(labelled, unlabelled))
        return self.objective.decorrelation(mean, log_std, weights)

    def training_data(self, data):
        """The stream's (unlabelled images, labelled images, their classes) as they are."""
        return data

    def evaluation_data(self, images, labels):
        """What validation feeds `forward`: the images as both batches, the labelled one with its classes, so that
        its labelled_accuracy is the validation accuracy of q(y|x)."""
        return images, images, labels[self.params.label_factor]

    def log_densities(self, x, posterior, noise):
        """(log p(x|y_k,z_k), log p(y_k, z_k) − log q(y_k, z_k|x)), each [k, n], at exact draws y_k ~ q(y|x) (the
        Gumbel-max trick on `noise[1]`) and z_k ~ q(z|x,y_k) (`noise[0]`): the proposal is M2's own posterior."""
        k, n = tf.shape(noise[0])[0], tf.shape(x)[0]
        gaussian, categorical = self.latent.parts
        logits = posterior[2]
        y = categorical.draw([logits[None]], noise[1])  # [k, n, K]
        features = tf.tile(self.features(x, training=False), tf.stack([k, 1]))  # sample-major, as y below
        flat_y = tf.reshape(y, [-1, self.classes])
        mean, log_std = self.z_posterior(features, flat_y)
        z = mean + tf.exp(log_std) * tf.reshape(noise[0], [-1, self.params.latent_size])
        prior_ratio = (tf.reshape(gaussian.log_prior_ratio([mean, log_std], z), [k, n])
                       + categorical.log_prior_ratio([logits[None]], y))
        decoded = self.decoder(tf.concat([z, flat_y], axis=-1), training=False)
        log_likelihood = -self.negative_log_likelihood(tf.tile(x, [k, 1, 1, 1]), decoded)
        return tf.reshape(log_likelihood, [k, n]), prior_ratio
