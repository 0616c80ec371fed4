"""The VAE as a Keras 3 subclassed model whose `train_step` / `test_step` compute the loss."""

import keras
import tensorflow as tf

from vae_tf import networks
from vae_tf.losses import RECONSTRUCTION_LOSSES, gaussian_kl
from vae_tf.schedules import make_schedule

# Per-step figures `train_step` returns: the loss terms and the posterior statistics the originals logged.
STEP_FIGURES = ("loss", "reconstruction_loss", "kl_loss", "kl_weight", "kl_target",
                "mean_avg", "mean_min", "mean_max", "std_avg", "std_min", "std_max", "grad_norm", "skipped")
TRACKED = ("loss", "reconstruction_loss", "kl_loss")


@keras.saving.register_keras_serializable(package="vae_tf")
class VAE(keras.Model):
    """Gaussian encoder q(z|x) = N(mean, exp(log_std)²), standard normal prior, decoder p(x|z).

    `z = mean + exp(log_std) * eps`; loss = reconstruction (summed over pixels) + the schedule's KL
    penalty (KL summed over latents), both averaged over the batch. The KL weight is read from the
    optimizer's step counter inside the compiled step.
    """

    def __init__(self, image_shape, encoder_layers, decoder_layers=None, latent_size=10, activation="relu",
                 reconstruction_loss="bernoulli", kl_schedule="constant", beta=1.0, kl_start_step=0,
                 kl_end_step=0, kl_start_value=0.0, kl_end_value=1.0, seed=0, nan_policy="stop", **kwargs):
        super().__init__(**kwargs)
        self.config = dict(image_shape=list(image_shape), encoder_layers=encoder_layers,
                           decoder_layers=decoder_layers, latent_size=latent_size, activation=activation,
                           reconstruction_loss=reconstruction_loss, kl_schedule=kl_schedule, beta=beta,
                           kl_start_step=kl_start_step, kl_end_step=kl_end_step, kl_start_value=kl_start_value,
                           kl_end_value=kl_end_value, seed=seed, nan_policy=nan_policy)
        self.latent_size = latent_size
        self.seed = seed
        self.nan_policy = nan_policy
        self.encoder = networks.build_encoder(image_shape, encoder_layers, latent_size, activation)
        self.decoder = networks.build_decoder(image_shape, latent_size, encoder_layers, decoder_layers, activation)
        self.reconstruction_fn = RECONSTRUCTION_LOSSES[reconstruction_loss]
        self.schedule = make_schedule(kl_schedule, beta, kl_start_step, kl_end_step, kl_start_value, kl_end_value)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in TRACKED}
        self.built = True  # both networks are built on keras.Input above; saving needs to know it

    def get_config(self):
        return {**super().get_config(), **self.config}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def noise(self, shape, step, stream=0):
        """Standard normal noise that is a pure function of (seed, step, stream): resumed runs draw the same noise."""
        seed = tf.stack([tf.cast(self.seed * 7919 + stream, tf.int64), tf.cast(step, tf.int64)])
        return tf.random.stateless_normal(shape, seed=seed)

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

    def loss_terms(self, x, step, stream, replica=0, replicas=1):
        """Loss terms and posterior statistics of one batch, as scalars.

        A replica holding one of `replicas` equal slices of the global batch draws the global batch's noise
        and takes its own rows, so a mirrored step samples exactly what a single-device step would."""
        mean, log_std = self.encoder(x, training=True)
        rows = tf.shape(mean)[0]
        noise = self.noise(tf.stack([rows * replicas, self.latent_size]), step, stream)
        z = mean + tf.exp(log_std) * noise[replica * rows:(replica + 1) * rows]
        reconstruction = tf.reduce_mean(self.reconstruction_fn(x, self.decoder(z, training=True)))
        kl = tf.reduce_mean(gaussian_kl(mean, log_std))
        std = tf.exp(log_std)
        return {"loss": reconstruction + self.schedule.penalty(kl, step),
                "reconstruction_loss": reconstruction, "kl_loss": kl,
                "kl_weight": self.schedule.weight(step), "kl_target": self.schedule.target(step),
                "mean_avg": tf.reduce_mean(mean), "mean_min": tf.reduce_min(mean), "mean_max": tf.reduce_max(mean),
                "std_avg": tf.reduce_mean(std), "std_min": tf.reduce_min(std), "std_max": tf.reduce_max(std)}

    def train_step(self, data):
        """One update. With nan_policy "skip_batch", a batch whose loss or gradients are not finite changes
        no weight and no optimizer moment; only the step counter moves on (figure `skipped` is 1)."""
        x = data[0] if isinstance(data, (tuple, list)) else data
        step = self.optimizer.iterations
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            terms = self.loss_terms(x, step, stream=0, replica=replica, replicas=replicas)
            # Each replica sees a slice of the global batch and the optimizer sums their gradients.
            scaled = terms["loss"] / replicas
        gradients = tape.gradient(scaled, self.trainable_variables)
        terms["grad_norm"] = tf.linalg.global_norm(gradients) * replicas
        finite = tf.math.is_finite(terms["loss"]) & tf.math.is_finite(terms["grad_norm"])
        if self.nan_policy == "skip_batch":
            tf.cond(finite, lambda: self._apply(gradients), lambda: self._skip())
        else:
            self._apply(gradients)
        terms["skipped"] = 1.0 - tf.cast(finite, tf.float32)
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return terms

    def _apply(self, gradients):
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return tf.constant(True)

    def _skip(self):
        self.optimizer.iterations.assign_add(1)
        return tf.constant(False)

    def test_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        terms = self.loss_terms(x, self.optimizer.iterations, stream=1)
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def build_model(params, image_shape=None):
    """The compiled VAE for `params`; `image_shape` defaults to the data set's (after `image_size`)."""
    if image_shape is None:
        from vae_tf.datasets import image_shape_of
        image_shape = image_shape_of(params)
    keras.utils.set_random_seed(params.seed)
    model = VAE(image_shape, params.encoder_layers, params.decoder_layers, params.latent_size, params.activation,
                params.reconstruction_loss, params.kl_schedule, params.beta, params.kl_start_step,
                params.kl_end_step, params.kl_start_value, params.kl_end_value, params.seed, params.nan_policy)
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate, beta_1=params.adam_beta_1))
    model.optimizer.build(model.trainable_variables)
    return model
