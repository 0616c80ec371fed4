"""The semi-amortized VAE (Kim et al. 2018, "Semi-Amortized Variational Autoencoders"), `params.svi_steps`.

The encoder gives each image's posterior parameters λ_0 = (mean, log_std); K steps of stochastic variational
inference (SVI) then improve them on the image's own ELBO, and the model uses λ_K: its loss is the ELBO at λ_K,
differentiated through the K steps, so the encoder learns where SVI should start and the decoder is trained on
posteriors closer to its own (their Algorithm 1, the SA-VAE of their tables). The steps are their code's
(`optim_n2n.py`): gradient descent with momentum 0.5 on the batch's mean loss, each step's gradient of the means and
of the log standard deviations clipped to norm 5, one fresh sample of z per step. Where their code takes the
second-order terms by finite differences, TensorFlow's nested tapes give them exactly. The parameters are vae_tf's
(mean, log σ) where theirs are (mean, log σ²).

The steps are unrolled when the training step is traced: K copies of the decoder's forward and backward pass.
"""

import tensorflow as tf

MOMENTUM = 0.5  # Kim et al.'s --momentum
MAX_GRADIENT_NORM = 5.0  # their --svi_max_grad_norm
NOISE_STREAM = 7919  # folded into a step's seed for the SVI draws, apart from the training sample's


def refine(loss, mean, log_std, noise, learning_rate):
    """(mean_K, log_std_K, loss at λ_0): K = len(noise) SVI steps from (mean, log_std) [B, D] each on `loss`(mean,
    log_std, noise_k [B, D]), a scalar (the batch's mean negative ELBO). Under an outer GradientTape the result
    stays differentiable with respect to the starting point and whatever `loss` reads (second order)."""
    parameters, velocity, first = [mean, log_std], [tf.zeros_like(mean), tf.zeros_like(log_std)], None
    for noise_k in tf.unstack(noise):  # a Python loop: unrolled when traced
        with tf.GradientTape() as tape:
            tape.watch(parameters)
            value = loss(*parameters, noise_k)
        gradients = [tf.clip_by_norm(g, MAX_GRADIENT_NORM) for g in tape.gradient(value, parameters)]
        velocity = [MOMENTUM * v - g for v, g in zip(velocity, gradients)]
        parameters = [p + learning_rate * v for p, v in zip(parameters, velocity)]
        first = value if first is None else first
    return parameters[0], parameters[1], first


def step_noise(seed, steps, shape):
    """Standard normal noise [steps, *shape] (shape a 1-D tensor) for the SVI steps of a training step whose stateless `seed` is given."""
    return tf.random.stateless_normal(tf.concat([[steps], shape], 0),
                                      tf.random.experimental.stateless_fold_in(seed, NOISE_STREAM))
