"""The semi-amortized VAE (Kim et al. 2018, "Semi-Amortized Variational Autoencoders"), `params.svi_steps`.

The encoder gives each image's posterior parameters λ_0 = (mean, log σ²); K steps of stochastic variational
inference (SVI) then improve them on the image's own negative ELBO, and the model uses λ_K: its loss is the ELBO at
λ_K, differentiated through the K steps, so the encoder learns where SVI should start and the decoder is trained on
posteriors closer to its own (their Algorithm 1, the SA-VAE of their tables). The steps are their code's
(`optim_n2n.py`): gradient descent with momentum 0.5 on the batch's mean loss, on the means and the log variances,
one fresh sample of z per step. Where their code takes the second-order terms by finite differences, TensorFlow's
nested tapes give them exactly.

One departure, so that an image's refined posterior does not depend on the images encoded beside it (the
likelihood encodes one image at a time, the analysis hundreds): the mean is over the training batch's size, a
constant, whatever the number of images refined, and each image's gradient is clipped on its own, to norm
5/√batch_size, where theirs clips the whole batch's to 5 (the same when the images' gradients are alike). The
gradient the training step carries back through the steps is clipped at each λ_k as their backward pass clips it, the
mean's and the log variance's together (the steps clip each on its own, as their forward pass), each image's to
5/√batch_size; and each step's second-order share of the decoder's gradient (what reaches its weights through that
step's gradient) is clipped to a global norm of 5 before the shares are summed, as theirs (the batch's, a shared
quantity).

The steps are unrolled when the training step is traced: K copies of the decoder's forward and backward pass.
"""

import math

import keras
import tensorflow as tf

MOMENTUM = 0.5  # Kim et al.'s --momentum
MAX_GRADIENT_NORM = 5.0  # their --svi_max_grad_norm, for a batch's gradient and each step's share of the decoder's
# Folded into a step's stateless seed for the SVI draws: any constant other than the small indices that fold the
# training sample's seed (its categoricals fold 1, 2, ...) gives draws apart from it.
NOISE_STREAM = 7919


def refine(loss, mean, log_variance, noise, learning_rate, batch_size, weights=()):
    """(mean_K, log_variance_K, the loss at λ_0 [B]): K = len(noise) SVI steps from (mean, log_variance) [B, D] each
    on `loss`(mean, log_variance, noise_k) -> [B], each image's negative ELBO at the draw noise_k ([B, D], or
    [1, D] for one draw shared by every image). Each step descends Σ_i loss_i / `batch_size`. Under an outer
    GradientTape the result stays differentiable with respect to the starting point and whatever `loss` reads;
    the share of it that reaches the Keras variables `weights` (the decoder's) through one step is clipped to a
    global norm over all of `weights` of MAX_GRADIENT_NORM, step by step."""
    parameters = [mean, log_variance]
    velocity = [tf.zeros_like(mean), tf.zeros_like(log_variance)]
    clip = MAX_GRADIENT_NORM / math.sqrt(batch_size)
    losses = []
    for noise_k in tf.unstack(noise):  # a Python list: the loop is unrolled when traced
        parameters = _clipped_backward(*parameters, clip)
        # The step reads `weights` as values whose gradient is clipped: its own second-order share, on its own.
        with keras.StatelessScope(state_mapping=list(zip(weights, _clipped_share(weights)))) as scope, \
                tf.GradientTape() as tape:
            tape.watch(parameters)
            losses.append(loss(*parameters, noise_k))
            total = tf.reduce_sum(losses[-1]) / batch_size
        if len(scope.state_mapping) > len(weights):  # the scope keeps what a layer assigned, and drops it on exit
            raise ValueError("SVI's steps read the decoder in a keras.StatelessScope, which would drop the state its "
                             "layers update (batch normalisation's statistics, a dropout's seed)")
        gradients = tape.gradient(total, parameters)
        gradients = [tf.clip_by_norm(g, clip, axes=[1]) for g in gradients]
        velocity = [MOMENTUM * v - g for v, g in zip(velocity, gradients)]
        parameters = [p + learning_rate * v for p, v in zip(parameters, velocity)]
    return parameters[0], parameters[1], losses[0]


def _clipped_backward(mean, log_variance, most):
    """(mean, log_variance) unchanged [B, D] each, whose gradient is clipped, each image's (mean and log variance
    together) to norm `most`: Kim et al.'s backward pass through the steps clips what it carries back to each λ_k (to
    5, the whole batch's; each image's to 5/√batch_size here, as the steps' own)."""
    @tf.custom_gradient
    def identity(mean, log_variance):
        def backward(d_mean, d_log_variance):
            norm = tf.norm(tf.concat([d_mean, d_log_variance], 1), axis=1, keepdims=True)
            scale = tf.minimum(tf.ones_like(norm), most / norm)  # a zero gradient: most / 0 = inf, scale 1
            return d_mean * scale, d_log_variance * scale
        return [tf.identity(mean), tf.identity(log_variance)], backward
    return identity(mean, log_variance)


def _clipped_share(weights):
    """The values of the variables `weights`, unchanged, whose gradient is clipped to a global norm of
    MAX_GRADIENT_NORM: Kim et al.'s backward pass clips each step's Hessian-vector product with the decoder's
    parameters so (`clip_grad_norm(H_wx_v_list, max_grad_norm)`)."""
    if not weights:
        return []

    @tf.custom_gradient
    def identity(*values):
        def backward(*gradients):
            return tf.clip_by_global_norm(gradients, MAX_GRADIENT_NORM)[0]
        return [tf.identity(value) for value in values], backward
    return identity(*[weight.value for weight in weights])


def step_noise(seed, steps, shape):
    """Standard normal noise [steps, *shape] (shape a 1-D tensor or list) for the SVI steps of the stateless `seed`."""
    return tf.random.stateless_normal(tf.concat([[steps], shape], 0),
                                      tf.random.experimental.stateless_fold_in(seed, NOISE_STREAM))
