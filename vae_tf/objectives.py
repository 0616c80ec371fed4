"""Training objectives: one class each, registered by name, differing in the penalty they add.

Every objective shares the encoder, decoder, reconstruction term, KL schedule and run folder. The base class
is the β-VAE family; the others override one hook, `penalty(batch, step)` (disentanglement_lib's `regularizer`),
except IWAE, whose bound replaces the whole loss (`loss`), and FactorVAE, which also trains a discriminator
(`auxiliary_update`). `kl_weight` — `beta` through the `kl_schedule` — multiplies each objective's KL-type term.
"""

import keras
import tensorflow as tf

from vae_tf import losses


# The random streams of a run: each draws from its own stateless seed `stream_seed(seed, step, stream)`, so a resumed
# run draws exactly what an uninterrupted one would. 0: the training step's reparameterisation noise; 1: validation;
# 2: IWAE's extra samples; 3: FactorVAE's dimension permutation; 4: InfoVAE's prior samples; 5: the pixels
# pixel_dropout hides (`Model.decoder_context`); 6: dynamic binarisation (`datasets.TrainingStream`). A categorical
# latent part i draws from stream s's seed folded with i (`VAE.forward`).
FACTOR_VAE_STREAM, INFO_VAE_STREAM, PIXEL_DROPOUT_STREAM = 3, 4, 5


def initializer_seed(seed, salt):
    """The int seed of the weight initializer `salt` of a run seeded `seed`, for weights made outside Keras' global
    seed (a seeded initializer does not move it, so a model with such a weight starts its other layers where the
    model without it does). For seed 0 the salt itself: the documented seed-0 runs were initialised so."""
    return (seed * 1_000_003 + salt) % 2 ** 31


def stream_seed(seed, step, stream):
    """The stateless seed [2] (int64) of random stream `stream` at training step `step` of a run seeded `seed`."""
    return tf.stack([tf.cast(seed, tf.int64) * 7919 + stream, tf.cast(step, tf.int64)])


def global_batch(tensors, replicas):
    """The global batch of a nest of per-replica tensors [B, ...] -> [B·replicas, ...], replica 0's rows first: the
    rows in the order one device holds them (`replica_rows` cuts them so). On one device, the tensors themselves.

    Its gradient is `all_gather`'s: the replicas' gradients with respect to the global batch are summed, and each
    replica takes its own rows back. A statistic P of the global batch that every replica adds to its loss, which
    `VAE.train_step` divides by `replicas`, thus gives replica r the gradient Σ_r' (1/replicas)·∂P/∂(rows of r) =
    ∂P/∂(rows of r), and the optimizer's sum over the replicas is the single-device gradient of P."""
    if replicas == 1:
        return tensors
    return tf.distribute.get_replica_context().all_gather(tensors, axis=0)


def replica_rows(tensor, replica, replicas, axis=0):
    """Replica `replica`'s equal slice, along `axis`, of a tensor of the global batch."""
    rows = tf.shape(tensor)[axis] // replicas
    return tf.gather(tensor, tf.range(replica * rows, (replica + 1) * rows), axis=axis)


class Batch:
    """What one step knows of its batch, the replica slice `replica` of `replicas`.

    The replica's own rows, B of them: images x [B, H, W, C]; the Gaussian part's mean, log_std and one sample
    z [B, D]; the decoder's logits for the whole code (z, then the categoricals' relaxed samples); reconstruction per
    image [B].

    The global batch, B·replicas rows gathered across the replicas (`global_batch`; on one device the same rows):
    `whole` = (mean, log_std, z) [B·replicas, D], read as global_mean, global_log_std, global_z (with a flow, z is the
    Gaussian draw z_0 the flow starts from); the Gaussian part's KL
    per image kl [B·replicas]; the categoricals' summed KL per image [B·replicas] and the KL of their average (a
    scalar), None without categoricals; the HSIC between the parts (`Latent.hsic`, a scalar), None unless weighted.
    The penalties read these: besides the batch statistics, the capacity terms |KL − C| are not linear in the KL's
    batch mean, so a mean over the replicas' own |KL − C| would differ."""

    def __init__(self, x, mean, log_std, z, logits, reconstruction, kl, replica, replicas, categorical_kl=None,
                 categorical_marginal_kl=None, categorical_hsic=None, whole=None, parameters=None, noise=None,
                 context=None):
        self.x, self.mean, self.log_std, self.z, self.logits = x, mean, log_std, z, logits
        self.reconstruction, self.kl = reconstruction, kl
        self.replica, self.replicas = replica, replicas
        self.categorical_kl, self.categorical_marginal_kl = categorical_kl, categorical_marginal_kl
        self.categorical_hsic = categorical_hsic
        self.global_mean, self.global_log_std, self.global_z = whole or (mean, log_std, z)
        # The Gaussian part's parameters (with a flow's) and the noise that drew z, of the replica's rows: what IWAE
        # needs to weigh z and its other draws.
        self.parameters, self.noise = parameters or (mean, log_std), noise
        self.context = x if context is None else context  # what an autoregressive decoder read (`decoder_context`)


class BetaVAE:
    """β-VAE (Higgins et al. 2017): reconstruction + β·KL, with β from the KL schedule: constant (β = 1 is the VAE of
    Kingma & Welling 2014, β = 0 an autoencoder), linear (KL annealing, Bowman et al. 2016), cyclical (Fu et al.
    2019) or capacity (β·|KL − C|, the AnnealedVAE of Burgess et al. 2018, eq. 8)."""

    figures = ()  # per-step figures this objective logs besides the shared ones

    def __init__(self, schedule, params, dataset_size, categorical_schedule=None):
        """params: the run's `Params`, whose options of this objective it reads; `categorical_schedule`: the
        categoricals' capacity term (`vae_tf.models.vae.categorical_capacity_schedule`), or None."""
        self.schedule, self.params, self.dataset_size = schedule, params, dataset_size
        self.categorical_schedule = categorical_schedule

    def kl_term(self, batch):
        """The KL the schedule weighs (a scalar): the batch mean of the Gaussian part's KL, or with `free_bits` λ the
        free-bits objective of Kingma et al. 2016 (appendix C), Σ_g max(λ, the batch mean of group g's KL) over
        `free_bits_groups` equal groups of the latents (None: each dimension its own): a group's first λ nats cost
        nothing, so the encoder has no reason to empty it."""
        if not self.params.free_bits:
            return tf.reduce_mean(batch.kl)
        mean, log_std = batch.global_mean, batch.global_log_std
        per_dimension = tf.reduce_mean(losses.gaussian_kl_per_dimension(mean, log_std), axis=0)
        groups = self.params.free_bits_groups or self.params.latent_size
        per_group = tf.reduce_sum(tf.reshape(per_dimension, [groups, -1]), axis=1)
        return tf.reduce_sum(tf.maximum(tf.cast(self.params.free_bits, per_group.dtype), per_group))

    def penalty(self, batch, step):
        """The term added to the batch-mean reconstruction loss (a scalar), and extra figures (a dict)."""
        return self.schedule.penalty(self.kl_term(batch), step), {}

    def loss(self, model, batch, step):
        """The training loss of a batch (a scalar) and this objective's extra figures. The penalty acts on the
        Gaussian part; categorical latents add JointVAE's γ·|KL_c − C_c| (Dupont 2018, eq. 7), λ·KL(q̄(c) ‖ U) and
        the parts' dependence (`schedules.CategoricalCapacity`, `Latent.categorical_marginal_kl`, `Latent.hsic`)."""
        penalty, figures = self.penalty(batch, step)
        loss = tf.reduce_mean(batch.reconstruction) + penalty
        if batch.categorical_kl is None:
            return loss, figures
        kl_categorical = tf.reduce_mean(batch.categorical_kl)
        loss += self.categorical_schedule.penalty(kl_categorical, step, batch.categorical_marginal_kl,
                                                  batch.categorical_hsic)
        if batch.categorical_hsic is not None:
            figures = {"categorical_hsic": batch.categorical_hsic, **figures}
        return loss, {"kl_gaussian": tf.reduce_mean(batch.kl), "kl_categorical": kl_categorical,
                      "categorical_capacity": self.categorical_schedule.target(step),
                      "categorical_marginal_kl": batch.categorical_marginal_kl, **figures}

    def auxiliary_update(self, batch, step):
        """Extra training after the VAE's own gradients (FactorVAE's discriminator): (figures, apply) where
        `apply()` applies the update; the step calls it only when the VAE's update is applied too."""
        return {}, lambda: None

    def checkpointables(self):
        """Extra state a resumable checkpoint must hold (name -> trackable)."""
        return {}


class BetaTCVAE(BetaVAE):
    """β-TCVAE (Chen et al. 2018, eq. 4): reconstruction + α·MI + β·TC + γ·dimension-wise KL, the three terms of
    the KL's decomposition estimated on the minibatch (`losses.kl_decomposition`) with the paper's minibatch-weighted
    ("mws") or minibatch-stratified ("mss") sampling; the data-set size enters their weights. β comes from the KL
    schedule (constant, linear or cyclical). The minibatch is the global one, gathered across replicas."""


    def penalty(self, batch, step):
        z = batch.global_z
        weights = losses.log_importance_weights(tf.shape(z)[0], self.dataset_size, self.params.tc_estimator)
        terms = losses.kl_decomposition(z, batch.global_mean, batch.global_log_std, weights)
        return (self.params.tc_alpha * terms["index_code_mi"]
                + self.schedule.weight(step) * terms["total_correlation"]
                + self.params.tc_gamma * terms["dimension_wise_kl"]), {}


def _permute_dimensions(z, seed):
    """Shuffle each column of z [B, D] independently across the batch: samples of Π_d q(z_d) (Kim & Mnih 2018, alg. 1)."""
    keys = tf.random.stateless_uniform(tf.shape(tf.transpose(z)), seed=seed)  # [D, B]
    order = tf.argsort(keys, axis=1)
    return tf.transpose(tf.gather(tf.transpose(z), order, batch_dims=1))


def build_discriminator(latent_size):
    """FactorVAE's discriminator (Kim & Mnih 2018, appendix): 6 × 1000 leaky-ReLU layers -> one logit, log D/(1 − D),
    D the probability that a code came from q(z) rather than from Π_d q(z_d)."""
    x = inputs = keras.Input((latent_size,), name="z")
    for i in range(6):
        x = keras.layers.Dense(1000, name=f"dense{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"leaky_relu{i}")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="logit")(x), name="discriminator")


class FactorVAE(BetaVAE):
    """FactorVAE (Kim & Mnih 2018, eq. 2): reconstruction + KL + γ·TC, TC ≈ E_q(z)[log D(z)/(1 − D(z))] from a
    discriminator trained to tell codes z from codes permuted dimension by dimension (the same batch, permuted).
    The discriminator has its own Adam (1e-4, β₁ 0.5, β₂ 0.9, the paper's) and lives in the checkpoint.

    The TC term is a mean over images, so each replica estimates it on its own rows; the permutation mixes the rows of
    the global batch, as on one device."""

    figures = ("discriminator_loss", "discriminator_accuracy")

    def __init__(self, schedule, params, dataset_size, categorical_schedule=None):
        super().__init__(schedule, params, dataset_size, categorical_schedule)
        self.discriminator = build_discriminator(params.latent_size)
        self.optimizer = keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9)
        self.optimizer.build(self.discriminator.trainable_variables)

    def penalty(self, batch, step):
        total_correlation = tf.reduce_mean(self.discriminator(batch.z, training=False))
        kl = self.schedule.penalty(self.kl_term(batch), step)
        return kl + self.params.factor_gamma * total_correlation, {}

    def auxiliary_update(self, batch, step):
        """The discriminator's step on the global batch's codes and their permutation. Each replica takes its own
        rows of both, and its loss over them divided by `replicas`: the optimizer sums the replicas' gradients into
        the gradient of the global batch's loss."""
        z = tf.stop_gradient(batch.z)
        permuted = _permute_dimensions(tf.stop_gradient(batch.global_z),
                                       stream_seed(self.params.seed, step, FACTOR_VAE_STREAM))
        permuted = replica_rows(permuted, batch.replica, batch.replicas)
        with tf.GradientTape() as tape:
            joint, product = self.discriminator(z, training=True), self.discriminator(permuted, training=True)
            loss = 0.5 * tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(joint), joint)
                                        + tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(product), product))
            share = loss / batch.replicas
        gradients = tape.gradient(share, self.discriminator.trainable_variables)
        accuracy = 0.5 * (tf.reduce_mean(tf.cast(joint > 0, tf.float32)) + tf.reduce_mean(tf.cast(product <= 0, tf.float32)))
        figures = {"discriminator_loss": loss, "discriminator_accuracy": accuracy}
        return figures, lambda: self.optimizer.apply_gradients(zip(gradients, self.discriminator.trainable_variables))

    def checkpointables(self):
        return {"discriminator": self.discriminator, "discriminator_optimizer": self.optimizer}


class DIPVAEI(BetaVAE):
    """DIP-VAE-I (Kumar et al. 2018, eq. 6): reconstruction + KL + λ_od·Σ_{i≠j} C_ij² + λ_d·Σ_i (C_ii − 1)², C the
    covariance of the posterior means over the (global) batch."""

    def covariance(self, mean, log_std, weights=None):
        """C [D, D] of the posteriors (mean, log_std) [N, D], weighted as `losses.covariance` weighs rows."""
        return losses.covariance(mean, weights)

    def decorrelation(self, mean, log_std, weights=None):
        """λ_od·Σ_{i≠j} C_ij² + λ_d·Σ_i (C_ii − 1)² (a scalar) of the posteriors (mean, log_std) [N, D]."""
        return losses.dip_penalty(self.covariance(mean, log_std, weights), self.params.dip_lambda_od,
                                  self.params.dip_lambda_d)

    def penalty(self, batch, step):
        dip = self.decorrelation(batch.global_mean, batch.global_log_std)
        return self.schedule.penalty(self.kl_term(batch), step) + dip, {}


class DIPVAEII(DIPVAEI):
    """DIP-VAE-II (Kumar et al. 2018, eq. 7): as DIP-VAE-I with C the covariance of q(z),
    Cov[mean] + E[diag(exp(2·log_std))]. Weighted, the posteriors are the components of a mixture (M2's q(z|x) =
    Σ_y q(y|x) q(z|x,y)), and C is that mixture's covariance exactly."""

    def covariance(self, mean, log_std, weights=None):
        variances = tf.exp(2.0 * log_std)
        variances = (tf.reduce_mean(variances, axis=0) if weights is None
                     else tf.reduce_sum(weights[:, None] * variances, axis=0))
        return losses.covariance(mean, weights) + tf.linalg.diag(variances)


class InfoVAE(BetaVAE):
    """InfoVAE (Zhao et al. 2017, eq. 6, with MMD as the divergence): reconstruction + (1 − α)·KL
    + (α + λ − 1)·MMD(q(z), p(z)), the MMD between the (global) batch's codes and as many prior samples."""

    figures = ("mmd",)

    def penalty(self, batch, step):
        alpha, lam = self.params.info_alpha, self.params.info_lambda
        prior = tf.random.stateless_normal(tf.shape(batch.global_z),
                                           seed=stream_seed(self.params.seed, step, INFO_VAE_STREAM))
        divergence = losses.mmd(batch.global_z, prior, self.params.mmd_kernel)
        kl = self.schedule.penalty(self.kl_term(batch), step)
        return (1.0 - alpha) * kl + (alpha + lam - 1.0) * divergence, {"mmd": divergence}


class IWAE(BetaVAE):
    """IWAE (Burda et al. 2016, eq. 8): the loss is −log (1/K) Σ_k p(x, z_k)/q(z_k|x), z_k ~ q(z|x), K = iwae_samples
    (K = 1 is the VAE's negative ELBO, with the Monte-Carlo KL). It is a bound on log p(x), so it takes no KL weight."""

    figures = ("iwae_bound",)

    def loss(self, model, batch, step):
        k, rows = self.params.iwae_samples, tf.shape(batch.z)[0]
        noise = batch.noise[None]  # the step's own draw first: z_1 is the step's z
        x = tf.tile(batch.x, [k, 1, 1, 1])
        if k > 1:  # the others come from their own noise stream, sliced like the step's own noise
            others = model.noise(tf.stack([k - 1, rows * batch.replicas, model.latent_size]), step, stream=2)
            noise = tf.concat([noise, replica_rows(others, batch.replica, batch.replicas, axis=1)], axis=0)
        parameters = [p[None] for p in batch.parameters]
        z, prior_ratio = model.latent.gaussian.draw_with_ratio(parameters, noise)  # [K, B, D], [K, B]
        logits = batch.logits
        if k > 1:
            context = tf.tile(batch.context, [k - 1, 1, 1, 1])  # each draw's decoder reads the step's context
            decoded = model.likelihood_logits(tf.reshape(z[1:], [-1, model.latent_size]), context, training=True)
            logits = tf.concat([logits, decoded], axis=0)  # [K·B, H, W, C], sample-major
        log_likelihood = -tf.reshape(model.negative_log_likelihood(x, logits), [k, rows])
        bound = tf.reduce_mean(losses.importance_weighted_bound(log_likelihood + prior_ratio))
        return -bound, {"iwae_bound": bound}


OBJECTIVES = {"beta_vae": BetaVAE, "beta_tcvae": BetaTCVAE, "factor_vae": FactorVAE, "dip_vae_i": DIPVAEI,
              "dip_vae_ii": DIPVAEII, "info_vae": InfoVAE, "iwae": IWAE}
