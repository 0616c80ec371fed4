import numpy as np
import pytest
import tensorflow as tf

import keras
import vae_tf
from vae_tf.models.layered import mlp
from vae_tf.networks import SpatialBroadcast, build_decoder, build_encoder, decoder_plan

from conftest import ROOT


def test_the_mirrored_decoder_restores_each_conv_s_input_channels():
    # The VAE project's conv model: conv 64 → conv 64 → dense 256 mirrors to dense 256 → 7·7·64 → deconv 64 → deconv 1.
    assert decoder_plan((28, 28, 1), [[64, 4, 2], [64, 4, 2], [256]]) == ([256], 64, [(64, 4, 2), (1, 4, 2)])
    assert decoder_plan((64, 64, 3), [[500], [500]]) == ([500, 500], None, [])
    # An explicit decoder's last conv is the output layer: its filters become the image's channels.
    assert decoder_plan((64, 64, 3), [[32, 4, 2]], [[256], [16, 4, 2], [99, 4, 2]]) == ([256], 16, [(16, 4, 2), (3, 4, 2)])


def test_gated_units_compute_a_times_sigmoid_b_in_every_hidden_layer():
    # Dauphin et al. 2017's gated linear unit, the VampPrior paper's GatedDense: each hidden layer of n units is
    # h = (x W_a + b_a) ⊙ σ(x W_b + b_b), written out here in NumPy from the layers' weights.
    def gate(y):
        a, b = np.split(y, 2, axis=-1)
        return a / (1 + np.exp(-b))

    def dense_weights(network):
        return [layer.get_weights() for layer in network.layers if isinstance(layer, keras.layers.Dense)]

    rng = np.random.default_rng(0)
    x = rng.random((5, 6, 6, 1)).astype(np.float32)
    encoder = build_encoder((6, 6, 1), [[7], [3]], [("mean", 2)], "glu")
    (k0, b0), (k1, b1), (k2, b2) = dense_weights(encoder)
    assert k0.shape == (36, 14) and k1.shape == (7, 6)  # each linear map twice its layer's width
    hidden = gate(gate(x.reshape(5, 36) @ k0 + b0) @ k1 + b1)
    np.testing.assert_allclose(encoder(x).numpy(), hidden @ k2 + b2, rtol=1e-5, atol=1e-5)
    decoder = build_decoder((6, 6, 1), 2, [[7], [3]], [[4]], "glu")  # an MLP decoder's hidden layer gated too
    (k0, b0), (k1, b1) = dense_weights(decoder)
    z = rng.normal(size=(5, 2)).astype(np.float32)
    np.testing.assert_allclose(decoder(z).numpy().reshape(5, 36), gate(z @ k0 + b0) @ k1 + b1, rtol=1e-5, atol=1e-5)
    # The Ladder's networks gate after their batch norm, here at its initial statistics: y / sqrt(1 + ε).
    network = mlp(2, 3, [("mean", 1)], "glu", True, "float32", "up")
    (k0, b0), (k1, b1), (k2, b2) = dense_weights(network)
    scale = 1 / np.sqrt(1 + network.get_layer("batch_norm0").epsilon)
    features = gate(scale * (gate(scale * (z @ k0 + b0)) @ k1 + b1))
    outputs = network(z)
    np.testing.assert_allclose(outputs[0].numpy(), features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outputs[1].numpy(), features @ k2 + b2, rtol=1e-5, atol=1e-5)


def test_spatial_broadcast_copies_z_to_every_pixel_beside_its_coordinates():
    z = np.array([[0.5, -2.0, 3.0], [1.0, 0.0, -1.0]], np.float32)
    grid = SpatialBroadcast(4, 5)(tf.constant(z)).numpy()
    assert grid.shape == (2, 4, 5, 5)
    np.testing.assert_array_equal(grid[..., :3], np.broadcast_to(z[:, None, None, :], (2, 4, 5, 3)))
    np.testing.assert_allclose(grid[0, :, :, 3], np.tile(np.linspace(-1, 1, 5), (4, 1)), atol=1e-6)  # x: columns
    np.testing.assert_allclose(grid[0, :, :, 4], np.tile(np.linspace(-1, 1, 4)[:, None], (1, 5)), atol=1e-6)  # y: rows
    np.testing.assert_array_equal(grid[1, ..., 3:], grid[0, ..., 3:])


def test_the_broadcast_decoder_grows_its_grid_by_what_its_unpadded_convs_take_away(tiny):
    model = vae_tf.build_model(tiny(decoder="broadcast", decoder_layers=[[8, 3, 1], [8, 5, 1], [8, 1, 1]]))
    assert model.decoder.get_layer("broadcast").output.shape[1:] == (16 + 2 + 4, 16 + 2 + 4, 4 + 2)
    assert model.decode(tf.zeros((2, 4))).shape == (2, 16, 16, 1)
    default = vae_tf.build_model(tiny(decoder="broadcast", decoder_layers=None))  # Watters et al.'s four 3×3 convs
    convs = [layer for layer in default.decoder.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size) for c in convs] == [(64, (3, 3))] * 4 + [(1, (1, 1))]
    assert default.decoder.get_layer("broadcast").output.shape[1:3] == (24, 24)


def test_model_shapes_and_output_range(tiny):
    model = vae_tf.build_model(tiny())
    x = tf.random.uniform((5, 16, 16, 1))
    mean, log_std = model.encode(x)
    assert mean.shape == log_std.shape == (5, 4)
    for images in (model.decode(mean), model.reconstruct(x), model.sample(3)):
        assert images.shape[1:] == (16, 16, 1)
        assert float(tf.reduce_min(images)) >= 0.0 and float(tf.reduce_max(images)) <= 1.0
    np.testing.assert_array_equal(model.sample(3, seed=1).numpy(), model.sample(3, seed=1).numpy())


def test_mlp_model_with_an_explicit_decoder(tiny):
    model = vae_tf.build_model(tiny(encoder_layers=[[64], [64]], decoder="deconv", decoder_layers=[[32]]))
    assert [layer.name for layer in model.decoder.layers if isinstance(layer, keras.layers.Dense)] == ["dense0", "logits"]
    assert model.decode(tf.zeros((2, 4))).shape == (2, 16, 16, 1)


def test_train_step_logs_the_loss_terms_and_posterior_statistics(tiny):
    model = vae_tf.build_model(tiny(beta=2.0))
    x = tf.cast(tf.random.uniform((8, 16, 16, 1)) > 0.5, tf.float32)
    figures = {k: float(v) for k, v in model.train_step(x).items()}
    assert figures["loss"] == pytest.approx(figures["reconstruction_loss"] + 2.0 * figures["kl_loss"], rel=1e-5)
    assert figures["kl_weight"] == 2.0
    assert figures["mean_min"] <= figures["mean_avg"] <= figures["mean_max"]
    assert 0 < figures["std_min"] <= figures["std_avg"] <= figures["std_max"]
    assert int(model.optimizer.iterations) == 1


@pytest.mark.parametrize("max_grad_norm, precision", [(0.5, "float32"), (1e6, "float32"), (0.5, "mixed_float16")])
def test_max_grad_norm_clips_the_update_s_whole_gradient_to_that_global_norm(tiny, max_grad_norm, precision):
    """Adam's first moment after one step is (1 − β1)·g, g the gradient it was handed: the loss's gradient, taken
    here apart at the step's own noise, times min(1, max_grad_norm / its global norm); under mixed_float16 the
    gradient of the loss scaled by the loss scale, unscaled."""
    model = vae_tf.build_model(tiny(beta=1.0, max_grad_norm=max_grad_norm, precision=precision))
    optimizer = model.optimizer
    x = tf.cast(tf.random.stateless_uniform((8, 16, 16, 1), seed=[0, 1]) > 0.5, tf.float32)
    scale = 1.0
    if precision == "mixed_float16":  # a scale under which this step's float16 gradients stay finite (2^15 overflows)
        scale = 8.0
        optimizer.dynamic_scale.assign(scale)
    with tf.GradientTape() as tape:
        terms, _ = model.forward(x, tf.constant(0, tf.int64), stream=0)
        scaled = terms["loss"] * scale
    gradients = [g.numpy().astype(np.float64) / scale for g in tape.gradient(scaled, model.trainable_variables)]
    norm = np.sqrt(sum((g ** 2).sum() for g in gradients))
    assert np.isfinite(norm) and norm > 1.0  # so that 0.5 clips
    figures = model.train_step(x)
    assert float(figures["skipped"]) == 0.0
    assert float(figures["grad_norm"]) == pytest.approx(norm, rel=1e-3)  # the log keeps the gradient's own norm
    inner = optimizer.inner_optimizer if precision == "mixed_float16" else optimizer
    for variable, gradient in zip(model.trainable_variables, gradients):
        momentum = inner._momentums[inner._get_variable_index(variable)].numpy()
        np.testing.assert_allclose(momentum, (1 - model.params.adam_beta_1) * gradient * min(1.0, max_grad_norm / norm),
                                   rtol=1e-3, atol=1e-7)


def test_kl_weight_zero_is_a_plain_autoencoder_but_still_logs_kl(tiny):
    model = vae_tf.build_model(tiny(beta=0.0))
    x = tf.cast(tf.random.uniform((8, 16, 16, 1)) > 0.5, tf.float32)
    figures = model.train_step(x)
    assert float(figures["loss"]) == pytest.approx(float(figures["reconstruction_loss"]))
    assert float(figures["kl_loss"]) > 0


def test_keras_fit_and_evaluate_work_unchanged(tiny):
    model = vae_tf.build_model(tiny())
    data = tf.data.Dataset.from_tensor_slices(tf.cast(tf.random.uniform((32, 16, 16, 1)) > 0.5, tf.float32)).batch(8)
    history = model.fit(data, validation_data=data, epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2 and "val_loss" in history.history
    result = model.evaluate(data, verbose=0, return_dict=True)
    assert set(result) >= {"loss", "reconstruction_loss", "kl_loss"}


@pytest.mark.parametrize("activation", ["relu", "glu"])
def test_saved_keras_file_reloads_with_identical_outputs(tiny, tmp_path, activation):
    model = vae_tf.build_model(tiny(kl_schedule="linear", kl_end_step=50, activation=activation))
    x = tf.random.uniform((4, 16, 16, 1))
    model.train_step(tf.round(x))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(model.reconstruct(x).numpy(), loaded.reconstruct(x).numpy())
    np.testing.assert_array_equal(model.sample(4).numpy(), loaded.sample(4).numpy())
    assert loaded.get_config()["params"]["kl_schedule"] == "linear" and loaded.params == model.params


def test_a_model_keras_of_the_previous_release_reads_its_flat_config(tmp_path):
    """Before models were built from Params, model.keras listed each parameter under its own key: the shipped runs'
    files hold that form, and load with the parameters they name."""
    import json
    import zipfile
    for run in ("shapes2d_small", "shapes2d_joint", "shapes2d_disentangled"):
        with zipfile.ZipFile(ROOT / "predictions" / run / "model.keras") as archive:
            flat = json.loads(archive.read("config.json"))["config"]
        assert "params" not in flat and "encoder_layers" in flat
        loaded = keras.saving.load_model(ROOT / "predictions" / run / "model.keras")
        saved = vae_tf.load_run(ROOT / "predictions" / run, checkpoint="latest").params
        for name in ("encoder_layers", "decoder", "decoder_layers", "latent_size", "categorical_sizes", "objective",
                     "beta", "dip_lambda_d", "reconstruction_loss"):
            assert getattr(loaded.params, name) == getattr(saved, name), (run, name)
        assert loaded.image_shape == (saved.image_size or 64, saved.image_size or 64, 1)
