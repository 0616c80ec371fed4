"""The latent abstraction: its maths against independent computations, the Gaussian VAE unchanged by it, and the
categorical (JointVAE) latents through training, resuming, likelihood, metrics and analysis."""

import csv
import json
import platform

import numpy as np
import pytest
import tensorflow as tf
from imageio.v3 import imread

import vae_tf
from vae_tf import latent_space, metrics
from vae_tf.analysis import read_summary
from vae_tf.baselines import FactorObservations, model_representation
from vae_tf.cli import analyze_main
from vae_tf.latents import Categorical, Gaussian, Latent
from vae_tf.likelihood import elbo, log_likelihood
from vae_tf.params import saved_params
from vae_tf.runs import read_log

from conftest import ROOT, tiny_args, train_cli

DATA = ROOT / "tests" / "data"
JOINT = dict(categorical_sizes=[3], categorical_gamma=5.0, categorical_end_step=4)


def cpu_flags():
    """The CPU features that choose oneDNN's kernels, and so the last bits of a float32 sum."""
    try:
        words = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return platform.processor()
    return " ".join(sorted(w for w in words if w.startswith(("avx", "amx", "fma", "sse4"))))


def test_shipped_params_train_exactly_as_before_the_latent_abstraction(tmp_path):
    """The recorded log (tests/data/default_params_log.json says how it was made) came from the code before the latent
    abstraction; params.py's run must reproduce it bit for bit. oneDNN picks its kernels by CPU features and float32
    sums change in the last bits with them and 60 steps of training carry such differences along, so on a CPU other
    than the recording's the comparison is to 1e-3 (relative): far below what any change to the computation moves."""
    recorded = json.loads((DATA / "default_params_log.json").read_text())
    params = vae_tf.load_params(ROOT / "params.py", overrides={"output_dir": str(tmp_path), "run_name": "pin",
                                                               **recorded["overrides"]})
    run = vae_tf.train(params, progress=False)
    with open(DATA / "default_params_log.csv", newline="") as file:
        expected = list(csv.DictReader(file))
    log = read_log(run / "log.csv")
    assert len(log["step"]) == len(expected) == recorded["overrides"]["num_steps"]
    same_machine = cpu_flags() == recorded["cpu_flags"] and tf.__version__ == recorded["tensorflow"]
    for column in expected[0]:
        want = [float(row[column]) for row in expected]
        if same_machine:
            assert log[column] == want, column  # bit for bit
        else:
            np.testing.assert_allclose(log[column], want, rtol=1e-3, atol=1e-4, err_msg=f"{column} (other CPU)")


def test_gaussian_part_kl_sample_and_prior_ratio_against_numpy():
    rng = np.random.default_rng(0)
    mean, log_std, noise = (rng.normal(size=(5, 3)).astype(np.float32) for _ in range(3))
    part = Gaussian(3)
    z = part.sample((mean, log_std), noise).numpy()
    np.testing.assert_allclose(z, mean + np.exp(log_std) * noise, rtol=1e-6)
    var = np.exp(2 * log_std.astype(np.float64))
    kl = 0.5 * np.sum(mean ** 2 + var - 1 - np.log(var), axis=1)
    np.testing.assert_allclose(part.kl((mean, log_std)).numpy(), kl, rtol=1e-5)
    log_p = np.sum(-0.5 * np.log(2 * np.pi) - 0.5 * z ** 2, axis=1)
    log_q = np.sum(-0.5 * np.log(2 * np.pi * var) - 0.5 * (z - mean) ** 2 / var, axis=1)
    np.testing.assert_allclose(part.log_prior_ratio((mean, log_std), z).numpy(), log_p - log_q, rtol=1e-4, atol=1e-4)


def test_categorical_kl_draws_relaxation_and_prior_ratio_against_their_definitions():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [-3.0, 5.0, 1.0]], np.float32)
    part = Categorical(3, temperature=0.5)
    q = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(part.kl((logits,)).numpy(), np.sum(q * np.log(q * 3), axis=1), rtol=1e-5, atol=1e-6)
    assert part.kl((logits,)).numpy()[1] == pytest.approx(0.0, abs=1e-6)  # uniform: nothing carried
    # Gumbel-max draws follow q(c|x): frequencies of 40,000 draws within 4 standard errors.
    uniform = np.random.default_rng(1).uniform(size=(40000, 3, 3)).astype(np.float32)
    draws = part.draw((logits[None],), uniform).numpy()  # [40000, 3, 3] one-hot
    assert set(np.unique(draws)) == {0.0, 1.0} and np.all(draws.sum(-1) == 1)
    frequencies = draws.mean(0)
    np.testing.assert_array_less(np.abs(frequencies - q), 4 * np.sqrt(q * (1 - q) / 40000) + 1e-4)
    # The relaxation: a point of the simplex, which approaches the Gumbel-max draw of the same noise as τ → 0.
    relaxed = part.sample((logits,), uniform[0]).numpy()
    np.testing.assert_allclose(relaxed.sum(1), 1.0, rtol=1e-6)
    cold = Categorical(3, temperature=1e-3).sample((logits,), uniform[0]).numpy()
    np.testing.assert_allclose(cold, part.draw((logits,), uniform[0]).numpy(), atol=1e-3)
    one_hot = np.eye(3, dtype=np.float32)[[0, 2, 1]]
    ratio = part.log_prior_ratio((logits,), one_hot).numpy()
    np.testing.assert_allclose(ratio, np.log(1 / 3) - np.log(q[np.arange(3), [0, 2, 1]]), rtol=1e-5, atol=1e-6)


def test_latent_joins_parts_in_the_encoder_heads_order():
    latent = Latent(2, [3, 4], temperature=1.0)
    assert latent.heads == [("mean", 2), ("log_std", 2), ("categorical0", 3), ("categorical1", 4)]
    assert latent.code_size == 9 and latent.representation_size == 4
    posterior = [tf.constant([[1.0, 2.0]]), tf.constant([[0.0, 0.0]]), tf.constant([[0.0, 3.0, 1.0]]),
                 tf.constant([[5.0, 0.0, 0.0, 0.0]])]
    assert latent.mode(posterior).numpy().tolist() == [[1, 2, 0, 1, 0, 1, 0, 0, 0]]
    assert latent.representation(posterior).numpy().tolist() == [[1, 2, 1, 0]]
    codes = latent.prior_codes(np.random.default_rng(0), 500)
    assert codes.shape == (500, 9) and np.all(codes[:, 2:5].sum(1) == 1) and np.all(codes[:, 5:].sum(1) == 1)


def numpy_hsic(mean, probabilities, kernel):
    """(1/B²)·tr(K H L H) written out with NumPy (Gretton et al. 2005), L = q qᵀ."""
    rows = len(mean)
    if kernel == "linear":
        gram = mean @ mean.T
    else:
        squared = ((mean[:, None, :] - mean[None, :, :]) ** 2).sum(-1)
        gram = np.exp(-squared / (squared.sum() / (rows * (rows - 1))))
    centring = np.eye(rows) - 1.0 / rows
    return np.trace(gram @ centring @ probabilities @ probabilities.T @ centring) / rows ** 2


def softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_hsic_between_the_parts_against_numpy(kernel):
    rng = np.random.default_rng(3)
    mean, log_std = rng.normal(size=(50, 2)).astype(np.float32), np.zeros((50, 2), np.float32)
    logits = [rng.normal(size=(50, 3)).astype(np.float32), rng.normal(size=(50, 2)).astype(np.float32)]
    probabilities = np.concatenate([softmax(l.astype(np.float64)) for l in logits], axis=1)
    expected = numpy_hsic(mean.astype(np.float64), probabilities, kernel)
    assert Latent(2, [3, 2]).hsic([mean, log_std, *logits], kernel).numpy() == pytest.approx(expected, rel=1e-4)
    if kernel == "linear":  # with linear kernels HSIC is the squared covariance block between the parts
        block = np.cov(np.concatenate([mean, probabilities], axis=1).T, bias=True)[:2, 2:]
        assert expected == pytest.approx(np.sum(block ** 2), rel=1e-9)


def test_hsic_tells_a_categorical_that_repeats_a_latent_from_one_that_does_not():
    """On 400 rows: a categorical of the sign of the first mean pays under both kernels; one of |mean| > 0.67 (which
    does not covary with the mean: the dependence is not linear) only under the RBF kernel; one of an independent
    coin neither (within the sampling noise of 400 rows)."""
    rng = np.random.default_rng(4)
    mean, log_std = rng.normal(size=(400, 1)).astype(np.float32), np.zeros((400, 1), np.float32)

    def hsic(condition, kernel):
        logits = np.where(condition, [[9.0, -9.0]], [[-9.0, 9.0]]).astype(np.float32)
        return Latent(1, [2]).hsic([mean, log_std, logits], kernel).numpy()

    sign, magnitude, coin = mean > 0, np.abs(mean) > 0.67, rng.random((400, 1)) > 0.5
    assert hsic(sign, "linear") > 0.05 and hsic(sign, "rbf") > 0.02
    assert hsic(magnitude, "linear") < 0.1 * hsic(sign, "linear") and hsic(magnitude, "rbf") > 0.005
    assert hsic(coin, "linear") < 0.002 and hsic(coin, "rbf") < 0.1 * hsic(magnitude, "rbf")


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_independence_adds_its_weight_times_hsic_to_the_loss(tiny, kernel):
    """The same batch, step and weights through two models that differ only in categorical_independence: their losses
    differ by the weight times HSIC(mean, q(c|x)), computed here from the encoder's outputs with NumPy."""
    images = tf.constant(np.random.default_rng(0).random((8, 16, 16, 1)), tf.float32)
    plain = vae_tf.build_model(tiny(**JOINT))
    independent = vae_tf.build_model(tiny(**JOINT, categorical_independence=1e5, independence_kernel=kernel))
    independent.set_weights(plain.get_weights())
    assert "categorical_hsic" in independent.step_figures
    assert "categorical_hsic" not in plain.step_figures  # runs from before keep their log's columns
    mean, _, logits = (head.numpy().astype(np.float64) for head in plain.encoder(images, training=True))
    expected = numpy_hsic(mean, softmax(logits), kernel)
    figures = independent.loss_terms(images, tf.constant(0, tf.int64), stream=1)
    assert figures["categorical_hsic"].numpy() == pytest.approx(expected, rel=1e-4)
    difference = figures["loss"].numpy() - plain.loss_terms(images, tf.constant(0, tf.int64), stream=1)["loss"].numpy()
    assert difference == pytest.approx(1e5 * expected, rel=1e-3)


def tiny_joint_model(jit_compile=False):
    """A 4×4 MLP VAE with one Gaussian dimension and a 2-way categorical, its proposal fixed (as in
    test_likelihood): q(z|x) = N(0.3, 1.5²), q(c|x) = (0.7, 0.3) for every image."""
    params = vae_tf.load_params(None, overrides=dict(image_size=4, encoder_layers=[[16]], decoder="deconv",
                                                     decoder_layers=[[16]], latent_size=1, categorical_sizes=[2],
                                                     jit_compile=jit_compile))
    model = vae_tf.build_model(params)
    model.decoder.set_weights([w * 1.5 for w in model.decoder.get_weights()])
    weights = [np.zeros_like(w) for w in model.encoder.get_weights()]
    weights[-5][:] = 0.3  # mean bias
    weights[-3][:] = np.log(1.5)  # log_std bias
    weights[-1][:] = np.log([0.7, 0.3])  # categorical logits bias
    model.encoder.set_weights(weights)
    return model


@pytest.mark.parametrize("jit_compile", [False, True])  # a run trained with XLA is evaluated with it
def test_likelihood_with_a_categorical_matches_summation_and_integration(jit_compile):
    """log p(x) = log Σ_c ½ ∫ p(x|z, c) N(z; 0, 1) dz, by the rectangle rule over z and an exact sum over c."""
    model = tiny_joint_model(jit_compile)
    images = (np.random.default_rng(2).random((4, 4, 4, 1)) > 0.5).astype(np.float32)
    grid = np.linspace(-7, 7, 4001)
    x = images.reshape(4, -1).astype(np.float64)
    joints = []
    for category in range(2):
        codes = np.column_stack([grid, np.tile(np.eye(2)[category], (len(grid), 1))]).astype(np.float32)
        logits = model.decoder(codes).numpy().reshape(len(grid), -1).astype(np.float64)[:, None]
        log_px = -(np.maximum(logits, 0) - logits * x[None] + np.log1p(np.exp(-np.abs(logits)))).sum(-1)  # [G, n]
        joints.append(log_px + (-0.5 * np.log(2 * np.pi) - 0.5 * grid ** 2)[:, None] + np.log(0.5))
    joint = np.concatenate(joints)
    top = joint.max(0)
    exact = top + np.log(np.exp(joint - top).sum(0) * (grid[1] - grid[0]))
    np.testing.assert_allclose(log_likelihood(model, images, num_samples=5000), exact, atol=0.05)
    assert np.all(elbo(model, images, num_samples=2000) < exact)


def test_representation_gives_each_categorical_its_most_probable_category():
    model = vae_tf.build_model(vae_tf.load_params(None, overrides=dict(image_size=8, encoder_layers=[[8]],
                                                                       decoder="deconv", decoder_layers=[[8]],
                                                                       latent_size=2, categorical_sizes=[3, 2])))
    images = np.random.default_rng(0).random((50, 8, 8, 1)).astype(np.float32)
    mean, _, logits0, logits1 = (t.numpy() for t in model.encoder(images))
    codes = model_representation(model, batch_size=16)(images)
    assert codes.shape == (50, 4)
    np.testing.assert_allclose(codes[:, :2], mean, rtol=1e-6)
    assert codes[:, 2].tolist() == np.argmax(logits0, 1).tolist() and codes[:, 3].tolist() == np.argmax(logits1, 1).tolist()


def test_mig_scores_a_categorical_by_its_discrete_value():
    """A code whose last column is shape's index (a categorical's argmax) and whose others are scale and the positions
    carries shape and scale fully: their gaps are ~1. The same categorical read as a probability that
    only leans towards its category spreads each category over the 20 bins and shares them: shape's gap falls."""
    ground_truth = FactorObservations(vae_tf.load_ground_truth("shapes2d", 16))
    names = list(ground_truth.inner.factor_names)
    columns = [names.index(n) for n in ("scale", "position_x", "position_y", "shape")]
    shape = names.index("shape")

    def categorical_code(factors):
        return np.asarray(factors)[:, columns]

    def probability_code(factors):
        factors = np.asarray(factors)
        lean = np.random.default_rng(len(factors)).uniform(-1.4, 1.4, len(factors))
        return np.column_stack([factors[:, columns[:3]], (factors[:, shape] + lean) / 4 + 0.3])

    exact = metrics.mig(ground_truth, categorical_code, np.random.RandomState(0), num_train=5000, num_bins=20)
    for name in ("scale", "shape"):  # (the 32 positions share 20 bins, so their own gaps stay below 1)
        assert exact["per_factor"][names.index(name)] > 0.98, name
    blurred = metrics.mig(ground_truth, probability_code, np.random.RandomState(0), num_train=5000, num_bins=20)
    assert blurred["per_factor"][shape] < 0.6


def test_majority_agreement_is_cluster_purity():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    assert latent_space.majority_agreement(np.array([2, 2, 2, 0, 0, 1, 1, 1]), labels) == 1.0  # a relabelling
    assert latent_space.majority_agreement(np.zeros(8, int), labels) == 3 / 8  # one category: the largest share
    assert latent_space.majority_agreement(np.array([0, 0, 1, 1, 1, 2, 2, 2]), labels) == 7 / 8


def test_category_information_against_the_entropies_it_is_made_of():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    entropy = -sum(p * np.log(p) for p in (3 / 8, 2 / 8, 3 / 8))
    # A relabelling of the factor tells all of it; one category nothing; merging values 1 and 2 leaves H − H(1, 2 | merged).
    assert latent_space.category_information(np.array([2, 2, 2, 0, 0, 1, 1, 1]), labels) == pytest.approx(entropy)
    assert latent_space.category_information(np.zeros(8, int), labels) == pytest.approx(0.0, abs=1e-12)
    merged = -(2 / 8 * np.log(2 / 5) + 3 / 8 * np.log(3 / 5))  # H(factor | category 1 holds values 1 and 2)
    assert latent_space.category_information(np.array([0, 0, 0, 1, 1, 1, 1, 1]), labels) == pytest.approx(entropy - merged)


@pytest.mark.parametrize("flag, message", [
    ("--categorical_sizes=[3,1]", "categorical_sizes must list numbers of categories, each an integer >= 2"),
    ("--temperature=0", "temperature must be a finite number > 0"),
    ("--objective=iwae --beta=1 --categorical_sizes=[3]", "objective iwae's bound needs the density"),
    ("--binarize=True --reconstruction_loss=squared_error", "binarize draws binary pixels for a Bernoulli decoder"),
])
def test_bad_latent_parameters_are_one_line_and_touch_nothing(tmp_path, flag, message):
    result = train_cli(f"--output_dir={tmp_path}", *tiny_args(), *flag.split())
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert message in result.stderr and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_joint_run_resumes_exactly_reloads_and_analyses(tiny, tmp_path):
    whole = vae_tf.train(tiny(run_name="whole", **JOINT), progress=False)
    vae_tf.train(tiny(run_name="parts", num_steps=3, **JOINT), progress=False)
    parts = vae_tf.train(tiny(run_name="parts", **JOINT), progress=False)
    whole_log, parts_log = read_log(whole / "log.csv"), read_log(parts / "log.csv")
    for column in ("loss", "kl_gaussian", "kl_categorical", "categorical_capacity", "grad_norm"):
        assert whole_log[column] == parts_log[column], column
    # C_c rises from 0 at step 0 to log 3 at categorical_end_step 4; the logged KL is the two parts' sum.
    np.testing.assert_allclose(whole_log["categorical_capacity"], np.log(3) * np.minimum(np.arange(6) / 4, 1), rtol=1e-6)
    np.testing.assert_allclose(whole_log["kl_loss"], np.add(whole_log["kl_gaussian"], whole_log["kl_categorical"]),
                               rtol=1e-5)
    model = vae_tf.load_run(whole)
    final = vae_tf.load_run(whole, "final")
    images = np.random.default_rng(0).random((6, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(final.represent(images).numpy(), model.represent(images).numpy(), rtol=1e-6)
    assert analyze_main([str(whole), "--num_images=20", "--no_tsne", "--likelihood_images=0"]) == 2
    assert analyze_main([str(whole), "--num_images=20", "--no_tsne", "--likelihood_images=5",
                         "--likelihood_samples=7"]) == 0
    summary = read_summary(whole)
    assert (summary["likelihood_images"], summary["likelihood_samples"]) == (5, 7)
    categorical = summary["categoricals"][0]
    assert categorical["name"] == "c0" and categorical["size"] == 3 and sum(categorical["category_shares"]) == 1.0
    assert set(categorical["agreement"]) == set(categorical["information"]) == {"shape", "scale", "orientation",
                                                                                 "position_x", "position_y"}
    traversal = imread(whole / "analysis" / "categorical_traversals.png")
    assert traversal.shape[0] > 3 * 16  # three rows, one per category


def test_the_shipped_joint_run_is_the_preset_and_loads_from_both_its_files():
    shipped = ROOT / "predictions" / "shapes2d_joint"
    preset = vae_tf.load_params(ROOT / "params.py", preset="shapes2d_joint")
    assert saved_params(json.loads((shipped / "params.json").read_text())).to_dict() == preset.to_dict()
    latest, final = vae_tf.load_run(shipped), vae_tf.load_run(shipped, "final")
    assert int(latest.optimizer.iterations.numpy()) == preset.num_steps
    images = next(iter(vae_tf.load_dataset("shapes2d", split="test", image_size=32, shuffle=False).batch(200)))
    codes = latest.represent(images).numpy()
    assert codes.shape == (200, 11) and set(np.unique(codes[:, 10])) == {0.0, 1.0, 2.0}
    np.testing.assert_allclose(final.represent(images).numpy(), codes, rtol=1e-5, atol=1e-5)
