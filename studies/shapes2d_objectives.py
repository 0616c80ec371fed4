"""The large-scale study of Locatello et al. (2019) in miniature: five objectives at two hyper-parameter values each,
three seeds each, on shapes2d at 32x32, scored by five metrics; 30 runs of 5,000 steps (about 1.5 hours on 2 cores).

The values are two of each objective's six in disentanglement_lib's unsupervised study (beta_vae: beta 1 and 8;
beta_tcvae: beta 2 and 6; factor_vae: gamma 10 and 40; DIP-VAE-I: lambda_od 1 and 10 with lambda_d = 10 lambda_od;
DIP-VAE-II: lambda_od 1 and 10 with lambda_d = lambda_od). The model and decoder are params.py's defaults.
"""

from vae_tf.study import Study

study = Study(
    base=dict(dataset="shapes2d", image_size=32, beta=1.0, num_steps=5000, plot_step=1000, log_step=[],
              validation_step=1000, validation_tolerance=0, checkpoint_step=500, mig_step=0),
    grid=[
        {"objective": ["beta_vae"], "beta": [1.0, 8.0]},
        {"objective": ["beta_tcvae"], "beta": [2.0, 6.0]},
        {"objective": ["factor_vae"], "factor_gamma": [10.0, 40.0]},
        {"objective": ["dip_vae_i"], "dip_lambda_od": [1.0], "dip_lambda_d": [10.0]},
        {"objective": ["dip_vae_i"], "dip_lambda_od": [10.0], "dip_lambda_d": [100.0]},
        {"objective": ["dip_vae_ii"], "dip_lambda_od": [1.0], "dip_lambda_d": [1.0]},
        {"objective": ["dip_vae_ii"], "dip_lambda_od": [10.0], "dip_lambda_d": [10.0]},
    ],
    seeds=[0, 1, 2],
    metrics=["mig", "dci", "sap", "factor_vae", "beta_vae"],
    likelihood_images=200,
    likelihood_samples=100,
    select_by="mig",
)
