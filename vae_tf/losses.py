"""The maths of the objectives as pure functions: loss terms, densities and minibatch estimators.

Shapes: images `x` and decoder `logits` are [batch, H, W, C]; `mean`, `log_std` and samples `z` are [batch, latent].
"""

import math

import tensorflow as tf

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl_per_dimension(mean, log_std):
    """KL(N(mean, exp(log_std)²) ‖ N(0, 1)) of each latent -> the shape of mean.

    Closed form (Kingma & Welling 2014, appendix B), written with the log standard deviation:
    ½(mean² + exp(2·log_std) − 1) − log_std.
    """
    return 0.5 * (tf.square(mean) + tf.exp(2.0 * log_std) - 1.0) - log_std


def gaussian_kl(mean, log_std):
    """KL(N(mean, exp(log_std)²) ‖ N(0, I)) summed over latents -> [batch]."""
    return tf.reduce_sum(gaussian_kl_per_dimension(mean, log_std), axis=-1)


def standard_normal_log_density(z):
    """log N(z; 0, I) summed over the last axis -> z's shape without it."""
    return tf.reduce_sum(-0.5 * (LOG_2PI + tf.square(z)), axis=-1)


def _sum_pixels(values):
    return tf.reduce_sum(values, axis=[1, 2, 3])


def bernoulli(x, logits):
    """Bernoulli negative log-likelihood (binary cross-entropy) summed over pixels -> [batch]; x may be grey in [0, 1]."""
    return _sum_pixels(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits))


def squared_error(x, logits):
    """Σ (x − sigmoid(logits))² over pixels -> [batch] (a Gaussian likelihood of fixed variance, up to constants)."""
    return _sum_pixels(tf.square(x - tf.sigmoid(logits)))


def absolute_error(x, logits):
    """Σ |x − sigmoid(logits)| over pixels -> [batch] (a Laplace likelihood of fixed scale, up to constants)."""
    return _sum_pixels(tf.abs(x - tf.sigmoid(logits)))


RECONSTRUCTION_LOSSES = {"bernoulli": bernoulli, "squared_error": squared_error, "absolute_error": absolute_error}


# −log p(x|z) = the summed loss + this constant per pixel (nats). Squared error is a Gaussian of variance ½:
# −log N(x; μ, ½) = (x − μ)² + ½·log π; absolute error a Laplace of scale 1: −log L(x; μ, 1) = |x − μ| + log 2.
# Both are densities over real-valued pixels. Bernoulli's cross-entropy is a normalised likelihood for binary x.
NORMALISING_CONSTANTS = {"bernoulli": 0.0, "squared_error": 0.5 * math.log(math.pi), "absolute_error": math.log(2.0)}


def negative_log_likelihood(name, x, logits):
    """−log p(x|z) in nats -> [batch]: reconstruction loss `name` with its normalising constant."""
    pixels = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), x.dtype)
    return RECONSTRUCTION_LOSSES[name](x, logits) + NORMALISING_CONSTANTS[name] * pixels


def gaussian_log_density(z, mean, log_std):
    """log N(z; mean, exp(log_std)²) elementwise (broadcasting), in nats."""
    return -0.5 * (LOG_2PI + tf.square((z - mean) * tf.exp(-log_std))) - log_std


def log_importance_weights(batch_size, dataset_size, estimator):
    """log w[i, j] [B, B]: the weight of q(z_i | x_j) in the minibatch estimate log q(z_i) ≈ logsumexp_j (log q(z_i|x_j) + log w[i, j]).

    Chen et al. 2018 ("Isolating Sources of Disentanglement in VAEs"), appendix C, N the data-set size, B the batch:
    - "mws", minibatch-weighted sampling (C.1): every weight 1/(N·B).
    - "mss", minibatch-stratified sampling (C.2): 1/N on the sample's own x_i, (N − B + 1)/(N·(B − 1)) on one other
      (here x_{i+1 mod B}) and 1/(B − 1) on the rest; each row sums to one, so the estimate stays right both when the
      posteriors do not overlap (log q(z_i) ≈ log q(z_i|x_i) − log N) and when they all agree.
    - "batch": every weight 1/B, the batch taken as the whole data set (exact for its empirical aggregate posterior).
    """
    b = tf.cast(batch_size, tf.float64)
    n = tf.maximum(tf.cast(dataset_size, tf.float64), b)
    if estimator == "mws":
        return tf.fill([batch_size, batch_size], -tf.math.log(n * b))
    if estimator == "batch":
        return tf.fill([batch_size, batch_size], -tf.math.log(b))
    own = tf.eye(batch_size, dtype=tf.float64)
    following = tf.roll(own, shift=1, axis=1) * (1.0 - own)  # zero when B = 1: the sample is its own follower
    rest = tf.nn.relu(1.0 - own - following)
    weights = own / n + following * (n - b + 1.0) / (n * tf.maximum(b - 1.0, 1.0)) + rest / tf.maximum(b - 1.0, 1.0)
    return tf.math.log(weights)


def kl_decomposition(z, mean, log_std, log_weights, rows=None):
    """Index-code MI, total correlation and dimension-wise KL of a minibatch, each averaged over it (scalars, nats).

    Chen et al. 2018, eq. 2 (after Hoffman & Johnson 2016): E_x KL(q(z|x) ‖ p(z)) = I_q(x; z) + KL(q(z) ‖ Π_d q(z_d))
    + Σ_d KL(q(z_d) ‖ p(z_d)), each term estimated at samples z [B, D] of the posteriors N(mean, exp(log_std)²)
    [B, D], with q(z) and q(z_d) from `log_importance_weights` [B, B] (or a scalar: every weight alike). The three
    sum to the sampled E[log q(z|x) − log p(z)], whatever the weights. The estimate holds B × B × D densities:
    `rows` (eager only) takes them that many samples at a time, B × rows × D in memory (all B by default).
    """
    log_w = tf.cast(log_weights, z.dtype)
    if rows:
        blocks = [_log_densities(z[i:i + rows], mean[i:i + rows], log_std[i:i + rows], mean, log_std,
                                 log_w if log_w.shape.rank == 0 else log_w[i:i + rows])
                  for i in range(0, z.shape[0], rows)]
        log_densities = [tf.concat(column, axis=0) for column in zip(*blocks)]
    else:
        log_densities = _log_densities(z, mean, log_std, mean, log_std, log_w)
    log_q_given_x, log_q, log_q_marginals, log_p = log_densities
    return {"index_code_mi": tf.reduce_mean(log_q_given_x - log_q),
            "total_correlation": tf.reduce_mean(log_q - log_q_marginals),
            "dimension_wise_kl": tf.reduce_mean(log_q_marginals - log_p)}


def _log_densities(z, own_mean, own_log_std, mean, log_std, log_w):
    """For samples z [b, D] of their posteriors N(own_mean, exp(own_log_std)²) [b, D], against all B posteriors
    [B, D] weighted by log_w [b, B] (or a scalar): log q(z|x), log q(z), Σ_d log q(z_d) and log p(z), each [b]."""
    pairwise = gaussian_log_density(z[:, None, :], mean[None, :, :], log_std[None, :, :])  # [b (sample), B (x), D]
    log_w = tf.broadcast_to(log_w, tf.shape(pairwise)[:2])  # a scalar's [b, B], block by block: never B × B at once
    log_q_given_x = tf.reduce_sum(gaussian_log_density(z, own_mean, own_log_std), axis=1)
    log_q = tf.reduce_logsumexp(tf.reduce_sum(pairwise, axis=2) + log_w, axis=1)
    log_q_marginals = tf.reduce_sum(tf.reduce_logsumexp(pairwise + log_w[:, :, None], axis=1), axis=1)
    log_p = standard_normal_log_density(z)  # the prior N(0, I)
    return log_q_given_x, log_q, log_q_marginals, log_p


def covariance(x, weights=None):
    """Covariance over the batch of x [B, D] -> [D, D]: E[x xᵀ] − E[x] E[x]ᵀ (the population form), the rows
    weighted by `weights` [B] (summing to 1: a mixture's components) or, None, equally."""
    if weights is None:
        centred = x - tf.reduce_mean(x, axis=0, keepdims=True)
        return tf.matmul(centred, centred, transpose_a=True) / tf.cast(tf.shape(x)[0], x.dtype)
    centred = x - tf.reduce_sum(weights[:, None] * x, axis=0, keepdims=True)
    return tf.matmul(weights[:, None] * centred, centred, transpose_a=True)


def dip_penalty(cov, lambda_off_diagonal, lambda_diagonal):
    """DIP-VAE's regulariser (Kumar et al. 2018, eq. 6): λ_od·Σ_{i≠j} C_ij² + λ_d·Σ_i (C_ii − 1)² for C [D, D]."""
    diagonal = tf.linalg.diag_part(cov)
    off_diagonal = tf.reduce_sum(tf.square(cov)) - tf.reduce_sum(tf.square(diagonal))
    return lambda_off_diagonal * off_diagonal + lambda_diagonal * tf.reduce_sum(tf.square(diagonal - 1.0))


def _squared_distances(a, b):
    return tf.reduce_sum(tf.square(a[:, None, :] - b[None, :, :]), axis=2)


# Kernels on codes of dimension D, with the scale C = 2·D·σ² of a N(0, σ²I) prior, σ = 1 (Tolstikhin et al. 2018,
# "Wasserstein Auto-Encoders", §4): the RBF exp(−‖a − b‖²/C) and the inverse multiquadric C/(C + ‖a − b‖²).
MMD_KERNELS = {
    "rbf": lambda d2, c: tf.exp(-d2 / c),
    "imq": lambda d2, c: c / (c + d2),
}


def mmd(a, b, kernel):
    """Unbiased estimate of MMD²(P, Q) from samples a [n, D] ~ P and b [m, D] ~ Q, n, m ≥ 2 (Gretton et al. 2012, eq. 3):
    mean_{i≠j} k(a_i, a_j) + mean_{i≠j} k(b_i, b_j) − 2·mean_{i,j} k(a_i, b_j)."""
    k = MMD_KERNELS[kernel]
    c = 2.0 * tf.cast(tf.shape(a)[1], a.dtype)

    def mean_off_diagonal(x):
        n = tf.cast(tf.shape(x)[0], x.dtype)
        values = k(_squared_distances(x, x), c)
        return (tf.reduce_sum(values) - tf.reduce_sum(tf.linalg.diag_part(values))) / (n * (n - 1.0))

    return mean_off_diagonal(a) + mean_off_diagonal(b) - 2.0 * tf.reduce_mean(k(_squared_distances(a, b), c))


def importance_weighted_bound(log_weights):
    """The K-sample bound on log p(x) (Burda et al. 2016, eq. 8): log (1/K) Σ_k w_k from log w [K, B] -> [B]."""
    k = tf.cast(tf.shape(log_weights)[0], log_weights.dtype)
    return tf.reduce_logsumexp(log_weights, axis=0) - tf.math.log(k)
