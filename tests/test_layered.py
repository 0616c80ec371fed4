"""Models of several stochastic layers (Burda et al.'s hierarchical VAE, the Ladder VAE): the Gaussian maths against
NumPy, the Ladder's training loss against its equations written out in NumPy, log p(x) against numerical integration
over two 1-D layers, decoding that regenerates the layers below, real runs that resume exactly, reload and analyse,
and bad input."""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import vae_tf
from vae_tf.analysis.model_figures import COLUMNS, LAYER_ROWS, layer_traversal_codes
from vae_tf.cli import analyze_main, train_main
from vae_tf.likelihood import log_likelihood
from vae_tf.models.layered import gaussian_kl_between, merge

from conftest import (ROOT, assert_resumed_as_straight, assert_train_refuses, bernoulli_log_likelihood, np_log_normal,
                      np_logsumexp, tiny_args)


def test_the_kl_between_gaussians_and_the_ladder_s_merge_against_numpy():
    rng = np.random.default_rng(0)
    mean, log_std, prior_mean, prior_log_std = (rng.normal(size=(6, 3)) * 0.7 for _ in range(4))
    grid = np.linspace(-15, 15, 30001)[:, None, None]
    q = np.exp(np_log_normal(grid, mean, log_std))
    integral = (q * (np_log_normal(grid, mean, log_std) - np_log_normal(grid, prior_mean, prior_log_std))).sum(0) * 1e-3
    np.testing.assert_allclose(gaussian_kl_between(mean, log_std, prior_mean, prior_log_std).numpy(), integral,
                               rtol=1e-4, atol=1e-6)
    # The merge is the normalised product of the two densities (Sønderby et al. eq. 18-19).
    product = np_log_normal(grid, mean, log_std) + np_log_normal(grid, prior_mean, prior_log_std)
    weights = np.exp(product - product.max(0))
    weights /= weights.sum(0)
    merged_mean, merged_log_std = (t.numpy() for t in merge(mean, log_std, prior_mean, prior_log_std))
    np.testing.assert_allclose(merged_mean, (weights * grid).sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.exp(merged_log_std), np.sqrt((weights * (grid - merged_mean) ** 2).sum(0)),
                               rtol=1e-4)


def tiny_model(model, objective="beta_vae", prior="normal", components=3, **overrides):
    """A model on 4×4 images with z_1 and z_2 of one dimension each, wide posteriors, and a decoder and a prior
    p(z_1|z_2) that depend strongly on their input; z_2 under `prior` of `components`."""
    params = vae_tf.load_params(None, overrides={**dict(
        model=model, image_size=4, encoder_layers=[[16]], decoder="deconv", decoder_layers=[[16]], latent_size=1,
        upper_latent_sizes=[1], upper_layer_units=8, objective=objective, beta=1.0, prior=prior,
        prior_components=components), **overrides})
    built = vae_tf.build_model(params)
    built.decoder.set_weights([w * 1.5 for w in built.decoder.get_weights()])
    for network in [built.encoder, *built.up, *built.down]:
        for layer in network.layers:
            if layer.name.startswith("log_std"):  # wide posteriors, so that K = 5000 converges
                layer.set_weights([np.zeros_like(w) if w.ndim == 2 else np.full_like(w, np.log(1.3))
                                   for w in layer.get_weights()])
    down = built.down[0]
    down.get_layer("mean").set_weights([w * 3.0 for w in down.get_layer("mean").get_weights()])
    return built


def np_log_prior(model, z):
    """log p(z_2) at points z [G] in NumPy: N(0, 1), or the mixture (1/K) Σ_k N(z; μ_k, σ_k²) of the learned prior's
    components (the VampPrior's: the top layer's posteriors of its pseudo-inputs)."""
    if model.params.prior == "normal":
        return np_log_normal(z, 0, 0)
    means, log_stds = (t.numpy()[:, 0].astype(np.float64) for t in model.top_prior.components())
    per_component = np_log_normal(z[:, None], means[None], log_stds[None])  # [G, K]
    top = per_component.max(1)
    return top + np.log(np.exp(per_component - top[:, None]).mean(1))


def exact_log_likelihood(model, images, half_width=9.0, points=401):
    """log ∫∫ p(x|z_1) p(z_1|z_2) p(z_2) dz_1 dz_2 over a 2-D grid by the rectangle rule; the networks give the
    decoder's logits, p(z_1|z_2)'s mean and log std at the grid's points and a learned p(z_2)'s components, NumPy the
    densities."""
    axis = np.linspace(-half_width, half_width, points)
    log_likelihood = bernoulli_log_likelihood(images, model.decoder(axis[:, None].astype(np.float32)).numpy().reshape(
        points, -1))  # [z_1, n]
    prior_mean, prior_log_std = (t.numpy()[:, 0].astype(np.float64) for t in model.prior(0, axis[:, None]))  # [z_2]
    log_p_z1 = np_log_normal(axis[:, None], prior_mean[None], prior_log_std[None])  # [z_1, z_2]
    joint = log_likelihood[:, None, :] + log_p_z1[:, :, None] + np_log_prior(model, axis)[None, :, None]
    top = joint.max((0, 1))
    return top + np.log(np.exp(joint - top).sum((0, 1)) * (axis[1] - axis[0]) ** 2)


@pytest.mark.parametrize("model, prior, jit_compile", [
    ("hierarchical", "normal", False), ("ladder", "normal", False), ("hierarchical", "vamp", False),
    ("ladder", "mog", False), ("hierarchical", "vamp", True)])  # a run trained with XLA is evaluated with it
def test_log_likelihood_matches_numerical_integration_over_both_layers(model, prior, jit_compile):
    rng = np.random.default_rng(0)
    built = tiny_model(model, prior=prior, jit_compile=jit_compile)
    if prior == "mog":  # components apart, so that the mixture is far from one Gaussian
        built.top_prior.set_weights([np.array([[-2.5], [0.0], [2.5]]), np.full((3, 1), np.log(0.6))])
    images = (rng.random((4, 4, 4, 1)) > 0.5).astype(np.float32)
    # q(z_2|z_1) proposes z_2 from a draw of z_1, a poorer proposal than one Gaussian, its weights heavy-tailed: at
    # K = 50,000 the estimate strayed up to 0.052 nats from the integral over four seeds of its noise, at K = 200,000
    # (half a second) 0.014.
    np.testing.assert_allclose(log_likelihood(built, images, num_samples=200000), exact_log_likelihood(built, images),
                               atol=0.05)


@pytest.mark.parametrize("model", ["hierarchical", "ladder"])
def test_a_one_component_mixture_on_the_top_layer_starts_as_the_standard_normal(model):
    """The same weights under N(0, I) and under a fresh one-component mixture on z_2: the same log p(x), and the
    hierarchical model's training loss (the Ladder's top KL is in closed form under N(0, I), a one-sample estimate
    under a mixture), to rounding."""
    rng = np.random.default_rng(0)
    images = (rng.random((6, 4, 4, 1)) > 0.5).astype(np.float32)
    normal, mixture = tiny_model(model), tiny_model(model, prior="mog", components=1)
    assert [w.tolist() for w in mixture.top_prior.get_weights()] == [[[0.0]], [[0.0]]]
    for theirs, mine in zip([normal.encoder, *normal.up, *normal.down, normal.decoder],
                            [mixture.encoder, *mixture.up, *mixture.down, mixture.decoder]):
        mine.set_weights(theirs.get_weights())
    np.testing.assert_allclose(log_likelihood(mixture, images, num_samples=300),
                               log_likelihood(normal, images, num_samples=300), rtol=1e-6)
    step = tf.constant(0, tf.int64)
    if model == "hierarchical":
        assert float(mixture.forward(images, step, 0)[0]["loss"]) == pytest.approx(
        float(normal.forward(images, step, 0)[0]["loss"]), rel=1e-5)


@pytest.mark.parametrize("model", ["hierarchical", "ladder"])
def test_the_vampprior_of_the_top_layer_mixes_the_top_posteriors_of_its_pseudo_inputs(model):
    """Its components are q(z_2|u_k) along the mean path (the walk's top Gaussian of each clipped pseudo-input, in
    inference mode); along that path the top layer's KL is its KL to N(0, 1) plus the rest, E_q[log N(z) − log p(z)],
    at one draw of a fixed seed."""
    rng = np.random.default_rng(0)
    built = tiny_model(model, prior="vamp", components=4)
    built.top_prior.pseudo_inputs.assign(rng.normal(0.5, 0.6, (4, 4, 4, 1)))
    pseudo_inputs = np.clip(built.top_prior.pseudo_inputs.numpy(), 0, 1)
    zeros = [np.zeros((4, 1), np.float32)] * 2
    *_, path = built.walk(built.encoder_posterior(pseudo_inputs), zeros, with_path=True)
    for component, expected in zip(built.top_prior.components(), path[-1]):
        np.testing.assert_allclose(component.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    x = (rng.random((5, 4, 4, 1)) > 0.5).astype(np.float32)
    *_, path = built.walk(built.encoder_posterior(x), [np.zeros((5, 1), np.float32)] * 2, with_path=True)
    mean, log_std = (t.numpy().astype(np.float64) for t in path[-1])
    z = mean + np.exp(log_std) * tf.random.stateless_normal([5, 1], seed=[built.params.seed, 1]).numpy()
    means, log_stds = (t.numpy().astype(np.float64) for t in built.top_prior.components())
    log_p = np.log(np.exp(np_log_normal(z, means[:, 0], log_stds[:, 0])).mean(1))  # [5]
    kl_to_normal = (0.5 * (mean ** 2 + np.exp(2 * log_std) - 1) - log_std)[:, 0]
    estimate = kl_to_normal + np_log_normal(z, 0, 0)[:, 0] - log_p  # KL(q ‖ N) + the one-draw E_q[log N − log p]
    np.testing.assert_allclose(built.code_posterior(x)[3].numpy()[:, 1], estimate, rtol=1e-4, atol=1e-5)


def test_the_ladder_s_training_loss_is_its_equations_in_numpy():
    """Reconstruction at z_1 plus each layer's KL in closed form given the layer above: q(z_2|x) the bottom-up
    Gaussian, q(z_1|x, z_2) its merge with p(z_1|z_2), the posterior's own draw z_2 passed down."""
    rng = np.random.default_rng(0)
    model = tiny_model("ladder")
    x = (rng.random((5, 4, 4, 1)) > 0.5).astype(np.float32)
    step = tf.constant(0, tf.int64)
    figures, _ = model.forward(tf.constant(x), step, stream=0)
    bottom_up = [t.numpy().astype(np.float64) for t in model.encoder_posterior(x, training=True)]
    seed = vae_tf.objectives.stream_seed(model.params.seed, step, 0)
    noise = [tf.random.stateless_normal([5, 1], seed=tf.random.experimental.stateless_fold_in(seed, level)).numpy()
             for level in range(2)]
    mean_2, std_2 = bottom_up[2], np.exp(bottom_up[3])
    z_2 = mean_2 + std_2 * noise[1]
    prior_mean, prior_log_std = (t.numpy().astype(np.float64) for t in model.prior(0, z_2.astype(np.float32),
                                                                                 training=True))
    precision, prior_precision = np.exp(-2 * bottom_up[1]), np.exp(-2 * prior_log_std)
    variance = 1 / (precision + prior_precision)
    mean_1 = (bottom_up[0] * precision + prior_mean * prior_precision) * variance
    z_1 = mean_1 + np.sqrt(variance) * noise[0]
    logits = model.decoder(z_1.astype(np.float32), training=True).numpy().reshape(5, -1).astype(np.float64)
    flat = x.reshape(5, -1)
    reconstruction = (np.maximum(logits, 0) - logits * flat + np.log1p(np.exp(-np.abs(logits)))).sum(1).mean()
    kl_2 = (0.5 * (mean_2 ** 2 + std_2 ** 2 - 1) - np.log(std_2)).sum(1).mean()
    kl_1 = (prior_log_std - 0.5 * np.log(variance) + 0.5 * (variance + (mean_1 - prior_mean) ** 2)
            / np.exp(2 * prior_log_std) - 0.5).sum(1).mean()
    assert float(figures["kl_layer1"]) == pytest.approx(kl_1, rel=1e-4)
    assert float(figures["kl_layer2"]) == pytest.approx(kl_2, rel=1e-4)
    assert float(figures["loss"]) == pytest.approx(reconstruction + kl_1 + kl_2, rel=1e-4)


@pytest.mark.parametrize("objective, overrides, weight", [
    ("beta_vae", {}, 1.0), ("beta_vae", dict(beta=3.0), 3.0),
    ("beta_vae", dict(kl_schedule="linear", kl_start_step=0, kl_end_step=10, kl_start_value=0.25), 0.25),  # step 0
    ("iwae", {}, None)])
def test_the_hierarchical_model_s_training_loss_is_its_equations_in_numpy(objective, overrides, weight):
    """Burda et al.'s two-layer model at K draws of each layer (K = 1 for the ELBO): z_1 ~ q(z_1|x), z_2 ~ q(z_2|z_1),
    log w = log p(x|z_1) + log p(z_1|z_2) + log N(z_2; 0, I) − log q(z_1|x) − log q(z_2|z_1); the ELBO's loss is the
    mean reconstruction plus the KL weight (β, or the schedule's) times the layers' KLs, each the mean of its own log
    ratio; IWAE's is −mean_x log (1/K) Σ_k w."""
    rng = np.random.default_rng(0)
    model = tiny_model("hierarchical", objective=objective, **overrides)
    # σ that depends on the layer's input (tiny_model's are constant), q(z_2|z_1)'s under the floor for some draws
    for network, bias in ((model.up[0], -7.5), (model.down[0], 0.0)):
        kernel = network.get_layer("log_std").get_weights()[0]
        network.get_layer("log_std").set_weights([rng.normal(0, 3.0, kernel.shape), np.full(1, bias)])
    k = model.params.iwae_samples if objective == "iwae" else 1
    x = (rng.random((5, 4, 4, 1)) > 0.5).astype(np.float32)
    step = tf.constant(0, tf.int64)
    figures, _ = model.forward(tf.constant(x), step, stream=0)
    seed = vae_tf.objectives.stream_seed(model.params.seed, step, 0)
    noise = [tf.random.stateless_normal([k * 5, 1], seed=tf.random.experimental.stateless_fold_in(seed, level))
             .numpy().astype(np.float64) for level in range(2)]  # sample-major: row j is image j mod 5
    mean_1, log_std_1 = (np.tile(t.numpy().astype(np.float64), (k, 1)) for t in model.encoder(x))
    z_1 = mean_1 + np.exp(log_std_1) * noise[0]
    _, mean_2, log_std_2 = (t.numpy().astype(np.float64) for t in model.up[0](z_1.astype(np.float32)))
    assert (log_std_2 < -7.0).any() and (log_std_2 > -7.0).any()
    log_std_2 = np.maximum(log_std_2, -7.0)  # the layers' floor on log σ
    z_2 = mean_2 + np.exp(log_std_2) * noise[1]
    _, prior_mean, prior_log_std = (t.numpy().astype(np.float64) for t in model.down[0](z_2.astype(np.float32)))
    prior_log_std = np.maximum(prior_log_std, -7.0)
    logits = model.decoder(z_1.astype(np.float32)).numpy().reshape(k * 5, -1).astype(np.float64)
    flat = np.tile(x.reshape(5, -1), (k, 1)).astype(np.float64)
    log_p_x = -(np.maximum(logits, 0) - logits * flat + np.log1p(np.exp(-np.abs(logits)))).sum(1)  # [k·5]
    ratio_1 = (np_log_normal(z_1, mean_1, log_std_1) - np_log_normal(z_1, prior_mean, prior_log_std)).sum(1)
    ratio_2 = (np_log_normal(z_2, mean_2, log_std_2) - np_log_normal(z_2, 0, 0)).sum(1)
    if objective == "iwae":
        log_w = (log_p_x - ratio_1 - ratio_2).reshape(k, 5)
        bound = (np_logsumexp(log_w, axis=0) - np.log(k)).mean()
        assert float(figures["iwae_bound"]) == pytest.approx(bound, rel=1e-4)
        assert float(figures["loss"]) == pytest.approx(-bound, rel=1e-4)
    else:
        assert float(figures["loss"]) == pytest.approx(-log_p_x.mean() + weight * (ratio_1 + ratio_2).mean(), rel=1e-4)
    assert float(figures["kl_layer1"]) == pytest.approx(ratio_1.mean(), rel=1e-4)
    assert float(figures["kl_layer2"]) == pytest.approx(ratio_2.mean(), rel=1e-4)


def test_a_code_holds_what_each_layer_adds_and_decoding_rebuilds_the_layers_below():
    rng = np.random.default_rng(0)
    model = tiny_model("ladder")
    x = (rng.random((3, 4, 4, 1)) > 0.5).astype(np.float32)
    _, _, _, _, path = model.walk(model.encoder_posterior(x), [np.zeros((3, 1), np.float32)] * 2, with_path=True)
    z_1, z_2 = (mean.numpy() for mean, _ in path)  # the mean path
    code = model.represent(x).numpy()
    np.testing.assert_allclose(code, np.concatenate([z_1 - model.prior(0, z_2)[0].numpy(), z_2], 1), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(model.bottom_layer(code).numpy(), z_1, rtol=1e-5, atol=1e-5)
    moved = code.copy()
    moved[:, 1] += 1.0  # z_2 moved: z_1 follows its prior's mean
    shift = model.prior(0, z_2 + 1.0)[0].numpy() - model.prior(0, z_2)[0].numpy()
    np.testing.assert_allclose(model.bottom_layer(moved).numpy(), z_1 + shift, rtol=1e-5, atol=1e-5)
    assert np.all(np.abs(shift) > 1e-3)


def test_validation_evaluates_the_ladder_without_touching_its_batch_norm_statistics():
    """Training updates the moving statistics; validation (`loss_terms`) reads them and leaves them as they are, and
    gives what the networks in inference mode give."""
    rng = np.random.default_rng(0)
    model = tiny_model("ladder")
    x = tf.constant((rng.random((8, 4, 4, 1)) > 0.5).astype(np.float32))
    statistics = [v for v in model.non_trainable_variables if "moving" in v.path]
    before = [v.numpy().copy() for v in statistics]
    model.forward(x, tf.constant(0, tf.int64), stream=0)
    trained = [v.numpy().copy() for v in statistics]
    assert any(not np.array_equal(a, b) for a, b in zip(before, trained))
    figures = model.loss_terms(x, tf.constant(0, tf.int64), stream=1)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(trained, statistics))
    assert float(figures["loss"]) == pytest.approx(float(model.forward(x, tf.constant(0, tf.int64), 1,
                                                                       training=False)[0]["loss"]), rel=1e-6)


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("model, objective, prior", [("ladder", "beta_vae", "normal"), ("hierarchical", "iwae", "normal"),
                                                    ("ladder", "beta_vae", "vamp")])
def test_layered_runs_train_resume_exactly_reload_and_analyse(tmp_path, capsys, monkeypatch, model, objective, prior):
    rng = np.random.default_rng(0)
    monkeypatch.chdir(ROOT)
    common = [f"--output_dir={tmp_path}", *tiny_args(num_steps=12, model=model, upper_latent_sizes=[3],
                                                     upper_layer_units=16, objective=objective, beta=1.0, prior=prior,
                                                     prior_components=5)]
    assert train_main([*common, "--run_name=straight"]) == 0
    printed = capsys.readouterr().out
    assert "z_1 of 4, z_2 of 3" in printed
    assert ("on z_2, a VampPrior of 5 learned pseudo-inputs" in printed) == (prior == "vamp")
    assert {("ladder", "normal"): "(KL per layer: in closed form given the draw above)",
            ("ladder", "vamp"): "(KL per layer: in closed form given the draw above; z_2's a one-sample estimate)",
            ("hierarchical", "normal"): "(KL per layer: one-sample estimates at the draws)"}[model, prior] in printed
    assert train_main([*common, "--run_name=resumed", "--num_steps=6"]) == 0
    assert train_main([*common, "--run_name=resumed"]) == 0
    straight = rows(tmp_path / "straight" / "log.csv")
    assert_resumed_as_straight(tmp_path / "resumed", tmp_path / "straight")
    for r in straight:
        assert float(r["kl_loss"]) == pytest.approx(float(r["kl_layer1"]) + float(r["kl_layer2"]), rel=1e-5)
    assert float(straight[-1]["loss"]) < float(straight[0]["loss"])
    latents = rows(tmp_path / "straight" / "latents.csv")
    assert len(latents[0]) == 4 + 2 * 7 + 2 * 2 + 1  # every layer's dimensions, then each layer's two totals
    # latents.csv's and TensorBoard's per-layer figures sum each layer's dimensions, z_1's first.
    events = EventAccumulator(str(tmp_path / "straight" / "logs"), size_guidance={"tensors": 0})
    events.Reload()
    for layer, dimensions in (("z1", range(4)), ("z2", range(4, 7))):
        for name, column in (("kl", "kl_{}"), ("active_units", "active_{}")):
            sums = [(int(r["step"]), pytest.approx(sum(float(r[column.format(d)]) for d in dimensions), rel=1e-5))
                    for r in latents]
            assert [(int(r["step"]), float(r[f"{name}_{layer}"])) for r in latents] == sums, (name, layer)
            logged = [(e.step, float(tf.make_ndarray(e.tensor_proto)))
                      for e in events.Tensors(f"latents/{name}_{layer}")]
            assert logged == sums, (name, layer)
    images = rng.random((8, 16, 16, 1)).astype(np.float32)
    reloaded, trained = vae_tf.load_run(tmp_path / "resumed"), vae_tf.load_run(tmp_path / "straight")
    np.testing.assert_allclose(reloaded.represent(images), trained.represent(images), rtol=1e-4, atol=1e-5)
    # The checkpoint holds what no optimizer trains too (the Ladder's batch-norm statistics): it evaluates as the
    # exported model.keras does.
    exported = vae_tf.load_run(tmp_path / "straight", "final")
    np.testing.assert_allclose(trained.represent(images), exported.represent(images), rtol=1e-4, atol=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(trained.get_weights(), exported.get_weights()))
    if prior == "vamp":  # the pseudo-inputs trained from their seeded start, and the checkpoint holds them
        start = vae_tf.build_model(trained.params).top_prior.pseudo_inputs.numpy()
        pseudo_inputs = [run.top_prior.pseudo_inputs.numpy() for run in (trained, reloaded)]
        assert np.abs(pseudo_inputs[0] - start).max() > 1e-4
        np.testing.assert_allclose(pseudo_inputs[0], pseudo_inputs[1], rtol=1e-5)
    assert analyze_main([str(tmp_path / "resumed"), "--num_images=32", "--no_tsne", "--likelihood_samples=4"]) == 0
    for figure in ("layer_kl.png", "layer_traversals.png"):
        assert (tmp_path / "resumed" / "analysis" / figure).stat().st_size > 0
    summary = json.loads((tmp_path / "resumed" / "analysis" / "summary.json").read_text())
    assert summary["model"] in printed and "(KL per layer: " in summary["model"]  # the run's first line
    # TensorBoard's text keeps it too, written when the training began
    assert [(e.step, tf.make_ndarray(e.tensor_proto).item().decode()) for e in events.Tensors("model")] == [
        (0, summary["model"])]
    assert [layer["size"] for layer in summary["layers"]] == [4, 3]
    active = summary["active_dimensions"]  # z_1's dimensions come first, then z_2's
    assert [layer["active_units"] for layer in summary["layers"]] == [sum(d < 4 for d in active),
                                                                      sum(d >= 4 for d in active)]
    assert sum(layer["kl"] for layer in summary["layers"]) == pytest.approx(summary["test"]["kl_loss"], rel=1e-6)


def test_layer_traversals_take_each_layers_most_informative_dimensions_top_layer_first():
    rng = np.random.default_rng(0)
    sizes = [6, 5, 2]  # the last layer has fewer dimensions than LAYER_ROWS
    mean = rng.normal(size=(200, sum(sizes)))
    kl = rng.random(sum(sizes))
    codes, labels = layer_traversal_codes(sizes, mean, kl)
    expected = []  # (layer, dimension within it), written out: the top layer first, by decreasing KL
    for level, start in ((2, 11), (1, 6), (0, 0)):
        within = sorted(range(sizes[level]), key=lambda d: -kl[start + d])[:LAYER_ROWS]
        expected += [(level, start + d, d) for d in within]
    assert codes.shape == (len(expected), COLUMNS, sum(sizes))
    for row, (level, column, within) in zip(codes, expected):
        moving = np.flatnonzero(np.ptp(row, axis=0) > 0)
        assert list(moving) == [column]  # one dimension moves, the others stay at the code's average
        np.testing.assert_allclose(row[0, column], np.percentile(mean[:, column], 2))
        np.testing.assert_allclose(row[-1, column], np.percentile(mean[:, column], 98))
        np.testing.assert_allclose(np.delete(row[0], column), np.delete(mean.mean(axis=0), column))
    assert [label.split("\n")[0] for label in labels] == [f"z_{level + 1}, dim {d}" for level, _, d in expected]


@pytest.mark.parametrize("overrides, message", [
    (dict(model="ladder"), "needs stochastic layers above z_1"),
    (dict(upper_latent_sizes=[4]), "model vae has one"),
    (dict(model="hierarchical", upper_latent_sizes=[4, 0]), "each an integer >= 1"),
    (dict(model="ladder", upper_latent_sizes=[4], objective="dip_vae_ii"), "objective dip_vae_ii needs one Gaussian"),
    (dict(model="ladder", upper_latent_sizes=[4], upper_layer_units=0), "upper_layer_units must be at least 1"),
    (dict(model="hierarchical", upper_latent_sizes=[4], categorical_sizes=[3]), "drop categorical_sizes"),
    (dict(model="ladder", upper_latent_sizes=[4], strategy="mirrored", cpu_devices=2), "trains on one device"),
    (dict(model="ladder", upper_latent_sizes=[4], flow="iaf"), "flow iaf acts on the code of model vae; model ladder"),
    (dict(model="hierarchical", upper_latent_sizes=[4], prior="vamp", free_bits=0.5), "model hierarchical weighs its own bound"),
    (dict(model="ladder", latent_size=[4, 2]), "the layers above z_1 take upper_latent_sizes"),  # the syntax
    (dict(model="ladder", upper_latent_sizes=[2], aggressive=True),
     "model ladder infers its layers through its generative"),
    (dict(model="hierarchical", upper_latent_sizes=[2], aggressive=True),
     "model hierarchical infers z_2 from z_1 with networks that aggressive would train in the decoder's turns"),
    (dict(model="ladder", upper_latent_sizes=[2], decoder="pixelcnn", decoder_layers=[[8, 3, 1]], binarize=True),
     "model ladder decodes z_1 alone, without the pixels a PixelCNN reads"),
])
def test_bad_layers_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, overrides, message):
    monkeypatch.chdir(ROOT)
    assert_train_refuses(tmp_path, capsys, overrides, message)
