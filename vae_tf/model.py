"""The VAE as a Keras 3 subclassed model whose `train_step` / `test_step` compute the objective's loss."""

import math

import keras
import numpy as np
import tensorflow as tf

from vae_tf import networks
from vae_tf.latents import Latent
from vae_tf.losses import RECONSTRUCTION_LOSSES, kl_decomposition, log_importance_weights, negative_log_likelihood
from vae_tf.objectives import OBJECTIVES, Batch, global_batch, replica_rows, stream_seed
from vae_tf.schedules import CategoricalCapacity, make_schedule

# Per-step figures every objective logs: the loss terms, the KL's decomposition (Chen et al. 2018), the posterior
# statistics the originals logged. An objective's own figures follow the decomposition.
LOSS_FIGURES = ("loss", "reconstruction_loss", "kl_loss", "kl_weight", "kl_target",
                "index_code_mi", "total_correlation", "dimension_wise_kl")
STATISTICS_FIGURES = ("mean_avg", "mean_min", "mean_max", "std_avg", "std_min", "std_max", "grad_norm", "skipped")
# With categorical latents: the KL of the Gaussian part and of the categoricals, and the categoricals' capacity.
CATEGORICAL_FIGURES = ("kl_gaussian", "kl_categorical", "categorical_capacity", "categorical_marginal_kl")
# With the parts kept independent (categorical_independence > 0): the penalised HSIC between them. Only then, so that
# the log.csv of a run from before it resumes with the same columns.
INDEPENDENCE_FIGURES = ("categorical_hsic",)
TRACKED = ("loss", "reconstruction_loss", "kl_loss")
# The objectives' own parameters (vae_tf.params), handed to every objective as its `options`.
OBJECTIVE_OPTIONS = ("tc_alpha", "tc_gamma", "tc_estimator", "factor_gamma", "dip_lambda_od", "dip_lambda_d",
                     "info_alpha", "info_lambda", "mmd_kernel", "iwae_samples")


def usable_step(loss, grad_norm, loss_scaled):
    """Whether a step's loss and gradients can be trusted (bool tensor): finite. Under loss scaling an overflowing
    gradient is the optimizer's to skip (it lowers the scale), so there only the loss counts."""
    return tf.math.is_finite(loss) & (tf.math.is_finite(grad_norm) | loss_scaled)


def step_figures(objective, categorical=False, independent=False):
    """The per-step figures of a model trained with `objective` (and `categorical` latents, kept `independent` of the
    Gaussian part), in log.csv's column order."""
    return (LOSS_FIGURES + (CATEGORICAL_FIGURES if categorical else ())
            + (INDEPENDENCE_FIGURES if categorical and independent else ())
            + OBJECTIVES[objective].figures + STATISTICS_FIGURES)


def categorical_capacity_schedule(sizes, capacity, gamma, start_step, end_step, marginal_weight, independence=0.0):
    """The categoricals' term (`schedules.CategoricalCapacity`): JointVAE's γ·|KL_c − C_c| (Dupont 2018, eq. 7), C_c
    ramping from 0 at `start_step` to `capacity` nats at `end_step`, capped at Σ log K (the most a uniform prior lets
    them carry), plus `marginal_weight`·KL(q̄(c) ‖ U) and `independence`·HSIC(mean, q(c|x)); None without
    categoricals."""
    if not sizes:
        return None
    most = sum(math.log(size) for size in sizes)
    return CategoricalCapacity(gamma, start_step, end_step, most if capacity is None else min(capacity, most),
                               marginal_weight, independence)


@keras.saving.register_keras_serializable(package="vae_tf")
class VAE(keras.Model):
    """Encoder q(code|x), prior p(code), decoder p(x|code), the code a `vae_tf.latents.Latent`: `latent_size`
    Gaussian dimensions (q(z|x) = N(mean, exp(log_std)²), prior N(0, I)) and a categorical per entry of
    `categorical_sizes` (JointVAE, Dupont 2018; relaxed at `temperature` while training).

    `z = mean + exp(log_std) * eps`; loss = reconstruction (summed over pixels) averaged over the batch, plus the
    objective's penalty on the Gaussian part (`vae_tf.objectives`), whose KL weight the schedule reads from the
    optimizer's step counter inside the compiled step, plus the categoricals' capacity term
    (`categorical_capacity_schedule`). `dataset_size` (0: unknown, the batch stands for the data set) weights the minibatch
    estimators of the KL's decomposition.
    """

    def __init__(self, image_shape, encoder_layers, decoder_layers=None, latent_size=10, activation="relu",
                 reconstruction_loss="bernoulli", kl_schedule="constant", beta=1.0, kl_start_step=0,
                 kl_end_step=0, kl_start_value=0.0, kl_end_value=1.0, seed=0, nan_policy="stop",
                 objective="beta_vae", objective_options=None, dataset_size=0, precision="float32", decoder="deconv",
                 categorical_sizes=None, temperature=0.67, categorical_gamma=0.0, categorical_capacity=None,
                 categorical_start_step=0, categorical_end_step=0, categorical_marginal_weight=0.0,
                 categorical_independence=0.0, independence_kernel="linear", **kwargs):
        super().__init__(**kwargs)
        self.config = dict(image_shape=list(image_shape), encoder_layers=encoder_layers,
                           decoder_layers=decoder_layers, latent_size=latent_size, activation=activation,
                           reconstruction_loss=reconstruction_loss, kl_schedule=kl_schedule, beta=beta,
                           kl_start_step=kl_start_step, kl_end_step=kl_end_step, kl_start_value=kl_start_value,
                           kl_end_value=kl_end_value, seed=seed, nan_policy=nan_policy, objective=objective,
                           objective_options=dict(objective_options or {}), dataset_size=dataset_size,
                           precision=precision, decoder=decoder, categorical_sizes=list(categorical_sizes or []),
                           temperature=temperature, categorical_gamma=categorical_gamma,
                           categorical_capacity=categorical_capacity, categorical_start_step=categorical_start_step,
                           categorical_end_step=categorical_end_step,
                           categorical_marginal_weight=categorical_marginal_weight,
                           categorical_independence=categorical_independence,
                           independence_kernel=independence_kernel)
        self.latent_size = latent_size
        self.latent = Latent(latent_size, categorical_sizes or [], temperature)
        self.seed = seed
        # HSIC between the parts is computed only when it is weighted (and logged): None leaves it out of the step.
        self.independence_kernel = independence_kernel if categorical_sizes and categorical_independence > 0 else None
        self.nan_policy = nan_policy
        self.encoder = networks.build_encoder(image_shape, encoder_layers, self.latent.heads, activation, precision)
        self.decoder = networks.build_decoder(image_shape, self.latent.code_size, encoder_layers, decoder_layers,
                                              activation, precision, decoder)
        # float16 gradients under- and overflow: the loss is scaled, and a step whose scaled gradients overflow
        # is skipped by the optimizer (which lowers the scale), not taken for a diverged run.
        self.loss_scaled = precision == "mixed_float16"
        self.learning_rate_at = None  # step -> learning rate, for a schedule (build_model sets it from params)
        self.reconstruction_fn = RECONSTRUCTION_LOSSES[reconstruction_loss]
        self.schedule = make_schedule(kl_schedule, beta, kl_start_step, kl_end_step, kl_start_value, kl_end_value)
        self.dataset_size = dataset_size
        # A plain attribute, not a tracked layer: FactorVAE's discriminator must stay out of the VAE's variables.
        self.objective = OBJECTIVES[objective](
            self.schedule, {**(objective_options or {}), "latent_size": latent_size, "seed": seed}, dataset_size,
            categorical_capacity_schedule(categorical_sizes, categorical_capacity, categorical_gamma,
                                          categorical_start_step, categorical_end_step, categorical_marginal_weight,
                                          categorical_independence))
        self.step_figures = step_figures(objective, bool(categorical_sizes), self.independence_kernel is not None)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in TRACKED}
        self.built = True  # both networks are built on keras.Input above; saving needs to know it

    def get_config(self):
        return {**super().get_config(), **self.config}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def noise(self, shape, step, stream=0):
        """Standard normal noise that is a pure function of (seed, step, stream): resumed runs draw the same noise."""
        return tf.random.stateless_normal(shape, seed=stream_seed(self.seed, step, stream))

    def encode(self, x):
        """images [B, H, W, C] in [0, 1] -> the posterior's parameters, [mean, log_std] ([B, latent_size] each) then
        each categorical's logits [B, size] (`vae_tf.latents`)."""
        return self.encoder(x, training=False)

    def represent(self, x):
        """images -> codes for the metrics [B, latent_size + categoricals]: the Gaussian mean, each categorical's
        most probable category."""
        return self.latent.representation(self.encode(x))

    def decode(self, code):
        """codes [B, code_size] -> images [B, H, W, C] in [0, 1]."""
        return tf.sigmoid(self.decoder(code, training=False))

    def reconstruct(self, x):
        """Decode the posterior's mode (the Gaussian mean, the most probable categories): a deterministic
        reconstruction of x."""
        return self.decode(self.latent.mode(self.encode(x)))

    def sample(self, n, seed=0):
        """n images decoded from the prior (a fixed seed gives the same images)."""
        code = tf.random.stateless_normal((n, self.latent_size), seed=[seed, 0])
        if self.latent.categoricals:
            categories = self.latent.prior_codes(np.random.default_rng(seed), n)[:, self.latent_size:]
            code = tf.concat([code, categories], axis=1)
        return self.decode(code)

    def call(self, x, training=False):
        return self.reconstruct(x)

    def negative_log_likelihood(self, x, logits):
        """−log p(x|z) [B] in nats, the reconstruction loss with its normalising constant (`losses.NORMALISING_CONSTANTS`)."""
        return negative_log_likelihood(self.config["reconstruction_loss"], x, logits)

    def forward(self, x, step, stream, replica=0, replicas=1):
        """(figures, Batch) of one batch: the objective's loss, the shared terms and posterior statistics as scalars.

        A replica holding one of `replicas` equal slices of the global batch draws the global batch's noise
        and takes its own rows, so a mirrored step samples exactly what a single-device step would. The KL terms and
        the batch statistics (the objectives' penalties, the categoricals' marginal KL, the logged decomposition) are
        computed on the global batch's posteriors and samples, gathered once here (`objectives.global_batch`)."""
        posterior = self.encoder(x, training=True)
        parts = self.latent.split(posterior)
        (mean, log_std), rows = parts[0], tf.shape(posterior[0])[0]
        seed = stream_seed(self.seed, step, stream)
        samples = []
        for index, (part, parameters) in enumerate(zip(self.latent.parts, parts)):
            # The Gaussian part draws from the stream's own seed, each categorical from a seed folded from it.
            part_seed = seed if index == 0 else tf.random.experimental.stateless_fold_in(seed, index)
            noise = replica_rows(part.noise(rows * replicas, part_seed), replica, replicas)
            samples.append(part.sample(parameters, noise))
        z, code = samples[0], self.latent.join(samples)
        logits = self.decoder(code, training=True)
        *whole_posterior, whole_z = global_batch([*posterior, z], replicas)
        whole_gaussian, categorical = self.latent.split(whole_posterior)[0], bool(self.latent.categoricals)
        batch = Batch(x, mean, log_std, z, logits, self.reconstruction_fn(x, logits),
                      self.latent.gaussian.kl(whole_gaussian), replica, replicas,
                      self.latent.categorical_kl(whole_posterior) if categorical else None,
                      self.latent.categorical_marginal_kl(whole_posterior) if categorical else None,
                      self.latent.hsic(whole_posterior, self.independence_kernel) if self.independence_kernel else None,
                      whole=(*whole_gaussian, whole_z))
        loss, own_figures = self.objective.loss(self, batch, step)
        std = tf.exp(log_std)
        kl = batch.kl if batch.categorical_kl is None else batch.kl + batch.categorical_kl
        return {"loss": loss, "reconstruction_loss": tf.reduce_mean(batch.reconstruction),
                "kl_loss": tf.reduce_mean(kl),
                "kl_weight": self.schedule.weight(step), "kl_target": self.schedule.target(step),
                **self.decomposition(batch), **own_figures,
                "mean_avg": tf.reduce_mean(mean), "mean_min": tf.reduce_min(mean), "mean_max": tf.reduce_max(mean),
                "std_avg": tf.reduce_mean(std), "std_min": tf.reduce_min(std), "std_max": tf.reduce_max(std)}, batch

    def decomposition(self, batch):
        """The KL's decomposition on the global batch (`Batch.global_z`), by minibatch-stratified sampling; logged
        for every objective, outside the gradient."""
        mean, log_std, z = (tf.stop_gradient(t) for t in (batch.global_mean, batch.global_log_std, batch.global_z))
        return kl_decomposition(z, mean, log_std, log_importance_weights(tf.shape(z)[0], self.dataset_size, "mss"))

    def loss_terms(self, x, step, stream):
        """The figures of `forward` on one device (validation, evaluation)."""
        return self.forward(x, step, stream)[0]

    def train_step(self, data):
        """One update. With nan_policy "skip_batch", a batch whose loss or gradients are not finite changes
        no weight and no optimizer moment; only the step counter moves on (figure `skipped` is 1). Under
        mixed_float16 a step whose scaled gradients overflow is skipped the same way, whatever the nan_policy."""
        x = data[0] if isinstance(data, (tuple, list)) else data
        step = self.optimizer.iterations
        if self.learning_rate_at is not None:
            # Set on the optimizer's own variable rather than handing Adam the schedule: Adam would then drop the
            # variable, and checkpoints of the two kinds of run would no longer restore into each other.
            self.optimizer.learning_rate.assign(self.learning_rate_at(step))
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            terms, batch = self.forward(x, step, stream=0, replica=replica, replicas=replicas)
            # Each replica sees a slice of the global batch and the optimizer sums their gradients.
            scaled = self.optimizer.scale_loss(terms["loss"] / replicas)
        gradients = tape.gradient(scaled, self.trainable_variables)
        auxiliary, apply_auxiliary = self.objective.auxiliary_update(batch, step)
        terms.update(auxiliary)
        scale = self.optimizer.dynamic_scale if self.loss_scaled else 1.0
        terms["grad_norm"] = tf.linalg.global_norm(gradients) / scale * replicas
        overflow = tf.logical_not(self.optimizer.check_finite(gradients) if self.loss_scaled else
                                  tf.math.is_finite(terms["grad_norm"]))
        finite = usable_step(terms["loss"], terms["grad_norm"], self.loss_scaled)

        def apply():
            self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
            if self.loss_scaled:  # an overflowing step leaves the counter, which the schedule and noise read
                tf.cond(overflow, lambda: self.optimizer.iterations.assign_add(1), lambda: self.optimizer.iterations)
            apply_auxiliary()
            return tf.constant(True)

        if self.nan_policy == "skip_batch":
            tf.cond(finite, apply, self._skip)
        else:
            apply()
        terms["skipped"] = 1.0 - tf.cast(finite & tf.logical_not(overflow), tf.float32)
        self._track(terms, finite)
        return terms

    def _track(self, terms, finite=True):
        """The Keras progress trackers take finite batches only, so one skipped batch does not make `fit` report NaN."""
        weight = tf.cast(finite, tf.float32)
        for name, tracker in self.trackers.items():
            tracker.update_state(tf.where(finite, terms[name], 0.0), sample_weight=weight)

    def _skip(self):
        self.optimizer.iterations.assign_add(1)
        return tf.constant(False)

    def test_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        terms = self.loss_terms(x, self.optimizer.iterations, stream=1)
        self._track(terms, tf.math.is_finite(terms["loss"]))
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def build_model(params, image_shape=None, dataset_size=0):
    """The compiled VAE for `params`; `image_shape` defaults to the data set's (after `image_size`); `dataset_size`
    (the training split's, 0 = unknown) weights the minibatch estimators."""
    if image_shape is None:
        from vae_tf.datasets import image_shape_of
        image_shape = image_shape_of(params)
    keras.utils.set_random_seed(params.seed)
    model = MODELS[params.model](
        image_shape, params.encoder_layers, params.decoder_layers, params.latent_size, params.activation,
        params.reconstruction_loss, params.kl_schedule, params.beta, params.kl_start_step, params.kl_end_step,
        params.kl_start_value, params.kl_end_value, params.seed, params.nan_policy, params.objective,
        {name: getattr(params, name) for name in OBJECTIVE_OPTIONS}, dataset_size, params.precision, params.decoder,
        params.categorical_sizes, params.temperature, params.categorical_gamma, params.categorical_capacity,
        params.categorical_start_step, params.categorical_end_step, params.categorical_marginal_weight,
        params.categorical_independence, params.independence_kernel)
    optimizer = keras.optimizers.Adam(params.learning_rate, beta_1=params.adam_beta_1)
    if model.loss_scaled:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer)
    model.optimizer.build(model.trainable_variables)
    model.learning_rate_at = learning_rate_schedule(params)
    return model


# name -> model class (`params.model`): how encoder, latent and decoder fit together.
MODELS = {"vae": VAE}


def learning_rate_schedule(params):
    """None for a constant learning rate; for `learning_rate_schedule="cosine"` the learning rate of step s,
    learning_rate · ½(1 + cos(π·min(s, num_steps)/num_steps)) (SGDR's annealing without restarts, Loshchilov &
    Hutter 2017, eq. 5). It follows the run's current num_steps: extending a run stretches what is left of it."""
    if params.learning_rate_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(params.learning_rate, params.num_steps)
    return None
