"""The VAE as a Keras 3 subclassed model whose `train_step` / `test_step` compute the objective's loss."""

import keras
import tensorflow as tf

from vae_tf import networks
from vae_tf.losses import RECONSTRUCTION_LOSSES, gaussian_kl, kl_decomposition, log_importance_weights, negative_log_likelihood
from vae_tf.objectives import OBJECTIVES, Batch, stream_seed
from vae_tf.schedules import make_schedule

# Per-step figures every objective logs: the loss terms, the KL's decomposition (Chen et al. 2018), the posterior
# statistics the originals logged. An objective's own figures follow the decomposition.
LOSS_FIGURES = ("loss", "reconstruction_loss", "kl_loss", "kl_weight", "kl_target",
                "index_code_mi", "total_correlation", "dimension_wise_kl")
STATISTICS_FIGURES = ("mean_avg", "mean_min", "mean_max", "std_avg", "std_min", "std_max", "grad_norm", "skipped")
TRACKED = ("loss", "reconstruction_loss", "kl_loss")
# The objectives' own parameters (vae_tf.params), handed to every objective as its `options`.
OBJECTIVE_OPTIONS = ("tc_alpha", "tc_gamma", "tc_estimator", "factor_gamma", "dip_lambda_od", "dip_lambda_d",
                     "info_alpha", "info_lambda", "mmd_kernel", "iwae_samples")


def usable_step(loss, grad_norm, loss_scaled):
    """Whether a step's loss and gradients can be trusted (bool tensor): finite. Under loss scaling an overflowing
    gradient is the optimizer's to skip (it lowers the scale), so there only the loss counts."""
    return tf.math.is_finite(loss) & (tf.math.is_finite(grad_norm) | loss_scaled)


def step_figures(objective):
    """The per-step figures of a model trained with `objective`, in log.csv's column order."""
    return LOSS_FIGURES + OBJECTIVES[objective].figures + STATISTICS_FIGURES


@keras.saving.register_keras_serializable(package="vae_tf")
class VAE(keras.Model):
    """Gaussian encoder q(z|x) = N(mean, exp(log_std)²), standard normal prior, decoder p(x|z).

    `z = mean + exp(log_std) * eps`; loss = reconstruction (summed over pixels) averaged over the batch, plus the
    objective's penalty (`vae_tf.objectives`), whose KL weight the schedule reads from the optimizer's step
    counter inside the compiled step. `dataset_size` (0: unknown, the batch stands for the data set) weights the
    minibatch estimators of the KL's decomposition.
    """

    def __init__(self, image_shape, encoder_layers, decoder_layers=None, latent_size=10, activation="relu",
                 reconstruction_loss="bernoulli", kl_schedule="constant", beta=1.0, kl_start_step=0,
                 kl_end_step=0, kl_start_value=0.0, kl_end_value=1.0, seed=0, nan_policy="stop",
                 objective="beta_vae", objective_options=None, dataset_size=0, precision="float32", decoder="deconv",
                 **kwargs):
        super().__init__(**kwargs)
        self.config = dict(image_shape=list(image_shape), encoder_layers=encoder_layers,
                           decoder_layers=decoder_layers, latent_size=latent_size, activation=activation,
                           reconstruction_loss=reconstruction_loss, kl_schedule=kl_schedule, beta=beta,
                           kl_start_step=kl_start_step, kl_end_step=kl_end_step, kl_start_value=kl_start_value,
                           kl_end_value=kl_end_value, seed=seed, nan_policy=nan_policy, objective=objective,
                           objective_options=dict(objective_options or {}), dataset_size=dataset_size,
                           precision=precision, decoder=decoder)
        self.latent_size = latent_size
        self.seed = seed
        self.nan_policy = nan_policy
        self.encoder = networks.build_encoder(image_shape, encoder_layers, latent_size, activation, precision)
        self.decoder = networks.build_decoder(image_shape, latent_size, encoder_layers, decoder_layers, activation,
                                              precision, decoder)
        # float16 gradients under- and overflow: the loss is scaled, and a step whose scaled gradients overflow
        # is skipped by the optimizer (which lowers the scale), not taken for a diverged run.
        self.loss_scaled = precision == "mixed_float16"
        self.learning_rate_at = None  # step -> learning rate, for a schedule (build_model sets it from params)
        self.reconstruction_fn = RECONSTRUCTION_LOSSES[reconstruction_loss]
        self.schedule = make_schedule(kl_schedule, beta, kl_start_step, kl_end_step, kl_start_value, kl_end_value)
        self.dataset_size = dataset_size
        # A plain attribute, not a tracked layer: FactorVAE's discriminator must stay out of the VAE's variables.
        self.objective = OBJECTIVES[objective](
            self.schedule, {**(objective_options or {}), "latent_size": latent_size, "seed": seed}, dataset_size)
        self.step_figures = step_figures(objective)
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
        """images [B, H, W, C] in [0, 1] -> (mean [B, latent], log_std [B, latent])."""
        return self.encoder(x, training=False)

    def decode(self, z):
        """z [B, latent] -> images [B, H, W, C] in [0, 1]."""
        return tf.sigmoid(self.decoder(z, training=False))

    def reconstruct(self, x):
        """Decode the posterior mean: a deterministic reconstruction of x."""
        return self.decode(self.encode(x)[0])

    def sample(self, n, seed=0):
        """n images decoded from standard normal latents (a fixed seed gives the same images)."""
        return self.decode(tf.random.stateless_normal((n, self.latent_size), seed=[seed, 0]))

    def call(self, x, training=False):
        return self.reconstruct(x)

    def negative_log_likelihood(self, x, logits):
        """−log p(x|z) [B] in nats, the reconstruction loss with its normalising constant (`losses.NORMALISING_CONSTANTS`)."""
        return negative_log_likelihood(self.config["reconstruction_loss"], x, logits)

    def forward(self, x, step, stream, replica=0, replicas=1):
        """(figures, Batch) of one batch: the objective's loss, the shared terms and posterior statistics as scalars.

        A replica holding one of `replicas` equal slices of the global batch draws the global batch's noise
        and takes its own rows, so a mirrored step samples exactly what a single-device step would."""
        mean, log_std = self.encoder(x, training=True)
        rows = tf.shape(mean)[0]
        noise = self.noise(tf.stack([rows * replicas, self.latent_size]), step, stream)
        z = mean + tf.exp(log_std) * noise[replica * rows:(replica + 1) * rows]
        logits = self.decoder(z, training=True)
        batch = Batch(x, mean, log_std, z, logits, self.reconstruction_fn(x, logits), gaussian_kl(mean, log_std),
                      replica, replicas)
        loss, own_figures = self.objective.loss(self, batch, step)
        std = tf.exp(log_std)
        return {"loss": loss, "reconstruction_loss": tf.reduce_mean(batch.reconstruction),
                "kl_loss": tf.reduce_mean(batch.kl),
                "kl_weight": self.schedule.weight(step), "kl_target": self.schedule.target(step),
                **self.decomposition(mean, log_std, z, replicas), **own_figures,
                "mean_avg": tf.reduce_mean(mean), "mean_min": tf.reduce_min(mean), "mean_max": tf.reduce_max(mean),
                "std_avg": tf.reduce_mean(std), "std_min": tf.reduce_min(std), "std_max": tf.reduce_max(std)}, batch

    def decomposition(self, mean, log_std, z, replicas=1):
        """The KL's decomposition on the global batch (gathered from the replicas), by minibatch-stratified sampling;
        logged for every objective, outside the gradient."""
        parts = [tf.stop_gradient(t) for t in (mean, log_std, z)]
        if replicas > 1:
            context = tf.distribute.get_replica_context()
            parts = [context.all_gather(t, axis=0) for t in parts]
        weights = log_importance_weights(tf.shape(parts[2])[0], self.dataset_size, "mss")
        return kl_decomposition(parts[2], parts[0], parts[1], weights)

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
    model = VAE(image_shape, params.encoder_layers, params.decoder_layers, params.latent_size, params.activation,
                params.reconstruction_loss, params.kl_schedule, params.beta, params.kl_start_step,
                params.kl_end_step, params.kl_start_value, params.kl_end_value, params.seed, params.nan_policy,
                params.objective, {name: getattr(params, name) for name in OBJECTIVE_OPTIONS}, dataset_size,
                params.precision, params.decoder)
    optimizer = keras.optimizers.Adam(params.learning_rate, beta_1=params.adam_beta_1)
    if model.loss_scaled:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer)
    model.optimizer.build(model.trainable_variables)
    model.learning_rate_at = learning_rate_schedule(params)
    return model


def learning_rate_schedule(params):
    """None for a constant learning rate; for `learning_rate_schedule="cosine"` the learning rate of step s,
    learning_rate · ½(1 + cos(π·min(s, num_steps)/num_steps)) (SGDR's annealing without restarts, Loshchilov &
    Hutter 2017, eq. 5). It follows the run's current num_steps: extending a run stretches what is left of it."""
    if params.learning_rate_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(params.learning_rate, params.num_steps)
    return None
