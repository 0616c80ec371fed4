"""What every model offers the rest of vae_tf, written down once (docs/model.md), and the training step they share.

A model is a Keras 3 subclassed model built from the run's `Params` alone: `Model(params, image_shape, dataset_size)`,
and `get_config` / `from_config` carry exactly those, so `model.keras` rebuilds the same model. A model family reads
the parameters it needs from `self.params`; adding a parameter touches `vae_tf/params.py` and the class that reads
it, nothing in between.

The training loop, the objectives, the likelihood, the metrics, the analysis and `load_run` use these, besides the
helpers `Model` below gives every family (`train_step`, `loss_terms`, `schedule_step`, `evaluation_data`,
`validation_figures`, `autoregressive`, `loss_scaled`) and a family's own parameters and networks where a feature reads
them:

- `encode(x)`: images [B, H, W, C] in [0, 1] -> the posterior's parameters, a list of tensors [B, ...];
- `represent(x)`: images -> codes [B, d], what the disentanglement metrics and UDR read;
- `decode(code)`: codes [B, code_size] -> images [B, H, W, C] in [0, 1] (an autoregressive decoder's: samples);
- `likelihood_logits(code, x)`: the decoder's logits of images x given codes, whatever the decoder reads;
- `reconstruct(x)`: images -> the decoded posterior mode, a deterministic reconstruction;
- `sample(n, seed=0)`: n images decoded from the prior;
- `forward(x, step, stream, replica=0, replicas=1)`: (figures, batch) of one batch, `figures["loss"]` the training
  loss; `step_figures` names log.csv's columns, in order;
- `log_densities(x, posterior, noise)`: (log p(x | code_k), log p(code_k) − log q(code_k | x)), each [K, n], at the
  draws code_k that `noise` (one [K, n, width] array per part of `proposal_parts`, the latent's parts and any
  auxiliary one, made by `part.evaluation_noise`) makes from `posterior`: `vae_tf.log_likelihood`'s importance
  weights; `kl_in_closed_form` says whether the ELBO may use the parts' closed-form KL at `encode(x)` instead of
  the sampled log p(code) − log q(code|x);
- `latent` (a `vae_tf.latents.Latent`: the parts of the code), `objective`, `checkpointables()` (what the checkpoint
  holds besides the weights and the optimizer), `negative_log_likelihood(x, logits)`, `reconstruction_fn(x,
  logits)`;
- `aggressive`: the schedule of He et al.'s aggressive inference training (`vae_tf.aggressive`), or None;
- `classify(x)`: q(y|x) [B, K], where `classifies` (M2); other models raise a one-line UserError.
"""

import keras
import numpy as np
import tensorflow as tf

from vae_tf.errors import UserError
from vae_tf.losses import negative_log_likelihood
from vae_tf.objectives import PIXEL_DROPOUT_STREAM, replica_rows, stream_seed
from vae_tf.params import Params, saved_params

TRACKED = ("loss", "reconstruction_loss", "kl_loss")
VALIDATION_FIGURES = TRACKED  # validation.csv's figures, besides step and wall_time
# The last per-step figures of every family: the posterior statistics the originals logged (`posterior_statistics`),
# then the step's gradient norm and whether the step was skipped (`usable_step`).
STATISTICS_FIGURES = ("mean_avg", "mean_min", "mean_max", "std_avg", "std_min", "std_max", "grad_norm", "skipped")


def posterior_statistics(mean, log_std):
    """The batch's posterior means and standard deviations [B, D] summarised as the originals logged them: mean,
    minimum and maximum of each (scalars)."""
    std = tf.exp(log_std)
    return {"mean_avg": tf.reduce_mean(mean), "mean_min": tf.reduce_min(mean), "mean_max": tf.reduce_max(mean),
            "std_avg": tf.reduce_mean(std), "std_min": tf.reduce_min(std), "std_max": tf.reduce_max(std)}


def usable_step(loss, grad_norm, loss_scaled):
    """Whether a step's loss and gradients can be trusted (bool tensor): finite. Under loss scaling an overflowing
    gradient is the optimizer's to skip (it lowers the scale), so there only the loss counts."""
    return tf.math.is_finite(loss) & (tf.math.is_finite(grad_norm) | loss_scaled)


class Model(keras.Model):
    """The shared part of every model: its parameters, its config, and `train_step` / `test_step` around the
    family's `forward`."""

    validation_figures = VALIDATION_FIGURES
    classifies = False  # whether `classify` gives q(y|x) (the analysis then reports its accuracy)
    kl_in_closed_form = True  # whether the ELBO may take the latent parts' closed-form KL at `encode`'s posterior

    @property
    def proposal_parts(self):
        """The parts `log_densities` draws, each given its `evaluation_noise`: the latent's, and any auxiliary one."""
        return self.latent.parts

    @property
    def code_prior(self):
        """p(z) of the Gaussian code (`vae_tf.priors`; a layered model's top layer's): N(0, I) or a learned mixture."""
        return self.latent.gaussian.prior

    def __init__(self, params, image_shape, dataset_size=0, **kwargs):
        """params: the run's `Params` (or their dict, as `get_config` holds them); image_shape: (H, W, C) after
        `image_size`; dataset_size: the training split's size (0 = unknown), for the minibatch estimators."""
        super().__init__(**kwargs)
        self.params = params if isinstance(params, Params) else saved_params(params)
        self.image_shape, self.dataset_size = tuple(image_shape), dataset_size
        # float16 gradients under- and overflow: the loss is scaled, and a step whose scaled gradients overflow
        # is skipped by the optimizer (which lowers the scale), not taken for a diverged run.
        self.loss_scaled = self.params.precision == "mixed_float16"
        self.learning_rate_at = None  # step -> learning rate, for a schedule (build_model sets it from params)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in TRACKED}
        self.aggressive = None  # a family that offers aggressive training sets it (`vae_tf.aggressive`)

    def get_config(self):
        return {**super().get_config(), "params": self.params.to_dict(), "image_shape": list(self.image_shape),
                "dataset_size": self.dataset_size}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def checkpointables(self):
        """What a resumable checkpoint holds besides the model and its optimizer (name -> trackable): the
        objective's own state (FactorVAE's discriminator) and aggressive training's."""
        return {**self.objective.checkpointables(), **(self.aggressive.checkpointables() if self.aggressive else {})}

    def optimized_variables(self):
        """The variables the run's optimizer updates: all, but the decoder's under aggressive training (which gives
        the decoder an optimizer of its own)."""
        return self.aggressive.encoder_variables if self.aggressive else self.trainable_variables

    def schedule_step(self, step):
        """Where the schedules (the KL weight, the categoricals' capacity) stand at training step `step`: the step,
        or under aggressive training the decoder's updates (`schedules.Clocked`)."""
        return step if self.aggressive is None else self.aggressive.decoder_updates

    def noise(self, shape, step, stream=0):
        """Standard normal noise that is a pure function of (seed, step, stream): resumed runs draw the same noise."""
        return tf.random.stateless_normal(shape, seed=stream_seed(self.params.seed, step, stream))

    def call(self, x, training=False):
        return self.reconstruct(x)

    # A model whose code is a `vae_tf.latents.Latent` and whose `decoder` maps codes to logits gets these as they are.

    def classify(self, x):
        """q(y|x) [B, K], for a model that classifies; the others say so in one line."""
        raise UserError(f"model {self.params.model} has no classifier q(y|x): train model m2 or adgm (with labels and "
                        f"label_factor) for one")

    def describe(self):
        """One line on the code, printed when training starts."""
        return self.latent.describe()

    def represent(self, x):
        """images -> codes for the metrics [B, latent_size + categoricals]: the Gaussian mean, each categorical's
        most probable category."""
        return self.latent.representation(self.encode(x))

    @property
    def autoregressive(self):
        """Whether the decoder reads the image too (the PixelCNN: each pixel's distribution given those before it)."""
        return self.params.decoder == "pixelcnn"

    def likelihood_logits(self, code, x, training=False):
        """The decoder's logits [B, H, W, C] of images x [B, H, W, C] given codes [B, code_size]: an autoregressive
        decoder reads x itself (teacher forcing: one pass gives every p(x_i | x_<i, code))."""
        return self.decoder([code, x], training=training) if self.autoregressive else self.decoder(code,
                                                                                                  training=training)

    def decoder_context(self, x, step, stream, replica=0, replicas=1):
        """The images [B, H, W, C] an autoregressive decoder reads in `forward`: x, but in a training step (stream 0)
        with `pixel_dropout` a share of its pixels replaced by 0.5, unknown (Bowman et al. 2016's word dropout): the
        decoder can then no longer predict a pixel from the ones before it alone, and must read the code. The mask
        is drawn for the global batch from its own stream, as `noise` is, and each replica takes its rows."""
        if not self.params.pixel_dropout or stream != 0:
            return x
        shape = tf.concat([[tf.shape(x)[0] * replicas], tf.shape(x)[1:]], axis=0)
        uniform = tf.random.stateless_uniform(shape, seed=stream_seed(self.params.seed, step, PIXEL_DROPOUT_STREAM))
        hidden = replica_rows(uniform, replica, replicas) < self.params.pixel_dropout
        return tf.where(hidden, tf.constant(0.5, x.dtype), x)

    def decode(self, code):
        """codes [B, code_size] -> images [B, H, W, C] in [0, 1]: the decoder's means, or for an autoregressive
        decoder a sample drawn pixel by pixel (`vae_tf.pixelcnn.sample`, the run's seed: the same codes give the
        same images)."""
        if self.autoregressive:
            from vae_tf.pixelcnn import compiled_sampler
            return compiled_sampler(self.decoder)(tf.convert_to_tensor(code, tf.float32),
                                                  tf.constant([self.params.seed, 0], tf.int64))
        return tf.sigmoid(self.decoder(code, training=False))

    def reconstruct(self, x):
        """Decode the posterior's mode (the Gaussian mean, the most probable categories): a deterministic
        reconstruction of x."""
        return self.decode(self.latent.mode(self.encode(x)))

    def sample(self, n, seed=0):
        """n images decoded from the prior (a fixed seed gives the same images)."""
        gaussian = self.latent.gaussian
        if gaussian.closed_form:
            code = tf.random.stateless_normal((n, gaussian.size), seed=[seed, 0])
        else:  # a learned prior, drawn as it is now
            code = tf.constant(gaussian.prior_codes(np.random.default_rng(seed), n), tf.float32)
        if self.latent.categoricals:
            categories = self.latent.prior_codes(np.random.default_rng(seed), n)[:, gaussian.size:]
            code = tf.concat([code, categories], axis=1)
        return self.decode(code)

    def negative_log_likelihood(self, x, logits):
        """−log p(x|z) [B] in nats, the reconstruction loss with its normalising constant (`losses.NORMALISING_CONSTANTS`)."""
        return negative_log_likelihood(self.params.reconstruction_loss, x, logits)

    def loss_terms(self, data, step, stream):
        """The figures of `forward` on one device (validation, evaluation)."""
        return self.forward(data, step, stream)[0]

    def training_data(self, data):
        """What `forward` trains on, of what the training stream (or Keras' fit) gives: the images."""
        return data[0] if isinstance(data, (tuple, list)) else data

    def evaluation_data(self, images, labels):
        """What validation feeds `forward`, of fixed images [n, ...] and their labels (name -> [n]): the images."""
        return images

    def train_step(self, data):
        """One update. With nan_policy "skip_batch", a batch whose loss or gradients are not finite changes
        no weight and no optimizer moment; only the step counter moves on (figure `skipped` is 1). Under
        mixed_float16 a step whose scaled gradients overflow is skipped the same way, whatever the nan_policy."""
        x = self.training_data(data)
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
        if self.params.max_grad_norm:
            gradients = self._clipped(gradients, scale, replicas)
        overflow = tf.logical_not(self.optimizer.check_finite(gradients) if self.loss_scaled else
                                  tf.math.is_finite(terms["grad_norm"]))
        finite = usable_step(terms["loss"], terms["grad_norm"], self.loss_scaled)

        def apply():
            if self.aggressive is None:
                self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
            else:
                self.aggressive.apply(gradients, self.trainable_variables, terms["loss"])
            if self.loss_scaled:  # an overflowing step leaves the counter, which the schedule and noise read
                tf.cond(overflow, lambda: self.optimizer.iterations.assign_add(1), lambda: self.optimizer.iterations)
            apply_auxiliary()
            return tf.constant(True)

        if self.params.nan_policy == "skip_batch":
            tf.cond(finite, apply, self._skip)
        else:
            apply()
        terms["skipped"] = 1.0 - tf.cast(finite & tf.logical_not(overflow), tf.float32)
        if self.aggressive is not None:
            terms.update(self.aggressive.figures())
        self._track(terms, finite)
        return terms

    def _clipped(self, gradients, scale, replicas):
        """`gradients` (this replica's, times the loss `scale`) clipped as tf.clip_by_global_norm clips, at
        `max_grad_norm` times the scale, by the global norm of their sum over the `replicas`: one device's update,
        however many share it (Keras' own `global_clipnorm` clips each replica's part on its own). Before the
        aggressive schedule splits them, as He et al. clip the whole model's gradient."""
        present = [g for g in gradients if g is not None]
        summed = (tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, present)
                  if replicas > 1 else present)
        clipped = iter(tf.clip_by_global_norm(present, self.params.max_grad_norm * scale,
                                              use_norm=tf.linalg.global_norm(summed))[0])
        return [None if g is None else next(clipped) for g in gradients]

    def _track(self, terms, finite=True):
        """The Keras progress trackers take finite batches only, so one skipped batch does not make `fit` report NaN."""
        weight = tf.cast(finite, tf.float32)
        for name, tracker in self.trackers.items():
            tracker.update_state(tf.where(finite, terms[name], 0.0), sample_weight=weight)

    def _skip(self):
        self.optimizer.iterations.assign_add(1)
        return tf.constant(False)

    def test_step(self, data):
        terms = self.loss_terms(self.training_data(data), self.optimizer.iterations, stream=1)
        self._track(terms, tf.math.is_finite(terms["loss"]))
        return {name: tracker.result() for name, tracker in self.trackers.items()}
