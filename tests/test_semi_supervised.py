"""M2 (Kingma et al. 2014): its loss against the paper's bound written out in NumPy class by class, its
log-likelihood against numerical integration, a tiny run that trains, resumes exactly and classifies, and bad input."""

import csv
import math

import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf.cli import train_main
from vae_tf.likelihood import log_likelihood
from vae_tf.objectives import stream_seed

from conftest import ROOT, TINY, snapshot_of, tiny_args

LABELLED = dict(model="m2", labels=30, label_factor="shape")  # 10 of each of shapes2d's three shapes


def m2(**overrides):
    return vae_tf.build_model(vae_tf.load_params(ROOT / "params.py", overrides={
        **TINY, **LABELLED, **overrides}), dataset_size=3000)


def bernoulli_nll(x, logits):
    """−log p(x|z) of binary images under Bernoulli(sigmoid(logits)), summed over pixels: [n]."""
    x, logits = x.reshape(len(x), -1).astype(np.float64), logits.reshape(len(logits), -1).astype(np.float64)
    return (np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))).sum(1)


def gaussian_kl(mean, log_std):
    mean, log_std = mean.astype(np.float64), log_std.astype(np.float64)
    return (0.5 * (mean ** 2 + np.exp(2 * log_std) - 1) - log_std).sum(1)


def test_the_loss_is_the_papers_bound_summed_over_each_class_in_turn():
    """Eq. 9 of Kingma et al. 2014 with β on the KL: the batched enumeration (one decoder call over B·K rows) equals
    a loop over the classes, each term combined here in NumPy."""
    beta, alpha = 2.0, 3.0
    model = m2(beta=beta, classification_weight=alpha)
    rng = np.random.default_rng(1)
    x = (rng.random((5, 16, 16, 1)) > 0.5).astype(np.float32)
    labelled = (rng.random((4, 16, 16, 1)) > 0.5).astype(np.float32)
    classes = np.array([0, 2, 1, 2])
    step, k, size = 7, 3, TINY["latent_size"]
    figures = {name: float(value) for name, value in model.forward((x, labelled, classes), step, stream=0)[0].items()}

    seed = stream_seed(model.params.seed, step, 0)
    noise_l = tf.random.stateless_normal([4, size], seed=seed).numpy()
    noise_u = tf.random.stateless_normal([5 * k, size], seed=tf.random.experimental.stateless_fold_in(seed, 1)).numpy()

    def terms(images, y, noise):
        mean, log_std = (t.numpy() for t in model.encoder_head([model.features(images), tf.constant(y)]))
        z = mean + np.exp(log_std) * noise
        logits = model.decoder(np.concatenate([z, y], 1).astype(np.float32)).numpy()
        return bernoulli_nll(images, logits), gaussian_kl(mean, log_std)

    rec_l, kl_l = terms(labelled, np.eye(k, dtype=np.float32)[classes], noise_l)
    logits_l = model.classifier(labelled).numpy().astype(np.float64)
    log_q_l = logits_l - np.log(np.exp(logits_l).sum(1, keepdims=True))
    cross_entropy = -log_q_l[np.arange(4), classes]
    logits_u = model.classifier(x).numpy().astype(np.float64)
    q = np.exp(logits_u) / np.exp(logits_u).sum(1, keepdims=True)
    per_class = [terms(x, np.tile(np.eye(k, dtype=np.float32)[c], (5, 1)), noise_u[c::k]) for c in range(k)]
    rec_u = sum(q[:, c] * per_class[c][0] for c in range(k))
    kl_z = sum(q[:, c] * per_class[c][1] for c in range(k))
    kl_y = math.log(k) + (q * np.log(q)).sum(1)  # KL(q(y|x) ‖ uniform) = log K − H
    expected = (rec_l.mean() + beta * kl_l.mean() + math.log(k) + rec_u.mean() + beta * kl_z.mean() + kl_y.mean()
                + alpha * cross_entropy.mean())
    assert figures["loss"] == pytest.approx(expected, rel=1e-4)
    assert figures["labelled_elbo"] == pytest.approx(-(rec_l + kl_l + math.log(k)).mean(), rel=1e-4)
    assert figures["unlabelled_elbo"] == pytest.approx(-(rec_u + kl_z + kl_y).mean(), rel=1e-4)
    assert figures["classification_loss"] == pytest.approx(cross_entropy.mean(), rel=1e-4)
    assert figures["labelled_accuracy"] == pytest.approx(np.mean(logits_l.argmax(1) == classes))


def test_the_default_classification_weight_is_a_tenth_of_the_images_per_label():
    assert m2().alpha == pytest.approx(0.1 * 3000 / 30)


def test_the_log_likelihood_matches_numerical_integration_over_z_and_a_sum_over_y():
    """log p(x) = log Σ_y p(y) ∫ p(x|y,z) N(z; 0, 1) dz on a 1-D z, against the importance-sampled estimate whose
    proposal is M2's own q(y|x) q(z|x,y) (made a broad, informative one: q(y|x) uniform, q(z|x,y) = N(0.3, 1.5²))."""
    model = m2(image_size=4, encoder_layers=[[16]], decoder="deconv", decoder_layers=[[16]], latent_size=1)
    model.decoder.set_weights([w * 1.5 for w in model.decoder.get_weights()])
    for network in (model.classifier, model.encoder_head):
        network.set_weights([np.zeros_like(w) for w in network.get_weights()])
    head = model.encoder_head.get_weights()
    head[-3][:], head[-1][:] = 0.3, np.log(1.5)  # the mean's and the log_std's biases
    model.encoder_head.set_weights(head)
    images = (np.random.default_rng(2).random((4, 4, 4, 1)) > 0.5).astype(np.float32)
    grid = np.linspace(-7, 7, 4001)
    joint = []
    for c in range(3):
        y = np.tile(np.eye(3)[c], (len(grid), 1))
        logits = model.decoder(np.column_stack([grid, y]).astype(np.float32)).numpy()
        log_p = -np.stack([bernoulli_nll(np.broadcast_to(image, logits.shape), logits) for image in images], 1)
        joint.append(log_p + (-0.5 * np.log(2 * np.pi) - 0.5 * grid ** 2)[:, None] - np.log(3))
    joint = np.concatenate(joint)  # [3·G, n]
    top = joint.max(0)
    exact = top + np.log(np.exp(joint - top).sum(0) * (grid[1] - grid[0]))
    np.testing.assert_allclose(log_likelihood(model, images, num_samples=5000), exact, atol=0.05)


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_a_run_trains_resumes_exactly_keeps_its_labelled_images_and_classifies(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    common = [f"--output_dir={tmp_path}", *tiny_args(**LABELLED, num_steps=12)]
    assert train_main([*common, "--run_name=straight"]) == 0, capsys.readouterr().err
    assert train_main([*common, "--run_name=resumed", "--num_steps=6"]) == 0
    labelled = (tmp_path / "resumed" / "labelled.csv").read_text()
    assert train_main([*common, "--run_name=resumed"]) == 0
    assert (tmp_path / "resumed" / "labelled.csv").read_text() == labelled
    table = np.loadtxt(tmp_path / "straight" / "labelled.csv", delimiter=",", skiprows=1, dtype=int)
    assert np.bincount(table[:, 1], minlength=3).tolist() == [10, 10, 10] and len(set(table[:, 0])) == 30
    source = vae_tf.load_params(ROOT / "params.py", overrides={**TINY, **LABELLED})
    from vae_tf.datasets import source_for
    shapes = np.asarray(source_for(source).split("train").labels["shape"])
    assert (shapes[table[:, 0]] == table[:, 1]).all()  # each saved class is the image's own shape

    straight, resumed = read_rows(tmp_path / "straight" / "log.csv"), read_rows(tmp_path / "resumed" / "log.csv")
    assert [r["step"] for r in straight] == [r["step"] for r in resumed] == [str(s) for s in range(12)]
    for column in ("loss", "labelled_elbo", "unlabelled_elbo", "classification_loss", "labelled_accuracy"):
        np.testing.assert_allclose([float(r[column]) for r in resumed], [float(r[column]) for r in straight],
                                   rtol=1e-4, atol=1e-6, err_msg=column)
    validation = read_rows(tmp_path / "straight" / "validation.csv")
    assert 0 <= float(validation[-1]["labelled_accuracy"]) <= 1

    model, final = vae_tf.load_run(tmp_path / "straight"), vae_tf.load_run(tmp_path / "straight", "final")
    images = next(iter(vae_tf.load_dataset("shapes2d", split="test", image_size=16, shuffle=False).batch(8)))
    probabilities = model.classify(images).numpy()
    assert probabilities.shape == (8, 3) and np.allclose(probabilities.sum(1), 1)
    np.testing.assert_array_equal(final.classify(images).numpy(), probabilities)
    np.testing.assert_array_equal(final.reconstruct(images).numpy(), model.reconstruct(images).numpy())
    assert model.represent(images).shape == (8, TINY["latent_size"] + 1)


@pytest.mark.parametrize("overrides, message", [
    (dict(labels=30), "labels, label_factor and classification_weight are for the semi-supervised models"),
    (dict(model="m2", labels=30), "set label_factor"),
    (dict(model="m2", label_factor="shape"), "needs labelled images"),
    (dict(**LABELLED, objective="dip_vae_ii"), "use objective beta_vae"),
    (dict(**LABELLED, categorical_sizes=[3]), "use categorical_sizes []"),
    (dict(LABELLED, label_factor="colour"), "data set shapes2d has no label 'colour'"),
    (dict(LABELLED, labels=31), "not a multiple of the 3 classes"),
    (dict(LABELLED, labels=3 * 300_000), "class 0 of shape has"),
])
def test_bad_labels_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, overrides, message):
    monkeypatch.chdir(ROOT)
    assert train_main([f"--output_dir={tmp_path}", "--run_name=bad", *tiny_args(**overrides)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert snapshot_of(tmp_path) == {}


def test_a_model_without_a_classifier_says_so_in_one_line():
    model = vae_tf.build_model(vae_tf.load_params(ROOT / "params.py", overrides=TINY))
    assert not model.classifies and m2().classifies
    with pytest.raises(vae_tf.UserError, match="model vae has no classifier q\\(y\\|x\\): train model m2"):
        model.classify(np.zeros((1, 16, 16, 1), np.float32))
