"""The original experiments as named sets of parameter overrides (DESIGN §2).

A preset never sets `image_size` or `channels`: the model follows the data set, so
`--preset=10-Beta-VAE --dataset=shapes2d --num_steps=2000` runs the same experiment on other data.
"""

# The VariationalAutoEncoder project: MNIST 28×28×1, latent 32, batch 64, Adam 4e-4, summed squared error
# (the loss its write-up reports). It gives no step counts: 60000 lets AE_1 finish its ramp (step 53000).
_VAE_PROJECT = dict(dataset="mnist", encoder_layers=[[64, 4, 2], [64, 4, 2], [256]], decoder_layers=None,
                    latent_size=32, batch_size=64, learning_rate=4e-4, adam_beta_1=0.9,
                    reconstruction_loss="squared_error", kl_schedule="constant", num_steps=60000,
                    validation_step=500, validation_tolerance=0)

# The Beta-VAE project: CelebA 64×64×3, latent 32, batch 64, Adam 5e-4 (β1 0.5), summed squared error,
# validation every 500 steps keeping the best checkpoint, stopping after 20 checks without improvement.
_BETA_VAE_PROJECT = dict(dataset="celeb_a", encoder_layers=[[32, 4, 2]] * 4 + [[256], [256]], decoder_layers=None,
                         latent_size=32, batch_size=64, learning_rate=5e-4, adam_beta_1=0.5,
                         reconstruction_loss="squared_error", kl_schedule="constant",
                         num_steps=1_000_000, validation_step=500, validation_tolerance=20)

# The schedule runs disable validation (a loss whose KL weight moves is not comparable across checks).
_SCHEDULED = dict(_BETA_VAE_PROJECT, kl_schedule="linear", validation_step=0, validation_tolerance=0)

PRESETS = {
    "AE_0": dict(_VAE_PROJECT, beta=0.0),
    "AE_1": dict(_VAE_PROJECT, kl_schedule="linear", kl_start_step=3000, kl_end_step=53000,
                 kl_start_value=0.0, kl_end_value=1.0),
    "VAE_0": dict(_VAE_PROJECT, encoder_layers=[[500], [500]], decoder_layers=[[500]], beta=1.0),
    "MSE_0": dict(_VAE_PROJECT, beta=1.0),
    "VAE": dict(_BETA_VAE_PROJECT, beta=1.0),
    "10-Beta-VAE": dict(_BETA_VAE_PROJECT, beta=10.0),
    "100-Beta-VAE": dict(_BETA_VAE_PROJECT, beta=100.0),
    "1000-Beta-VAE": dict(_BETA_VAE_PROJECT, beta=1000.0),
    "10000-Beta-VAE": dict(_BETA_VAE_PROJECT, beta=10000.0),
    # min(10, step / 4000)
    "KLD_Anneal_40000_steps-10-Beta-VAE": dict(_SCHEDULED, kl_start_step=0, kl_end_step=40000,
                                               kl_start_value=0.0, kl_end_value=10.0, num_steps=50000),
    # max(1, 100 − step / 400)
    "KLD_Decrease_40000_steps-100to1-Beta-VAE": dict(_SCHEDULED, kl_start_step=0, kl_end_step=39600,
                                                     kl_start_value=100.0, kl_end_value=1.0, num_steps=50000),
    # max(1, 10000 − step / 10)
    "KLD_Decrease_100000_steps-10000to1-Beta-VAE": dict(_SCHEDULED, kl_start_step=0, kl_end_step=99990,
                                                        kl_start_value=10000.0, kl_end_value=1.0, num_steps=125000),
}
for _name, _overrides in PRESETS.items():
    _overrides["run_name"] = _name

DESCRIPTIONS = {
    "AE_0": "VAE project, MNIST conv model, KL weight 0: a plain autoencoder (good reconstructions, poor samples)",
    "AE_1": "VAE project, KL annealing: weight 0 through step 3000, then +1/50000 per step up to 1",
    "VAE_0": "VAE project, low-capacity MLP (500-500 encoder, 500 decoder), KL weight 1: recovers from collapse",
    "MSE_0": "VAE project, conv model, KL weight 1, squared error: posterior collapse (KL goes to 0)",
    "VAE": "beta-VAE project, CelebA, beta 1: the plain VAE",
    "10-Beta-VAE": "beta-VAE project, CelebA, beta 10: traversals change background colour and gender",
    "100-Beta-VAE": "beta-VAE project, CelebA, beta 100: traversals change background and shading",
    "1000-Beta-VAE": "beta-VAE project, CelebA, beta 1000: KL too strong, posterior collapse",
    "10000-Beta-VAE": "beta-VAE project, CelebA, beta 10000: KL too strong, posterior collapse",
    "KLD_Anneal_40000_steps-10-Beta-VAE": "beta-VAE project, weight min(10, step/4000), 50000 steps",
    "KLD_Decrease_40000_steps-100to1-Beta-VAE": "beta-VAE project, weight max(1, 100 - step/400), 50000 steps",
    "KLD_Decrease_100000_steps-10000to1-Beta-VAE": "beta-VAE project, weight max(1, 10000 - step/10), 125000 steps",
}
