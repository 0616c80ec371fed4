"""The gated PixelCNN decoder: no pixel's distribution reads itself or a later pixel, and none misses the pixels above
and to its right (no blind spot); pixel-by-pixel sampling draws from the density teacher forcing gives; a VAE with it
has the log-likelihood numerical integration gives; pixel dropout hides pixels from it in training steps only; runs
with it train, resume exactly and analyse; bad input."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf.analysis import model_figures
from vae_tf.cli import analyze_main, train_main
from vae_tf.figures import save_figure as real_save_figure
from vae_tf.likelihood import log_likelihood
from vae_tf.pixelcnn import build_pixelcnn_decoder, sample

from conftest import ROOT, TINY, assert_resumed_as_straight, assert_train_refuses, tiny_args

PIXELCNN = dict(decoder="pixelcnn", decoder_layers=[[8, 3, 1]] * 3)


@pytest.mark.parametrize("conditioning", ["global", "spatial"])
def test_each_logit_reads_every_earlier_pixel_in_reach_and_no_later_one(conditioning):
    """The gradient of pixel (i, j)'s logit with respect to the image is zero at (i, j) and after it in raster order,
    and nonzero at the pixel before it and at the one above and to its right (the plain PixelCNN's blind spot)."""
    import keras
    keras.utils.set_random_seed(0)
    decoder = build_pixelcnn_decoder((6, 6, 1), 2, [[16, 3, 1]] * 3,  # wide enough that no pixel's ReLUs all die
                                     conditioning=conditioning)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((1, 6, 6, 1)).astype(np.float32))
    code = tf.constant(rng.normal(size=(1, 2)).astype(np.float32))
    for i, j in itertools.product(range(6), range(6)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logit = decoder([code, x])[0, i, j, 0]
        reads = np.abs(tape.gradient(logit, x).numpy()[0, :, :, 0]).reshape(-1) > 0
        position = i * 6 + j
        assert not reads[position:].any(), (i, j)
        if j > 0:
            assert reads[position - 1], (i, j)
        if i > 0 and j < 5:
            assert reads[(i - 1) * 6 + j + 1], (i, j)


def test_global_conditioning_tells_every_interior_pixel_the_same_and_spatial_conditioning_does_not():
    """On a blank 12 × 12 image, the logits of the pixels out of the borders' reach (rows and columns 4 to 9, two
    gated 3 × 3 layers) are one value under global conditioning, whatever z: the convolutions are
    translation-equivariant and z is the same at every pixel. Under spatial conditioning they differ."""
    import keras
    keras.utils.set_random_seed(1)
    blank = tf.zeros((3, 12, 12, 1))
    code = tf.constant(np.random.default_rng(1).normal(size=(3, 2)).astype(np.float32))
    interior = {}
    for conditioning in ("global", "spatial"):
        decoder = build_pixelcnn_decoder((12, 12, 1), 2, [[8, 3, 1]] * 2, conditioning=conditioning)
        interior[conditioning] = decoder([code, blank]).numpy()[:, 4:10, 4:10, 0].reshape(3, -1)
    np.testing.assert_allclose(interior["global"], interior["global"][:, :1].repeat(36, 1), rtol=1e-5, atol=1e-6)
    assert not np.allclose(interior["global"][0], interior["global"][1])  # z changes them, alike
    assert (interior["spatial"].std(1) > 1e-3).all()


def test_sampling_pixel_by_pixel_draws_from_the_teacher_forced_density():
    """On 2×2 images, the frequencies of the 16 images among 4,000 samples against p(x|z) = Π_i p(x_i|x_<i, z)
    computed by teacher forcing for each image (a χ² test at the 0.1% level)."""
    decoder = build_pixelcnn_decoder((2, 2, 1), 2, [[8, 3, 1]] * 2)
    decoder.set_weights([w * 3 for w in decoder.get_weights()])  # pixels that depend on each other
    code = tf.constant(np.tile([[0.5, -1.0]], (4000, 1)).astype(np.float32))
    drawn = sample(decoder, code, tf.constant([3, 4], tf.int64)).numpy().reshape(4000, 4)
    patterns = np.array(list(itertools.product([0, 1], repeat=4)), np.float32)
    logits = decoder([code[:16], tf.constant(patterns.reshape(16, 2, 2, 1))]).numpy().reshape(16, 4).astype(np.float64)
    probability = np.prod(np.where(patterns == 1, 1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(logits))), axis=1)
    assert probability.sum() == pytest.approx(1.0, abs=1e-5)
    counts = np.array([np.sum(np.all(drawn == p, axis=1)) for p in patterns])
    expected = 4000 * probability
    keep = expected > 5
    chi2 = np.sum((counts[keep] - expected[keep]) ** 2 / expected[keep])
    from scipy.stats import chi2 as chi2_distribution
    assert chi2 < chi2_distribution.ppf(0.999, keep.sum() - 1), (counts, expected)
    again = sample(decoder, code[:8], tf.constant([3, 4], tf.int64)).numpy()
    np.testing.assert_array_equal(again, sample(decoder, code[:8], tf.constant([3, 4], tf.int64)).numpy())


@pytest.mark.parametrize("conditioning", ["global", "spatial"])
def test_sampling_row_by_row_on_a_window_draws_what_a_whole_pass_per_pixel_draws(conditioning):
    """On 11 × 5 images, taller than the 5 rows a pixel reads through a [8, 3, 1] and an [8, 5, 1] layer, `sample`
    (the vertical stack once a row on a window of rows, the horizontal stack once a pixel on its row) gives the
    images drawn by the definition: each pixel from a pass of the whole decoder over the canvas so far, compared with
    the same uniform draws."""
    import keras
    keras.utils.set_random_seed(2)
    decoder = build_pixelcnn_decoder((11, 5, 1), 3, [[8, 3, 1], [8, 5, 1]], conditioning=conditioning)
    decoder.set_weights([w * 2 for w in decoder.get_weights()])  # pixels that depend on each other
    code = tf.constant(np.random.default_rng(3).normal(size=(6, 3)).astype(np.float32))
    seed = tf.constant([5, 6], tf.int64)
    uniform = tf.random.stateless_uniform([6, 11, 5, 1], seed=seed).numpy()
    canvas = np.zeros((6, 11, 5, 1), np.float32)
    for i, j in itertools.product(range(11), range(5)):
        logit = decoder([code, tf.constant(canvas)]).numpy()[:, i, j, 0]
        canvas[:, i, j, 0] = uniform[:, i, j, 0] < 1 / (1 + np.exp(-logit))
    assert 0.1 < canvas.mean() < 0.9  # draws of both values
    np.testing.assert_array_equal(tf.function(lambda c: sample(decoder, c, seed), autograph=False)(code).numpy(),
                                  canvas)


def test_a_pixelcnn_vae_has_the_integrated_log_likelihood():
    """log p(x) = log ∫ p(x|z) N(z; 0, 1) dz on a 1-D z and 4×4 images, p(x|z) the PixelCNN's product of teacher-forced
    Bernoullis, against the importance-sampled estimate (a broad posterior N(0.3, 1.4²))."""
    model = vae_tf.build_model(vae_tf.load_params(ROOT / "params.py", overrides={
        **TINY, **PIXELCNN, "image_size": 4, "encoder_layers": [[16]], "latent_size": 1}))
    weights = [np.zeros_like(w) for w in model.encoder.get_weights()]
    weights[-3][:], weights[-1][:] = 0.3, np.log(1.4)  # the mean's and the log_std's biases
    model.encoder.set_weights(weights)
    model.decoder.set_weights([w * 2 for w in model.decoder.get_weights()])
    images = (np.random.default_rng(2).random((3, 4, 4, 1)) > 0.5).astype(np.float32)
    grid = np.linspace(-7, 7, 2801)
    log_joint = []
    for image in images:
        logits = model.decoder([tf.constant(grid[:, None], tf.float32),
                                tf.constant(np.repeat(image[None], len(grid), 0))]).numpy()
        logits = logits.reshape(len(grid), -1).astype(np.float64)
        pixels = image.reshape(-1)
        log_p = -(np.maximum(logits, 0) - logits * pixels + np.log1p(np.exp(-np.abs(logits)))).sum(1)
        log_joint.append(log_p - 0.5 * np.log(2 * np.pi) - 0.5 * grid ** 2)
    log_joint = np.stack(log_joint, 1)
    top = log_joint.max(0)
    exact = top + np.log(np.exp(log_joint - top).sum(0) * (grid[1] - grid[0]))
    np.testing.assert_allclose(log_likelihood(model, images, num_samples=4000), exact, atol=0.05)


def test_pixel_dropout_hides_a_share_of_the_decoders_pixels_in_training_steps_and_scores_all():
    """With pixel_dropout 0.4, a training step's decoder reads its images with about 40% of the pixels at 0.5 (the
    rest unchanged), the same ones at the same step and on two replicas as on one device, and the loss scores the
    true pixels under those logits (a NumPy Bernoulli log-likelihood); a validation pass reads the images whole."""
    model = vae_tf.build_model(vae_tf.load_params(ROOT / "params.py", overrides={
        **TINY, **PIXELCNN, "pixel_dropout": 0.4, "binarize": True}))
    x = tf.constant((np.random.default_rng(0).random((8, 16, 16, 1)) > 0.5).astype(np.float32))
    _, batch = model.forward(x, tf.constant(5, tf.int64), stream=0)
    context = batch.context.numpy()
    hidden = context == 0.5
    assert 0.35 < hidden.mean() < 0.45
    np.testing.assert_array_equal(context[~hidden], x.numpy()[~hidden])
    np.testing.assert_array_equal(model.forward(x, tf.constant(5, tf.int64), stream=0)[1].context.numpy(), context)
    assert not np.array_equal(model.forward(x, tf.constant(6, tf.int64), stream=0)[1].context.numpy(), context)
    logits = model.decoder([batch.z, batch.context]).numpy().astype(np.float64)
    np.testing.assert_allclose(batch.logits.numpy(), logits, rtol=1e-5, atol=1e-5)
    assert not np.allclose(model.decoder([batch.z, x]).numpy(), logits, atol=1e-3)
    pixels = x.numpy().astype(np.float64)
    nll = (np.maximum(logits, 0) - logits * pixels + np.log1p(np.exp(-np.abs(logits)))).sum((1, 2, 3))
    np.testing.assert_allclose(batch.reconstruction.numpy(), nll, rtol=1e-5)
    np.testing.assert_array_equal(model.forward(x, tf.constant(5, tf.int64), stream=1)[1].context.numpy(), x.numpy())
    halves = [model.decoder_context(x[4 * r:4 * (r + 1)], tf.constant(5, tf.int64), 0, r, 2) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves), context)  # two replicas hide what one device does


@pytest.mark.parametrize("options", [dict(objective="iwae", iwae_samples=3, beta=1.0), dict(svi_steps=2)])
def test_iwaes_extra_draws_and_svis_steps_read_the_training_steps_hidden_pixels(options):
    """Every decoder pass of a training step with pixel_dropout (IWAE's other draws, SVI's steps) reads the step's
    images with the same pixels hidden, never the whole images: a decoder shown them whole could predict each pixel
    from its neighbours and leave the code unread, which pixel dropout is there to stop."""
    model = vae_tf.build_model(vae_tf.load_params(ROOT / "params.py", overrides={
        **TINY, **PIXELCNN, "pixel_dropout": 0.4, "binarize": True, **options}))
    x = tf.constant((np.random.default_rng(2).random((8, 16, 16, 1)) > 0.5).astype(np.float32))
    read, decode = [], model.likelihood_logits
    model.likelihood_logits = lambda code, images, **kwargs: read.append(images.numpy()) or decode(code, images,
                                                                                                     **kwargs)
    step = tf.constant(5, tf.int64)
    context = model.decoder_context(x, step, stream=0).numpy()
    assert 0.3 < (context == 0.5).mean() < 0.5
    model.forward(x, step, stream=0)
    assert sum(map(len, read)) >= 3 * len(x)  # the step's own draw and two more (IWAE's 2 draws, or SVI's 2 steps)
    for images in read:
        np.testing.assert_array_equal(images, np.tile(context, [len(images) // len(x), 1, 1, 1]))


@pytest.mark.parametrize("options", [{}, {"pixel_dropout": 0.3, "binarize": True, "pixelcnn_conditioning": "spatial"}])
def test_a_pixelcnn_run_trains_resumes_exactly_and_analyses(tmp_path, capsys, monkeypatch, options):
    monkeypatch.chdir(ROOT)
    # 8 × 8 images: every snapshot and figure samples pixel by pixel, 64 passes of the decoder rather than 256
    common = [f"--output_dir={tmp_path}", *tiny_args(**PIXELCNN, **options, num_steps=8, plot_step=4, image_size=8)]
    assert train_main([*common, "--run_name=straight"]) == 0
    assert train_main([*common, "--run_name=resumed", "--num_steps=4"]) == 0
    assert train_main([*common, "--run_name=resumed"]) == 0
    assert_resumed_as_straight(tmp_path / "resumed", tmp_path / "straight")
    # the weights too: the last checkpoint of each run and the finished run's model.keras hold one set of trained
    # weights (a checkpoint that missed the PixelCNN's layers would restore them untrained)
    model = vae_tf.load_run(tmp_path / "straight")
    for other in (vae_tf.load_run(tmp_path / "straight", "final"), vae_tf.load_run(tmp_path / "resumed")):
        for got, want in zip(other.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    untrained = vae_tf.build_model(model.params).decoder.trainable_weights
    for trained, initial in zip(model.decoder.trainable_weights, untrained, strict=True):
        assert not np.array_equal(trained.numpy(), initial.numpy()), trained.path
    images = next(iter(vae_tf.load_dataset("shapes2d", split="test", image_size=8, shuffle=False).batch(4)))
    reconstructions = model.reconstruct(images).numpy()
    assert set(np.unique(reconstructions)) <= {0.0, 1.0}  # samples, drawn pixel by pixel
    np.testing.assert_array_equal(reconstructions, model.reconstruct(images).numpy())
    capsys.readouterr()
    titles = {}  # each figure's caption: the decoded images are samples, which it must say

    def save_figure(figure, path):
        titles[Path(path).name] = figure.get_suptitle()
        real_save_figure(figure, path)

    monkeypatch.setattr(model_figures, "save_figure", save_figure)
    assert analyze_main([str(tmp_path / "straight"), "--num_images=32", "--no_tsne", "--likelihood_samples=4"]) == 0
    assert (tmp_path / "straight" / "analysis" / "latent_traversals_all.png").exists()
    for name in ("latent_traversal.png", "latent_traversals_all.png", "reconstructions.png", "samples.png",
                 "interpolation.png"):
        assert "each image a sample of p(x|z) drawn pixel by pixel" in titles[name], name


@pytest.mark.parametrize("overrides, message", [
    (dict(decoder="pixelcnn", decoder_layers=[]), "decoder pixelcnn needs at least one gated layer"),
    (dict(decoder="pixelcnn", decoder_layers=[[8, 4, 1]]), "gated layers [filters, odd kernel, 1]"),
    (dict(PIXELCNN, reconstruction_loss="squared_error"), "use reconstruction_loss bernoulli"),
    (dict(PIXELCNN, channels=3), "use channels 1"),
    (dict(PIXELCNN, model="m2", labels=30, label_factor="shape"), "decoder pixelcnn is built for model vae"),
    (dict(PIXELCNN, pixel_dropout=1.0), "pixel_dropout is a share of the pixels, in [0, 1)"),
    (dict(PIXELCNN, pixel_dropout=-0.1), "pixel_dropout is a share of the pixels, in [0, 1)"),
    (dict(pixel_dropout=0.5), "reads z alone: use decoder pixelcnn, or drop pixel_dropout"),
    (dict(PIXELCNN, pixel_dropout=0.5), "which a grey image holds too: set binarize True"),
    (dict(pixelcnn_conditioning="spatial"), "has no PixelCNN: use decoder pixelcnn, or drop pixelcnn_conditioning"),
    (dict(PIXELCNN, pixelcnn_conditioning="local"), "pixelcnn_conditioning 'local' is not one of global, spatial"),
])
def test_bad_pixelcnn_parameters_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, overrides, message):
    monkeypatch.chdir(ROOT)
    assert_train_refuses(tmp_path, capsys, overrides, message)
