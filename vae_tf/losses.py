"""The VAE's loss terms as pure functions, one value per example.

Shapes: images `x` and decoder `logits` are [batch, H, W, C]; `mean` and `log_std` are [batch, latent].
"""

import tensorflow as tf


def gaussian_kl(mean, log_std):
    """KL(N(mean, exp(log_std)²) ‖ N(0, I)) summed over latents -> [batch].

    Closed form (Kingma & Welling 2014, appendix B), written with the log standard deviation:
    Σ ½(mean² + exp(2·log_std) − 1) − log_std.
    """
    return tf.reduce_sum(0.5 * (tf.square(mean) + tf.exp(2.0 * log_std) - 1.0) - log_std, axis=-1)


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
