# Training parameters for `python train.py`. Edit them here, or override any of them on the command
# line as --name=value (`python train.py --help` lists them all). Rerunning with the same run_name
# resumes that run; raise num_steps to extend it.

# --- run ---
run_name = "shapes2d"  # folder name of the run under output_dir; an existing run is resumed
output_dir = "predictions"  # folder that holds the run folders

# --- data ---
dataset = "shapes2d"  # shapes2d (embedded, offline) | mnist | fashion_mnist | celeb_a | dsprites | folder
data_dir = None  # folder: the images; dsprites: the npz (or its folder); tfds sets: prepared data; None = default
download = False  # let tensorflow-datasets download a missing data set (needs internet); otherwise offline only
image_size = 32  # resize images to image_size x image_size; None = the data set's own size (64 for shapes2d)
channels = None  # 1 (grayscale) or 3 (RGB); None = the data set's own (folder: 3)
binarize = False  # Bernoulli pixels: training batches binarised afresh each step, validation and test once, fixed

# --- model ---
encoder_layers = [[32, 4, 2], [32, 4, 2], [32, 4, 2], [256], [256]]  # [filters, kernel, stride] convs, then [units] dense
decoder = "broadcast"  # broadcast: spatial broadcast decoder (Watters et al. 2019) | deconv: dense then transposed convs
decoder_layers = [[32, 1, 1], [32, 1, 1], [32, 1, 1]]  # broadcast: [filters, kernel, 1] convs, None = Watters et al.'s
pixelcnn_conditioning = "global"  # decoder pixelcnn: global (z projected alike at every pixel) | spatial (z, x, y)
#   four [64, 3, 1]; deconv: None mirrors the encoder, else [units] dense then [filters, kernel, stride] transposed convs
model = "vae"  # vae: encoder, latent code, decoder | m2: semi-supervised, a classifier beside the code | adgm
latent_size = 10  # number of Gaussian (continuous) latent dimensions
upper_latent_sizes = []  # hierarchical, ladder: sizes of the stochastic layers above z_1, bottom first (e.g. [16, 8])
upper_layer_units = 100  # hierarchical, ladder: hidden units of the MLPs between stochastic layers
prior = "normal"  # the code's prior (layered: z_L's): normal (N(0, I)) | mog (a learned mixture) | vamp (VampPrior)
prior_components = 10  # mog, vamp: components of the prior (vamp: learned pseudo-inputs; the paper uses 500)
flow = "none"  # a normalizing flow on the posterior: none | planar | iaf (inverse autoregressive)
flow_length = 4  # planar, iaf: flow steps (0 = none)
categorical_sizes = []  # JointVAE: a categorical latent per entry, of that many categories (e.g. [3]); [] = none
temperature = 0.67  # categoricals: temperature of their concrete (Gumbel-softmax) relaxation while training
categorical_gamma = 30.0  # categoricals: weight of |KL_c - C_c|, their capacity term (Dupont 2018)
categorical_capacity = None  # categoricals: C_c (nats) reached at categorical_end_step; None = sum of log(sizes)
categorical_start_step = 0  # categoricals: step where C_c starts to rise from 0
categorical_end_step = 10000  # categoricals: step where C_c reaches categorical_capacity
categorical_marginal_weight = 0.0  # categoricals: weight of KL(average q(c|x) || uniform); 0 = JointVAE as published
categorical_independence = 0.0  # categoricals: weight of HSIC(Gaussian means, q(c|x)), so c repeats no Gaussian latent
independence_kernel = "linear"  # categoricals: HSIC's kernel on the means, linear (sum of squared covariances) | rbf
labels = 0  # m2, adgm: labelled training images in all, the same number of each class, drawn by seed
label_factor = None  # m2, adgm: the label they give: shapes2d's shape, scale, ...; fashion_mnist's label
classification_weight = None  # m2, adgm: weight of the labelled cross-entropy; None = 0.1 * training images / labels
auxiliary_size = None  # adgm: dimensions of the auxiliary variable a; None = latent_size
classifier_layers = None  # m2: q(y|x)'s own network, convs then dense layers as encoder_layers; None = encoder_layers
activation = "relu"  # hidden-layer activation: relu, leaky_relu, elu, gelu, silu, tanh, softplus, glu (gated)
reconstruction_loss = "bernoulli"  # bernoulli | squared_error | absolute_error, summed over pixels

# --- objective (docs/objectives.md: each one's paper and equation) ---
objective = "dip_vae_ii"  # beta_vae | beta_tcvae | factor_vae | dip_vae_i | dip_vae_ii | info_vae | iwae
tc_alpha = 1.0  # beta_tcvae: weight of the index-code mutual information (beta weights the total correlation)
tc_gamma = 1.0  # beta_tcvae: weight of the dimension-wise KL
tc_estimator = "mss"  # beta_tcvae: minibatch estimator of q(z): mss (stratified) | mws (weighted)
factor_gamma = 40.0  # factor_vae: weight of the discriminator's total-correlation estimate (KL weight: beta)
dip_lambda_od = 10.0  # dip_vae_i / dip_vae_ii: weight of the squared off-diagonal covariances (KL weight: beta)
dip_lambda_d = 100.0  # dip_vae_i / dip_vae_ii: weight of the squared diagonal deviations from 1
info_alpha = 0.0  # info_vae: KL weight (1 - info_alpha) * beta
info_lambda = 1000.0  # info_vae: MMD weight info_alpha + info_lambda - 1
mmd_kernel = "rbf"  # info_vae: rbf | imq (inverse multiquadric), both of scale 2 * latent_size
iwae_samples = 5  # iwae: importance samples per image (1 = the plain VAE's ELBO); needs beta = 1

# --- KL term (the weight of the objective's KL-type term: the KL, or beta_tcvae's total correlation) ---
kl_schedule = "constant"  # constant: beta | linear: kl_start_value -> kl_end_value | capacity: beta * |KL - C| | cyclical
beta = 2.0  # KL weight for constant; the multiplier of |KL - C| for capacity
kl_start_step = 0  # linear/capacity: step where the ramp starts
kl_end_step = 10000  # linear/capacity: step where the ramp ends
kl_start_value = 0.0  # linear: KL weight at kl_start_step; capacity: C (nats) at kl_start_step
kl_end_value = 1.0  # linear: KL weight at kl_end_step; capacity: C (nats) at kl_end_step
kl_cycles = 4  # cyclical: ramps between kl_start_step and kl_end_step (Fu et al. 2019)
kl_cycle_ratio = 0.5  # cyclical: share of each cycle the weight rises over; it holds kl_end_value for the rest
free_bits = 0.0  # nats per group of latents free of the KL penalty: max(free_bits, KL of the group); 0 = off
free_bits_groups = None  # free_bits: equal groups of latents (1 = the whole code); None = one per dimension
aggressive = False  # He et al. 2019: the encoder alone until its loss stops improving, then one decoder update
aggressive_check_updates = None  # aggressive: decoder updates between checks of I(x; z); None = an epoch (theirs)
pixel_dropout = 0.0  # decoder pixelcnn: share of its input pixels a training step hides (Bowman et al.'s word dropout)
svi_steps = 0  # Kim et al. 2018's semi-amortized VAE: SVI steps refining each posterior, differentiated through
svi_learning_rate = 1.0  # svi_steps: SVI's step size on the means and log variances (momentum 0.5, clipped)

# --- optimisation ---
batch_size = 64  # images per training step
learning_rate = 1e-3  # Adam learning rate
learning_rate_schedule = "constant"  # constant | cosine: from learning_rate down to 0 at num_steps
adam_beta_1 = 0.9  # Adam beta_1 (the beta-VAE project used 0.5)
max_grad_norm = 0.0  # clip each update's gradient to this global norm; 0 = off (He et al., Kim et al.: 5)
num_steps = 15000  # training steps in total
seed = 0  # seed of the data order, the sampling noise and the initial weights
init_from = None  # a run folder whose trained weights start this run (fine-tuning; the same model), read when it starts
init_checkpoint = "best"  # init_from: which of its checkpoints, best | latest | final (model.keras)
deterministic = True  # TensorFlow op determinism: the same params and seed give the same log.csv
nan_policy = "stop"  # non-finite loss: stop (keep the last checkpoint) | skip_batch (skip that update)

# --- devices and speed (docs/speed.md) ---
strategy = "default"  # default (one device) | mirrored (all local GPUs, or cpu_devices) | multi_worker (TF_CONFIG)
cpu_devices = 0  # split the CPU into this many logical devices, so mirrored can run without GPUs (0 = no split)
precision = "float32"  # float32 | mixed_bfloat16 (CPUs with AVX-512 BF16 or AMX, recent GPUs, TPUs) | mixed_float16 (GPUs)
jit_compile = False  # compile the training step and log_likelihood's evaluations with XLA
steps_per_call = 0  # training steps per compiled call between host round trips (0 = chosen from the step time)

# --- what gets written ---
plot_step = 500  # snapshot image every plot_step steps (0 = only at log_step)
log_step = [20, 50, 100, 200]  # extra early steps that also get a snapshot image
tensorboard_step = 1  # training figures to TensorBoard every tensorboard_step steps (log.csv keeps every step)
validation_step = 500  # validate every validation_step steps (0 = no validation)
validation_tolerance = 20  # stop after this many validations without improvement (0 = never); not during a KL ramp
validation_size = 1024  # held-out images per validation
checkpoint_step = 500  # resumable checkpoint every checkpoint_step steps
mig_step = 1000  # score MIG (published protocol) every mig_step steps and at the end into mig.csv; shapes2d/dsprites only (0 = never)
