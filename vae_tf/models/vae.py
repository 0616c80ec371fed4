"""The VAE family: one encoder, a code of Gaussian and categorical parts (`vae_tf.latents`), one decoder; every
objective of `vae_tf.objectives` trains it."""

import math
import weakref

import keras
import tensorflow as tf

from vae_tf import aggressive, flows, networks, pixelcnn, priors, svi
from vae_tf.latents import Latent
from vae_tf.losses import RECONSTRUCTION_LOSSES, kl_decomposition, log_importance_weights
from vae_tf.models.base import STATISTICS_FIGURES, Model, posterior_statistics
from vae_tf.objectives import OBJECTIVES, Batch, global_batch, replica_rows, stream_seed
from vae_tf.params import defaults
from vae_tf.schedules import CategoricalCapacity, Clocked, schedule_of

# Per-step figures every objective logs: the loss terms, the KL's decomposition (Chen et al. 2018), then (after an
# objective's own figures) base.STATISTICS_FIGURES.
LOSS_FIGURES = ("loss", "reconstruction_loss", "kl_loss", "kl_weight", "kl_target",
                "index_code_mi", "total_correlation", "dimension_wise_kl")
# With categorical latents: the KL of the Gaussian part and of the categoricals, and the categoricals' capacity.
CATEGORICAL_FIGURES = ("kl_gaussian", "kl_categorical", "categorical_capacity", "categorical_marginal_kl")
# With the parts kept independent (categorical_independence > 0): the penalised HSIC between them. Only then, so that
# the log.csv of a run from before it resumes with the same columns.
INDEPENDENCE_FIGURES = ("categorical_hsic",)
_REFINED_ENCODINGS = weakref.WeakKeyDictionary()  # model -> its compiled `refined_encoding`


# With SVI steps (`vae_tf.svi`): how much they lowered the batch's loss, the one at the encoder's posterior less the
# one at the refined posterior, both at SVI's first draw (nats).
SVI_FIGURES = ("svi_gain",)


def step_figures(objective, categorical=False, independent=False, aggressively=False, refined=False):
    """The per-step figures of a model trained with `objective` (and `categorical` latents, kept `independent` of the
    Gaussian part, trained `aggressively`: `vae_tf.aggressive`, its posteriors `refined` by SVI: `vae_tf.svi`), in
    log.csv's column order."""
    return (LOSS_FIGURES + (CATEGORICAL_FIGURES if categorical else ())
            + (INDEPENDENCE_FIGURES if categorical and independent else ())
            + OBJECTIVES[objective].figures + STATISTICS_FIGURES + (aggressive.FIGURES if aggressively else ())
            + (SVI_FIGURES if refined else ()))


def categorical_capacity_schedule(p):
    """The categoricals' term (`schedules.CategoricalCapacity`) of params p: JointVAE's γ·|KL_c − C_c| (Dupont 2018,
    eq. 7), C_c ramping from 0 at `categorical_start_step` to `categorical_capacity` nats at `categorical_end_step`,
    capped at Σ log K (the most a uniform prior lets them carry), plus `categorical_marginal_weight`·KL(q̄(c) ‖ U)
    and `categorical_independence`·HSIC(mean, q(c|x)); None without categoricals."""
    if not p.categorical_sizes:
        return None
    most = sum(math.log(size) for size in p.categorical_sizes)
    capacity = most if p.categorical_capacity is None else min(p.categorical_capacity, most)
    return CategoricalCapacity(p.categorical_gamma, p.categorical_start_step, p.categorical_end_step, capacity,
                               p.categorical_marginal_weight, p.categorical_independence)


@keras.saving.register_keras_serializable(package="vae_tf")
class VAE(Model):
    """Encoder q(code|x), prior p(code), decoder p(x|code), the code a `vae_tf.latents.Latent`: `latent_size`
    Gaussian dimensions (q(z|x) = N(mean, exp(log_std)²), prior N(0, I)) and a categorical per entry of
    `categorical_sizes` (JointVAE, Dupont 2018; relaxed at `temperature` while training).

    `z = mean + exp(log_std) * eps`; loss = reconstruction (summed over pixels) averaged over the batch, plus the
    objective's penalty on the Gaussian part (`vae_tf.objectives`), whose KL weight the schedule reads from the
    optimizer's step counter (aggressive training: the decoder's updates) inside the compiled step, plus the
    categoricals' capacity term (`categorical_capacity_schedule`). `dataset_size` (0: unknown, the batch stands for the
    data set) weights the minibatch estimators of the KL's decomposition.
    """

    def __init__(self, params, image_shape, dataset_size=0, **kwargs):
        super().__init__(params, image_shape, dataset_size, **kwargs)
        p = self.params
        self.latent_size = p.latent_size
        # The prior is built before the encoder it may read (the VampPrior's), which it calls only once both exist.
        self.prior = priors.build_prior(p, p.latent_size, image_shape, lambda images: self.encoder(images)[:2])
        self.flow = flows.build_flow(p)  # None: the Gaussian posterior itself
        self.latent = Latent(p.latent_size, p.categorical_sizes, p.temperature, self.prior, self.flow)
        self.kl_in_closed_form = self.latent.gaussian.closed_form
        # HSIC between the parts is computed only when it is weighted (and logged): None leaves it out of the step.
        self.independence_kernel = (p.independence_kernel if p.categorical_sizes and p.categorical_independence > 0
                                    else None)
        self.encoder = networks.build_encoder(image_shape, p.encoder_layers, self.latent.heads, p.activation,
                                              p.precision)
        if p.decoder == "pixelcnn":  # it reads the images too
            self.decoder = pixelcnn.build_pixelcnn_decoder(image_shape, self.latent.code_size,
                                                           p.decoder_layers or pixelcnn.LAYERS, p.precision,
                                                           p.pixelcnn_conditioning)
        else:
            self.decoder = networks.build_decoder(image_shape, self.latent.code_size, p.encoder_layers,
                                                  p.decoder_layers, p.activation, p.precision, p.decoder)
        self.reconstruction_fn = RECONSTRUCTION_LOSSES[p.reconstruction_loss]
        self.built = True  # both networks are built on keras.Input above; saving needs to know it
        self.schedule, categorical = schedule_of(p), categorical_capacity_schedule(p)
        if p.aggressive:  # and the schedules follow the decoder's updates (`schedule_step`)
            self.aggressive = aggressive.AggressiveTraining(self)
            self.schedule = Clocked(self.schedule, self.schedule_step)
            categorical = categorical and Clocked(categorical, self.schedule_step)
        # A plain attribute, not a tracked layer: FactorVAE's discriminator must stay out of the VAE's variables.
        self.objective = OBJECTIVES[p.objective](self.schedule, p, dataset_size, categorical)
        self.step_figures = step_figures(p.objective, bool(p.categorical_sizes), self.independence_kernel is not None,
                                         p.aggressive, p.svi_steps > 0)

    @classmethod
    def from_config(cls, config):
        """The model of a `get_config`; a model.keras of an earlier release, whose config lists the parameters one
        by one, is read too."""
        if "params" not in config:
            config = _from_flat_config(config)
        return cls(**config)

    def encode(self, x):
        """images [B, H, W, C] in [0, 1] -> the posterior's parameters, [mean, log_std] ([B, latent_size] each) then
        each categorical's logits [B, size] (`vae_tf.latents`); with SVI steps, the refined ones
        (`refined_encoding`)."""
        if not self.params.svi_steps:
            return self.encoder(x, training=False)
        if self not in _REFINED_ENCODINGS:
            _REFINED_ENCODINGS[self] = tf.function(self.refined_encoding, reduce_retracing=True, autograph=False)
        return _REFINED_ENCODINGS[self](tf.cast(x, tf.float32))

    def refined_encoding(self, x):
        """The encoder's posteriors of images x refined by SVI on the objective the run ends with (the KL weight of its
        last step), from draws of a fixed seed shared by every image: an image's posterior does not depend on the
        images encoded beside it."""
        noise = svi.step_noise(tf.constant([self.params.seed, 0]), self.params.svi_steps, [1, self.latent_size])
        # The weight at num_steps: SVI refuses aggressive training, whose schedules would read decoder updates instead.
        return list(self.refine(x, x, self.encoder(x, training=False), noise,
                                self.schedule.weight(self.params.num_steps), training=False)[:2])

    def svi_loss(self, x, context, kl_weight, training):
        """What SVI descends for images x: (mean, log variance, noise) -> each image's reconstruction loss plus
        `kl_weight`·KL at the draw mean + σ·noise [B]; an autoregressive decoder reads `context` (x, or a training
        step's `decoder_context`)."""
        def loss(mean, log_variance, noise):
            log_std = 0.5 * log_variance
            logits = self.likelihood_logits(mean + tf.exp(log_std) * noise, context, training=training)
            return self.reconstruction_fn(x, logits) + kl_weight * self.latent.gaussian.kl((mean, log_std), noise)
        return loss

    def refine(self, x, context, posterior, noise, kl_weight, training):
        """(mean, log_std, how much the steps lowered the batch's mean loss at the first draw) after
        `params.svi_steps` SVI steps from the encoder's `posterior` with `noise` [K, B or 1, latent_size]
        (`vae_tf.svi`), the decoder reading `context` (`svi_loss`)."""
        loss = self.svi_loss(x, context, kl_weight, training)
        mean, log_variance, first = svi.refine(loss, posterior[0], 2.0 * posterior[1], noise,
                                               self.params.svi_learning_rate, self.params.batch_size,
                                               self.decoder.trainable_variables)
        refined = loss(tf.stop_gradient(mean), tf.stop_gradient(log_variance), noise[0])  # a figure, not trained
        return mean, 0.5 * log_variance, tf.reduce_mean(first - refined)

    def log_densities(self, x, posterior, noise):
        """(log p(x|code_k), log p(code_k) − log q(code_k|x)), each [k, n], at exact draws code_k of q(code|x) made by
        `noise` (one [k, n, width] per part): the Gaussian part mean + exp(log_std)·noise_k (through the flow, if
        any), each categorical a Gumbel-max draw (`vae_tf.latents`)."""
        k, latent = tf.shape(noise[0])[0], self.latent
        draws = [part.draw_with_ratio([p[None] for p in parameters], part_noise)  # [k, n, size], [k, n]
                 for part, parameters, part_noise in zip(latent.parts, latent.split(posterior), noise)]
        code, prior_ratio = latent.join([d[0] for d in draws]), tf.add_n([d[1] for d in draws])
        tiled = tf.tile(x, [k, 1, 1, 1])  # sample-major, as the codes
        logits = self.likelihood_logits(tf.reshape(code, [-1, latent.code_size]), tiled)
        log_likelihood = -self.negative_log_likelihood(tiled, logits)
        return tf.reshape(log_likelihood, tf.shape(prior_ratio)), prior_ratio

    def sample_code(self, parts, seed, rows, replica, replicas):
        """(each part's training sample [B, size] of this replica's rows, the Gaussian part's noise of the global
        batch [B·replicas, latent_size]). A replica draws the global batch's noise and takes its own rows, so a
        mirrored step samples exactly what a single-device step would."""
        samples, whole_noise = [], None
        for index, (part, parameters) in enumerate(zip(self.latent.parts, parts)):
            # The Gaussian part draws from the stream's own seed, each categorical from a seed folded from it.
            part_seed = seed if index == 0 else tf.random.experimental.stateless_fold_in(seed, index)
            noise = part.noise(rows * replicas, part_seed)
            whole_noise = noise if index == 0 else whole_noise
            samples.append(part.sample(parameters, replica_rows(noise, replica, replicas)))
        return samples, whole_noise

    def forward(self, x, step, stream, replica=0, replicas=1):
        """(figures, Batch) of one batch: the objective's loss, the shared terms and posterior statistics as scalars.

        The KL terms and the batch statistics (the objectives' penalties, the categoricals' marginal KL, the logged
        decomposition) are computed on the global batch's posteriors and samples, gathered once here
        (`objectives.global_batch`)."""
        posterior, seed = self.encoder(x, training=True), stream_seed(self.params.seed, step, stream)
        context = self.decoder_context(x, step, stream, replica, replicas)
        if self.params.svi_steps:  # the semi-amortized VAE: the model's posterior is the one SVI refines
            noise = svi.step_noise(seed, self.params.svi_steps, tf.shape(posterior[0]))
            *posterior, svi_gain = self.refine(x, context, posterior, noise, self.schedule.weight(step), training=True)
        parts = self.latent.split(posterior)
        (mean, log_std), rows = parts[0][:2], tf.shape(posterior[0])[0]
        samples, whole_noise = self.sample_code(parts, seed, rows, replica, replicas)
        z, code = samples[0], self.latent.join(samples)
        logits = self.likelihood_logits(code, context, training=True)
        *whole_posterior, whole_z = global_batch([*posterior, z], replicas)
        whole_gaussian, categorical = self.latent.split(whole_posterior)[0], bool(self.latent.categoricals)
        # The KL's decomposition reads the Gaussian draw: before a flow, z_0, whose posterior q_0 is Gaussian.
        base_z = whole_z if self.flow is None else whole_gaussian[0] + tf.exp(whole_gaussian[1]) * whole_noise
        batch = Batch(x, mean, log_std, z, logits, self.reconstruction_fn(x, logits),
                      self.latent.gaussian.kl(whole_gaussian, whole_noise), replica, replicas,
                      self.latent.categorical_kl(whole_posterior) if categorical else None,
                      self.latent.categorical_marginal_kl(whole_posterior) if categorical else None,
                      self.latent.hsic(whole_posterior, self.independence_kernel) if self.independence_kernel else None,
                      whole=(*whole_gaussian[:2], base_z), parameters=parts[0],
                      noise=replica_rows(whole_noise, replica, replicas), context=context)
        loss, own_figures = self.objective.loss(self, batch, step)
        kl = batch.kl if batch.categorical_kl is None else batch.kl + batch.categorical_kl
        if self.params.svi_steps:
            own_figures["svi_gain"] = svi_gain
        return {"loss": loss, "reconstruction_loss": tf.reduce_mean(batch.reconstruction),
                "kl_loss": tf.reduce_mean(kl),
                "kl_weight": self.schedule.weight(step), "kl_target": self.schedule.target(step),
                **self.decomposition(batch), **own_figures, **posterior_statistics(mean, log_std)}, batch

    def decomposition(self, batch):
        """The KL's decomposition on the global batch (`Batch.global_z`), by minibatch-stratified sampling; logged
        for every objective, outside the gradient."""
        mean, log_std, z = (tf.stop_gradient(t) for t in (batch.global_mean, batch.global_log_std, batch.global_z))
        return kl_decomposition(z, mean, log_std, log_importance_weights(tf.shape(z)[0], self.dataset_size, "mss"))


def _from_flat_config(config):
    """The config of a model.keras from before models were built from Params (each parameter its own key, the
    objective's in `objective_options`) as `get_config` writes it now. Parameters it did not hold take their
    defaults, the image size and channels its image shape's; load_run then sets the run's own params.json."""
    config = dict(config)
    image_shape, dataset_size = config.pop("image_shape"), config.pop("dataset_size", 0)
    flat = {**config.pop("objective_options", {}), **config}
    known = defaults()
    params = {name: value for name, value in flat.items() if name in known}
    keras_options = {name: value for name, value in flat.items() if name in ("name", "trainable", "dtype")}
    params.update(image_size=image_shape[0], channels=image_shape[2])
    return {"params": params, "image_shape": image_shape, "dataset_size": dataset_size, **keras_options}
