"""log_likelihood against exact numerical integration over a 1-D and a 2-D latent grid."""

import numpy as np
import pytest

import vae_tf
from vae_tf.likelihood import elbo, log_likelihood


def tiny_model(latent_size, reconstruction_loss="bernoulli"):
    """An MLP VAE on 4×4 images whose decoder depends strongly on z, so the integral is not trivial."""
    params = vae_tf.load_params(None, overrides=dict(image_size=4, encoder_layers=[[16]], decoder="deconv",
                                                     decoder_layers=[[16]], latent_size=latent_size,
                                                     reconstruction_loss=reconstruction_loss))
    model = vae_tf.build_model(params)
    model.decoder.set_weights([w * 1.5 for w in model.decoder.get_weights()])
    # The proposal q(z|x) = N(0.3, 1.5²) for every image: wider than the posterior, so importance sampling
    # converges, and unlike the prior, so log q − log p matters. (An untrained encoder is a poor proposal.)
    weights = [np.zeros_like(w) for w in model.encoder.get_weights()]
    weights[-3][:] = 0.3  # the mean layer's bias
    weights[-1][:] = np.log(1.5)  # the log_std layer's bias
    model.encoder.set_weights(weights)
    return model


def np_log_likelihood(x, logits, name):
    """log p(x|z) for each grid point: x [n, P], logits [G, P] -> [G, n], written out in NumPy."""
    x, logits = x[None], logits[:, None]
    if name == "bernoulli":
        return -(np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))).sum(-1)
    mu = 1 / (1 + np.exp(-logits))
    if name == "squared_error":  # N(x; μ, ½)
        return (-(x - mu) ** 2 - 0.5 * np.log(np.pi)).sum(-1)
    return (-np.abs(x - mu) - np.log(2.0)).sum(-1)  # Laplace(x; μ, 1)


def exact_log_likelihood(model, images, name, half_width=7.0, points=(4001, 301)):
    """log ∫ p(x|z) N(z; 0, I) dz by the rectangle rule on a grid wide enough that the tails do not matter."""
    d = model.latent_size
    axis = np.linspace(-half_width, half_width, points[d - 1])
    grid = np.stack(np.meshgrid(*[axis] * d, indexing="ij"), -1).reshape(-1, d)
    logits = model.decoder(grid.astype(np.float32)).numpy().reshape(len(grid), -1).astype(np.float64)
    log_prior = (-0.5 * np.log(2 * np.pi) - 0.5 * grid ** 2).sum(1)
    joint = np_log_likelihood(images.reshape(len(images), -1).astype(np.float64), logits, name) + log_prior[:, None]
    top = joint.max(0)
    return top + np.log(np.exp(joint - top).sum(0) * (axis[1] - axis[0]) ** d)


@pytest.mark.parametrize("latent_size, name", [(1, "bernoulli"), (2, "bernoulli"), (1, "squared_error"),
                                               (1, "absolute_error")])
def test_the_estimate_matches_numerical_integration(latent_size, name):
    rng = np.random.default_rng(0)
    model = tiny_model(latent_size, name)
    images = (rng.random((4, 4, 4, 1)) > 0.5).astype(np.float32)
    if name != "bernoulli":
        images = rng.random((4, 4, 4, 1)).astype(np.float32)
    exact = exact_log_likelihood(model, images, name)
    estimate = log_likelihood(model, images, num_samples=5000)
    np.testing.assert_allclose(estimate, exact, atol=0.05)  # nats, at K = 5000


def test_the_bound_rises_with_k_towards_the_exact_value_and_stays_above_the_elbo():
    rng = np.random.default_rng(0)
    model = tiny_model(2)
    images = (rng.random((16, 4, 4, 1)) > 0.5).astype(np.float32)
    exact = exact_log_likelihood(model, images, "bernoulli")
    gaps = [np.mean(exact - log_likelihood(model, images, num_samples=k, seed=s)) for k in (1, 10, 1000) for s in (1,)]
    assert gaps[0] > gaps[1] > gaps[2] > -0.02 and gaps[2] < 0.05  # below log p(x) on average, closing in
    lower = elbo(model, images, num_samples=200)
    assert np.mean(log_likelihood(model, images, num_samples=200)) > np.mean(lower)
    assert np.mean(lower) < np.mean(exact)


def test_chunking_does_not_change_the_estimate_and_bad_input_is_one_line():
    rng = np.random.default_rng(0)
    model = tiny_model(2)
    images = (rng.random((5, 4, 4, 1)) > 0.5).astype(np.float32)
    whole = log_likelihood(model, images, num_samples=997)  # not a multiple of any chunk
    chunked = log_likelihood(model, images, num_samples=997, batch_size=300)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)
    with pytest.raises(vae_tf.UserError, match="images must be"):
        log_likelihood(model, images[:, :2])
    with pytest.raises(vae_tf.UserError, match="num_samples"):
        log_likelihood(model, images, num_samples=0)


@pytest.mark.parametrize("preset, overrides, widest", [
    # The spatial broadcast decoder's 32 maps of 64×64 per row: the 256 rows the 64×64 runs were measured at.
    (None, dict(image_size=64, decoder="broadcast", decoder_layers=[[32, 1, 1]] * 3), 32 * 64 * 64),
    # An MLP of 300 units to 28×28 logits: its output is the widest tensor.
    (None, dict(image_size=28, encoder_layers=[[300]], decoder="deconv", decoder_layers=[[300]]), 28 * 28),
    # A VampPrior of 1,000 pseudo-inputs on that MLP: 1,000 float64 distances per row outweigh its 784 logits.
    (None, dict(image_size=28, encoder_layers=[[300]], decoder="deconv", decoder_layers=[[300]], prior="vamp",
                prior_components=1000, objective="beta_vae"), 2 * 1000),
    # M2 with a conv encoder and an MLP decoder: each row carries the encoder's 64 maps of 14×14 beside its class's
    # one-hot (10), far wider than the decoder's.
    ("fashion_mnist_m2", dict(encoder_layers=[[64, 4, 2], [500]], decoder_layers=[[500]]), 64 * 14 * 14 + 10)])
def test_the_default_rows_per_call_keep_the_widest_tensor_of_a_call_bounded(preset, overrides, widest):
    """The default chunk is as many rows as fit WIDEST_TENSOR floats in the call's widest tensor (written out here
    from each architecture), whatever num_samples is: the 64×64 conv decoders stay at the rows measured safe, the
    MLPs get calls large enough to keep the cores busy."""
    from vae_tf.likelihood import WIDEST_TENSOR, _checked

    model = vae_tf.build_model(vae_tf.load_params(None, preset=preset, overrides=overrides),
                               image_shape=(28, 28, 1) if preset else None)
    images = np.zeros((1, *model.image_shape), np.float32)
    assert _checked(model, images, 5000, None)[1] == WIDEST_TENSOR // widest
    assert _checked(model, images, 5000, 300)[1] == 300


def test_a_learned_prior_is_read_afresh_at_every_call():
    """The prior's components enter the compiled calls as arguments: after the prior's weights change, the same
    compiled function gives what a freshly traced one gives, not the old prior's figures."""
    rng = np.random.default_rng(0)
    from vae_tf import likelihood

    params = vae_tf.load_params(None, overrides=dict(image_size=4, encoder_layers=[[16]], decoder="deconv",
                                                     decoder_layers=[[16]], latent_size=2, prior="vamp",
                                                     prior_components=3, objective="beta_vae"))
    model = vae_tf.build_model(params)
    images = (rng.random((3, 4, 4, 1)) > 0.5).astype(np.float32)
    before = log_likelihood(model, images, num_samples=50)
    model.prior.pseudo_inputs.assign(rng.random(model.prior.pseudo_inputs.shape))
    after = log_likelihood(model, images, num_samples=50)
    likelihood._COMPILED.pop(model)
    np.testing.assert_allclose(after, log_likelihood(model, images, num_samples=50), rtol=1e-6)
    assert np.abs(after - before).max() > 0.01
