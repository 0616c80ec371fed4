"""Normalizing flows on the Gaussian posterior (`params.flow`, `flow_length` K): z_0 = mean + exp(log_std)·ε, then
z_k = f_k(z_{k-1}); the decoder reads z_K and log q(z_K|x) = log N(z_0; mean, exp(log_std)²) − Σ_k log |det ∂f_k/∂z|,
the log-determinant per sample (never summed over the batch).

A flow is `transform(z_0, parameters) -> (z_K, Σ_k log |det|)`, z_0 [..., B, D] and the log-determinants [..., B];
`heads` are the encoder outputs it reads beside the mean and log_std (amortised parameters, one set per image).

- `Planar` (Rezende & Mohamed 2015, eq. 10-12 and appendix A.1): f(z) = z + û·tanh(wᵀz + b), u, w, b from the
  encoder; û = u + (m(wᵀu) − wᵀu)·w/‖w‖², m(a) = −1 + softplus(a), keeps each step invertible.
- `InverseAutoregressive` (Kingma et al. 2016, eq. 10-14 and their §4's numerically stable form): the encoder also
  outputs a context h; step k computes (m, s) = MADE_k(z, h), σ = sigmoid(s), z ← σ ⊙ z + (1 − σ) ⊙ m, log |det| =
  Σ log σ, and the order of the dimensions is reversed between steps. Its autoregressive networks are the model's
  weights (a Keras layer).
"""

import keras
import numpy as np
import tensorflow as tf

from vae_tf.objectives import initializer_seed

IAF_HIDDEN = 2  # the MADE's hidden units per latent dimension
IAF_GATE_BIAS = 1.0  # s starts near +1, σ near sigmoid(1) ≈ 0.73: each step starts keeping most of z (Kingma et al.)


class Planar:
    """K planar steps, their u, w [B, K·D] and b [B, K] given by the encoder for each image."""

    def __init__(self, size, length):
        self.size, self.length = size, length
        self.heads = (("flow_u", length * size), ("flow_w", length * size), ("flow_b", length))

    def describe(self):
        return f"{self.length} planar flow steps"

    def transform(self, z, parameters):
        u, w, b = parameters
        shape = tf.concat([tf.shape(u)[:-1], [self.length, self.size]], 0)
        u, w = tf.reshape(u, shape), tf.reshape(w, shape)  # [..., B, K, D]
        wu = tf.reduce_sum(w * u, -1, keepdims=True)
        u_hat = u + (tf.nn.softplus(wu) - 1.0 - wu) * w / (tf.reduce_sum(tf.square(w), -1, keepdims=True) + 1e-8)
        log_det = tf.zeros(tf.shape(z)[:-1], z.dtype)
        for k in range(self.length):
            a = tf.reduce_sum(w[..., k, :] * z, -1) + b[..., k]  # [..., B]
            h = tf.tanh(a)
            z = z + u_hat[..., k, :] * h[..., None]
            psi_u = (1.0 - tf.square(h)) * tf.reduce_sum(w[..., k, :] * u_hat[..., k, :], -1)
            log_det += tf.math.log(tf.abs(1.0 + psi_u) + 1e-8)
        return z, log_det


def made_masks(size, hidden):
    """MADE's masks (Germain et al. 2015) for an autoregressive map of `size` dimensions through `hidden` units:
    (input -> hidden [size, hidden], hidden -> output [hidden, size]); output d depends on inputs before d only."""
    inputs = np.arange(1, size + 1)
    units = np.arange(hidden) % max(size - 1, 1) + 1  # degrees 1 .. size − 1
    return ((units[None, :] >= inputs[:, None]).astype(np.float32),
            (inputs[None, :] > units[:, None]).astype(np.float32))


class InverseAutoregressive(keras.layers.Layer):
    """K IAF steps, each a MADE with one hidden layer of IAF_HIDDEN·D units (ELU) that also reads the context h."""

    def __init__(self, size, length, seed=0, **kwargs):
        """`seed`: the run's (`Params.seed`), which draws the weights."""
        super().__init__(**kwargs)
        self.size, self.length, hidden = size, length, IAF_HIDDEN * size
        self.heads = (("flow_context", size),)
        self.masks = made_masks(size, hidden)
        # Glorot's uniform range for one step's [size, hidden] matrix, each weight drawn from its own seed (a seeded
        # Keras initializer repeats its values for every weight of the same shape).
        limit = (6.0 / (size + hidden)) ** 0.5

        def glorot(salt):
            return keras.initializers.RandomUniform(-limit, limit, seed=initializer_seed(seed, salt))

        self.w_in = self.add_weight(shape=(length, size, hidden), initializer=glorot(4 * size), name="w_in")
        self.w_context = self.add_weight(shape=(length, size, hidden), initializer=glorot(4 * size + 1),
                                         name="w_context")
        self.b_in = self.add_weight(shape=(length, hidden), initializer="zeros", name="b_in")
        self.w_mean = self.add_weight(shape=(length, hidden, size), initializer=glorot(4 * size + 2), name="w_mean")
        self.w_gate = self.add_weight(shape=(length, hidden, size), initializer=glorot(4 * size + 3), name="w_gate")
        self.b_mean = self.add_weight(shape=(length, size), initializer="zeros", name="b_mean")
        self.b_gate = self.add_weight(shape=(length, size), initializer=keras.initializers.Constant(IAF_GATE_BIAS),
                                      name="b_gate")

    def describe(self):
        return f"{self.length} inverse autoregressive flow steps"

    def transform(self, z, parameters):
        (context,) = parameters
        into_hidden, out_of_hidden = (tf.constant(m) for m in self.masks)
        log_det = tf.zeros(tf.shape(z)[:-1], z.dtype)
        for k in range(self.length):
            hidden = tf.nn.elu(tf.linalg.matmul(z, self.w_in[k] * into_hidden)
                               + tf.linalg.matmul(context, self.w_context[k]) + self.b_in[k])
            mean = tf.linalg.matmul(hidden, self.w_mean[k] * out_of_hidden) + self.b_mean[k]
            s = tf.linalg.matmul(hidden, self.w_gate[k] * out_of_hidden) + self.b_gate[k]
            gate = tf.sigmoid(s)
            z = gate * z + (1.0 - gate) * mean
            log_det += tf.reduce_sum(tf.math.log_sigmoid(s), -1)  # exact where σ(s) rounds to 0, unlike log(σ(s))
            z = tf.reverse(z, [-1])  # the next step's order: each dimension depends on others in turn
        if self.length % 2:
            z = tf.reverse(z, [-1])  # back to the base order
        return z, log_det


def build_flow(params):
    """The flow `params.flow` names, or None (no flow, or a length of 0: the plain Gaussian posterior)."""
    if params.flow == "none" or params.flow_length == 0:
        return None
    if params.flow == "planar":
        return Planar(params.latent_size, params.flow_length)
    return InverseAutoregressive(params.latent_size, params.flow_length, params.seed, name="flow")
