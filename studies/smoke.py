"""A study to try the runner in a minute or two: 2 objectives x 2 KL weights, one seed, 40 steps of a tiny model."""

from vae_tf.study import Study

study = Study(
    base=dict(dataset="shapes2d", image_size=16, encoder_layers=[[16, 4, 2], [16, 4, 2], [64]],
              decoder_layers=[[16, 1, 1]], latent_size=4, batch_size=32, num_steps=40, plot_step=0, log_step=[],
              validation_step=20, validation_size=64, checkpoint_step=10, mig_step=0),
    grid={"objective": ["beta_vae", "beta_tcvae"], "beta": [1.0, 4.0]},
    seeds=[0],
    metrics=["mig", "sap"],
    likelihood_images=50,
    likelihood_samples=20,
)
