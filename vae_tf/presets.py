"""The original experiments (docs/presets.md) and one run per objective, as named sets of parameter overrides.

A preset sets `image_size` None and leaves `channels` alone (but `shapes2d_disentangle`, whose encoder is sized
for 64×64): the model follows the data set, so `--preset=10-Beta-VAE --dataset=shapes2d --num_steps=2000` runs the
same experiment on other data.
"""

# The VariationalAutoEncoder project: MNIST 28×28×1, latent 32, batch 64, Adam 4e-4, summed squared error
# (the loss its write-up reports). It gives no step counts: 60000 lets AE_1 finish its ramp (step 53000).
_VAE_PROJECT = dict(dataset="mnist", image_size=None, encoder_layers=[[64, 4, 2], [64, 4, 2], [256]],
                    decoder="deconv", decoder_layers=None, latent_size=32, batch_size=64, learning_rate=4e-4,
                    adam_beta_1=0.9, reconstruction_loss="squared_error", objective="beta_vae", kl_schedule="constant",
                    num_steps=60000, validation_step=500, validation_tolerance=0)

# The Beta-VAE project: CelebA 64×64×3, latent 32, batch 64, Adam 5e-4 (β1 0.5), summed squared error,
# validation every 500 steps keeping the best checkpoint, stopping after 20 checks without improvement.
_BETA_VAE_PROJECT = dict(dataset="celeb_a", image_size=None, encoder_layers=[[32, 4, 2]] * 4 + [[256], [256]],
                         decoder="deconv", decoder_layers=None, latent_size=32, batch_size=64, learning_rate=5e-4,
                         adam_beta_1=0.5, reconstruction_loss="squared_error", objective="beta_vae",
                         kl_schedule="constant", num_steps=1_000_000, validation_step=500, validation_tolerance=20)

# The schedule runs disable validation (a loss whose KL weight moves is not comparable across checks).
_SCHEDULED = dict(_BETA_VAE_PROJECT, kl_schedule="linear", validation_step=0, validation_tolerance=0)

# disentanglement_lib's unsupervised study (Locatello et al. 2019), on the embedded shapes2d: its conv encoder
# (2× [32,4,2], 2× [64,4,2], dense 256, latent 10, the decoder mirrored), Bernoulli loss, batch 64, Adam 1e-4,
# 300,000 steps; validation kept as a record but never stops a run. Each objective at the study's value named below.
_STUDY = dict(dataset="shapes2d", image_size=None,
              encoder_layers=[[32, 4, 2], [32, 4, 2], [64, 4, 2], [64, 4, 2], [256]], decoder="deconv",
              decoder_layers=None,
              latent_size=10, batch_size=64, learning_rate=1e-4, adam_beta_1=0.9, reconstruction_loss="bernoulli",
              objective="beta_vae", kl_schedule="constant", beta=1.0, num_steps=300_000,
              validation_step=5000, validation_tolerance=0)

_FASHION_MLP = dict(dataset="fashion_mnist", image_size=None, binarize=True, encoder_layers=[[500], [500]],
                    decoder="deconv", decoder_layers=[[500], [500]], latent_size=50, activation="relu",
                    reconstruction_loss="bernoulli", objective="beta_vae", kl_schedule="constant", beta=1.0,
                    batch_size=100, learning_rate=3e-4, num_steps=10000, validation_step=1000,
                    validation_tolerance=0, mig_step=0)

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
    "shapes2d_beta_vae": dict(_STUDY, beta=4.0),
    # C from 0 to C_max = 25 nats over the first 100,000 steps, weight γ = 1000
    "shapes2d_annealed_vae": dict(_STUDY, kl_schedule="capacity", beta=1000.0, kl_start_step=0, kl_end_step=100_000,
                                  kl_start_value=0.0, kl_end_value=25.0),
    "shapes2d_beta_tcvae": dict(_STUDY, objective="beta_tcvae", beta=6.0),
    "shapes2d_factor_vae": dict(_STUDY, objective="factor_vae", factor_gamma=40.0),
    "shapes2d_dip_vae_i": dict(_STUDY, objective="dip_vae_i", dip_lambda_od=10.0, dip_lambda_d=100.0),
    "shapes2d_dip_vae_ii": dict(_STUDY, objective="dip_vae_ii", dip_lambda_od=10.0, dip_lambda_d=10.0),
    # Not in the study: InfoVAE with the full KL (α = 0) and a strong MMD (λ = 1000); IWAE with K = 5.
    "shapes2d_info_vae": dict(_STUDY, objective="info_vae", info_alpha=0.0, info_lambda=1000.0),
    "shapes2d_iwae": dict(_STUDY, objective="iwae", iwae_samples=5),
    # params.py's default until the 32×32 one: the β-VAE project's encoder on shapes2d at its own 64×64, β = 4.
    "shapes2d_64": dict(dataset="shapes2d", image_size=None, encoder_layers=[[32, 4, 2]] * 4 + [[256], [256]],
                        decoder="deconv", decoder_layers=None, latent_size=10, activation="relu",
                        reconstruction_loss="bernoulli", objective="beta_vae", kl_schedule="constant", beta=4.0,
                        batch_size=64, learning_rate=5e-4, adam_beta_1=0.9, num_steps=6000),
    # The best disentanglement of shapes2d found for about half an hour of this 2-core CPU (docs/experiments/
    # disentangling.md): params.py's default model on shapes2d's own 64×64 (a fourth stride-2 conv), whose sprites' areas tell
    # the shapes apart better, trained 24,000 steps with a cosine learning-rate decay, so that it ends settled rather
    # than wherever the last step of a constant rate left it (MIG moved by ±0.03 between scores at a constant 1e-3).
    "shapes2d_disentangle": dict(dataset="shapes2d", image_size=64, encoder_layers=[[32, 4, 2]] * 4 + [[256], [256]],
                                 decoder="broadcast", decoder_layers=[[32, 1, 1]] * 3, latent_size=10,
                                 activation="relu", reconstruction_loss="bernoulli",
                                 objective="dip_vae_ii", dip_lambda_od=10.0, dip_lambda_d=100.0,
                                 kl_schedule="constant", beta=2.0, batch_size=64, learning_rate=1e-3,
                                 learning_rate_schedule="cosine", adam_beta_1=0.9, num_steps=24_000,
                                 validation_tolerance=0, mig_step=2500),
    # JointVAE's categorical beside params.py's model, the best of four schedules tried for shape on it (docs/
    # experiments/jointvae.md): it opens at step 5000, once x, y and scale have latents, free (gamma 2 towards log 3)
    # and kept in use by the marginal term. It does not put shape on the categorical: it splits the sprites by size and place.
    "shapes2d_joint": dict(dataset="shapes2d", image_size=32, encoder_layers=[[32, 4, 2]] * 3 + [[256], [256]],
                           decoder="broadcast", decoder_layers=[[32, 1, 1]] * 3, latent_size=10, activation="relu",
                           reconstruction_loss="bernoulli", objective="dip_vae_ii", dip_lambda_od=10.0,
                           dip_lambda_d=100.0, kl_schedule="constant", beta=2.0, batch_size=64, learning_rate=1e-3,
                           categorical_sizes=[3], temperature=0.67, categorical_gamma=2.0, categorical_capacity=None,
                           categorical_start_step=5000, categorical_end_step=5000, categorical_marginal_weight=30.0,
                           num_steps=14000, validation_tolerance=0, mig_step=2000),
    # M2 (Kingma et al. 2014) on shapes2d with shape labelled on 1% of the training images (6,636 of 663,552, 2,212 of
    # each shape): params.py's model at 32x32 (DIP-VAE-II on z, so that x, y and scale keep latents of their own
    # while the class y takes shape), a classifier of wider convolutions, which generalises from the labelled images
    # where the encoder's does not (docs/experiments/semi-supervised.md), and the labels weighted by alpha = 100.
    "shapes2d_m2": dict(dataset="shapes2d", image_size=32, encoder_layers=[[32, 4, 2]] * 3 + [[256], [256]],
                        decoder="broadcast", decoder_layers=[[32, 1, 1]] * 3, latent_size=10, activation="relu",
                        reconstruction_loss="bernoulli", model="m2", labels=6636, label_factor="shape",
                        classifier_layers=[[32, 3, 1]] + [[64, 4, 2]] * 3 + [[256]], classification_weight=100.0,
                        objective="dip_vae_ii", dip_lambda_od=10.0, dip_lambda_d=100.0, kl_schedule="constant",
                        beta=2.0, batch_size=64, learning_rate=1e-3, num_steps=8000, validation_step=1000,
                        validation_tolerance=0, mig_step=2000),
    # A first try in about a minute: params.py's model for 2,000 steps, which is enough for x, y and scale to take a
    # latent each (300 steps decode every image as the same grey blob); no MIG scoring (it renders 10,000 images).
    "quick": dict(dataset="shapes2d", image_size=32, encoder_layers=[[32, 4, 2]] * 3 + [[256], [256]],
                  decoder="broadcast", decoder_layers=[[32, 1, 1]] * 3, latent_size=10, activation="relu",
                  reconstruction_loss="bernoulli", objective="dip_vae_ii", dip_lambda_od=10.0, dip_lambda_d=100.0,
                  kl_schedule="constant", beta=2.0, batch_size=64, learning_rate=1e-3, num_steps=2000,
                  plot_step=500, validation_step=1000, mig_step=0),
    # A first real data set, offline (Debian's dataset-fashion-mnist): the VAE project's conv model as a plain VAE
    # with a Bernoulli decoder on dynamically binarised Fashion-MNIST, the likelihood papers' protocol
    # (docs/experiments/fashion_mnist.md).
    "fashion_mnist_vae": dict(_VAE_PROJECT, dataset="fashion_mnist", binarize=True, reconstruction_loss="bernoulli",
                              encoder_layers=[[32, 4, 2], [64, 4, 2], [256]], beta=1.0, learning_rate=1e-3,
                              num_steps=30000, validation_step=1000),
    # The seeds' own collapse experiment (the VAE project's "AE vs VAE", seed 001), offline on Fashion-MNIST: its conv
    # model and summed squared error, trained as an autoencoder (KL weight 0) for 3,000 steps, then switched to a VAE
    # at once, or (annealed) with the weight ramping to 1 over the next 10,000 steps, as its AE_1 did over 50,000
    # (docs/experiments/ae-to-vae.md).
    "fashion_mnist_ae_to_vae": dict(_VAE_PROJECT, dataset="fashion_mnist", kl_schedule="linear", kl_start_step=3000,
                                    kl_end_step=3000, kl_start_value=0.0, kl_end_value=1.0, num_steps=20000,
                                    plot_step=1000),
    "fashion_mnist_ae_to_vae_annealed": dict(_VAE_PROJECT, dataset="fashion_mnist", kl_schedule="linear",
                                             kl_start_step=3000, kl_end_step=13000, kl_start_value=0.0,
                                             kl_end_value=1.0, num_steps=20000, plot_step=1000),
    # The likelihood papers' protocol on Fashion-MNIST (docs/experiments/likelihood.md), as the Exemplar VAE's code runs
    # it (Norouzi et al. 2020, after Tomczak & Welling 2018): dynamically binarised training images, an MLP of two
    # gated hidden layers of 300 units each way, latent 40, batch 100, Adam 5e-4, validation on the whole validation
    # split every epoch, early stopping after 50 epochs without improvement (not counting the warm-up's), at most
    # 2,000 epochs, and their KL warm-up: the weight rising from 0 to 1 over the first 100 epochs. Its runs last
    # 200,000 to 550,000 steps: TensorBoard every 100 steps, or its file would reach ~0.3-0.7 GB.
    "fashion_mnist_mlp": dict(dataset="fashion_mnist", image_size=None, binarize=True, encoder_layers=[[300], [300]],
                              decoder="deconv", decoder_layers=[[300], [300]], latent_size=40, activation="glu",
                              reconstruction_loss="bernoulli", objective="beta_vae", kl_schedule="linear",
                              kl_start_step=0, kl_end_step=60_000, kl_start_value=0.0, kl_end_value=1.0,
                              beta=1.0, batch_size=100, learning_rate=5e-4, num_steps=1_200_000, validation_step=600,
                              validation_size=3000, validation_tolerance=50, plot_step=6000, mig_step=0,
                              tensorboard_step=100),
    # The semi-supervised comparison on Fashion-MNIST (docs/experiments/semi-supervised.md): 100 labels per class,
    # the papers' MLPs (2 x 500 hidden units, latent 50: Kingma et al. 2014; Maaløe et al. 2016) on dynamically
    # binarised images, Adam 3e-4, batch 100 labelled beside 100 unlabelled, 10,000 steps (about 17 epochs).
    "fashion_mnist_m2": dict(_FASHION_MLP, model="m2", labels=1000, label_factor="label"),
    "fashion_mnist_adgm": dict(_FASHION_MLP, model="adgm", labels=1000, label_factor="label"),
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
    "shapes2d_beta_vae": "disentanglement_lib study, beta-VAE (Higgins et al. 2017), beta 4",
    "shapes2d_annealed_vae": "disentanglement_lib study, AnnealedVAE (Burgess et al. 2018), C 0 -> 25 nats, gamma 1000",
    "shapes2d_beta_tcvae": "disentanglement_lib study, beta-TCVAE (Chen et al. 2018), beta 6",
    "shapes2d_factor_vae": "disentanglement_lib study, FactorVAE (Kim & Mnih 2018), gamma 40",
    "shapes2d_dip_vae_i": "disentanglement_lib study, DIP-VAE-I (Kumar et al. 2018), lambda_od 10, lambda_d 100",
    "shapes2d_dip_vae_ii": "disentanglement_lib study, DIP-VAE-II (Kumar et al. 2018), lambda_od 10, lambda_d 10",
    "shapes2d_info_vae": "InfoVAE (Zhao et al. 2017), MMD with alpha 0, lambda 1000, on the study's model",
    "shapes2d_iwae": "IWAE (Burda et al. 2016), K = 5, on the study's model",
    "shapes2d_64": "shapes2d at 64x64 with the beta-VAE project's encoder, beta 4, 6000 steps: the former default",
    "shapes2d_joint": "params.py's model with a 3-way categorical (JointVAE) opened at step 5000, 14000 steps: the "
                      "categorical splits the sprites by size and place, not shape (docs/experiments/jointvae.md)",
    "fashion_mnist_vae": "Fashion-MNIST 28x28, dynamically binarised, conv VAE (beta 1, latent 32, Bernoulli), "
                         "30000 steps: test log-likelihood with K = 1000",
    "fashion_mnist_mlp": "the likelihood papers' protocol on Fashion-MNIST: dynamically binarised, gated MLP 300-300, "
                         "latent 40, KL warm-up over 100 epochs, early stopping on the validation loss after it: the "
                         "VAE row of the likelihood table; "
                         "hierarchies, flows, priors and IWAE by --model, --flow, --prior and --objective",
    "fashion_mnist_m2": "Fashion-MNIST 28x28 binarised, M2 with 100 labels per class, MLP 500-500, latent 50, 10000 "
                        "steps: q(y|x)'s test error against logistic regression",
    "fashion_mnist_ae_to_vae": "the seeds' AE -> VAE switch on Fashion-MNIST: the VAE project's conv model, squared "
                               "error, KL weight 0 for 3000 steps then 1 at once, 20000 steps",
    "fashion_mnist_ae_to_vae_annealed": "the same switch annealed: the KL weight ramps from 0 at step 3000 to 1 at "
                                        "step 13000 (the seeds' AE_1, five times faster)",
    "fashion_mnist_adgm": "the same with ADGM (M2 and an auxiliary a of 50 dimensions)",
    "shapes2d_m2": "shapes2d 32x32, M2 (semi-supervised) with shape labelled on 1% of the training images, "
                   "DIP-VAE-II on z, alpha 100, 8000 steps: q(y|x) classifies shape, z keeps x, y and scale apart",
    "quick": "shapes2d 32x32, params.py's model for 2000 steps (about a minute): x, y and scale each on a latent",
    "shapes2d_disentangle": "shapes2d 64x64, DIP-VAE-II, beta 2, spatial broadcast decoder, 24000 steps, cosine "
                            "learning-rate decay: params.py's model at 64x64 trained ~35 min",
}
