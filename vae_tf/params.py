"""Every training option: the frozen, validated `Params`, and `load_params` (file < preset < overrides)."""

import ast
import dataclasses
import difflib
import math
import runpy
import types
import typing
from pathlib import Path
from typing import Optional

from vae_tf.errors import UserError

Layers = list  # [[filters, kernel, stride] | [units], ...], docs/model.md


def _option(default, help):
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: [list(x) if isinstance(x, list) else x for x in default],
                                 metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Params:
    """Every training option. Built by `load_params`; validated on creation (raises `UserError`)."""

    run_name: str = _option("shapes2d", "folder name of the run under output_dir; an existing run is resumed")
    output_dir: str = _option("predictions", "folder that holds the run folders")
    dataset: str = _option("shapes2d", "data set: shapes2d (embedded, offline), mnist, fashion_mnist, celeb_a, dsprites, folder")
    data_dir: Optional[str] = _option(None, "where a data set's files are (folder: the images; dsprites: the npz; "
                                            "tfds sets: prepared data); None = tensorflow-datasets' default")
    download: bool = _option(False, "let tensorflow-datasets download and prepare a missing data set (needs internet)")
    binarize: bool = _option(False, "binary pixels for a Bernoulli decoder: each training batch drawn afresh from "
                                    "the grey levels (dynamic binarisation), validation and test drawn once, fixed")
    image_size: Optional[int] = _option(32, "resize images to image_size x image_size; None = the data set's own size")
    channels: Optional[int] = _option(None, "1 (grayscale) or 3 (RGB); None = the data set's own (folder: 3)")
    encoder_layers: Layers = _option([[32, 4, 2]] * 3 + [[256], [256]],
                                     "encoder: [filters, kernel, stride] convs then [units] dense layers")
    decoder: str = _option("broadcast", "deconv: dense layers, then transposed convs up to the image | broadcast: "
                                        "the spatial broadcast decoder (Watters et al. 2019), z tiled over the image "
                                        "with x, y coordinate channels, then stride-1 convs | pixelcnn: a gated "
                                        "PixelCNN conditioned on z (van den Oord et al. 2016), autoregressive over "
                                        "the pixels")
    decoder_layers: Optional[Layers] = _option([[32, 1, 1]] * 3,
                                               "deconv: [units] dense then [filters, kernel, stride] transposed convs, "
                                               "None = mirror the encoder; broadcast: [filters, kernel, 1] convs, "
                                               "None = Watters et al.'s four [64, 3, 1]; pixelcnn: gated layers "
                                               "[filters, odd kernel, 1], None = five [32, 5, 1]")
    pixelcnn_conditioning: str = _option("global", "decoder pixelcnn: how z reaches its gates (van den Oord et al. "
                                                   "2016, §2.3): global (one projection for every pixel) | spatial "
                                                   "(a map of z and each pixel's coordinates: z can say where)")
    model: str = _option("vae", "model family: vae (encoder, latent code, decoder; docs/latents.md) | m2 (Kingma et "
                                "al. 2014's semi-supervised model: a classifier q(y|x) beside the code) | adgm (Maaløe et al. 2016: M2 "
                                "with an auxiliary variable a; docs/model.md) | hierarchical (Burda et al. 2016's "
                                "stochastic layers, inferred bottom-up) | ladder (the Ladder VAE, Sønderby et al. "
                                "2016)")
    latent_size: int = _option(10, "number of Gaussian (continuous) latent dimensions (hierarchical, ladder: of z_1, "
                                   "the layer the decoder reads)")
    upper_latent_sizes: list = _option([], "hierarchical, ladder: the sizes of the stochastic layers above z_1, bottom "
                                           "first (Burda et al.: [50] above 100; Sønderby et al.: [32, 16, 8, 4] above "
                                           "64)")
    upper_layer_units: int = _option(100, "hierarchical, ladder: hidden units of the two-layer MLPs between the "
                                          "stochastic layers (Burda et al.: 100)")
    prior: str = _option("normal", "the Gaussian code's prior (hierarchical, ladder: the top layer's): normal (N(0, "
                                   "I), KL in closed form) | mog (a mixture of prior_components learned Gaussians) | "
                                   "vamp (the VampPrior of Tomczak & Welling 2018: the encoder's posteriors of "
                                   "prior_components learned pseudo-inputs); a learned prior's KL is a one-sample "
                                   "estimate")
    prior_components: int = _option(10, "mog, vamp: components of the prior (vamp: pseudo-inputs; the paper uses 500)")
    flow: str = _option("none", "a normalizing flow on the Gaussian posterior, the decoder reading its output: none | "
                                "planar (Rezende & Mohamed 2015) | iaf (inverse autoregressive, Kingma et al. "
                                "2016); its KL is a one-sample estimate")
    flow_length: int = _option(4, "planar, iaf: flow steps K (0 = the Gaussian posterior itself)")
    categorical_sizes: list = _option([], "JointVAE (Dupont 2018): a categorical latent per entry, of that many "
                                          "categories (>= 2), beside the Gaussian ones; [] = none")
    temperature: float = _option(0.67, "categoricals: temperature of their concrete (Gumbel-softmax) relaxation while "
                                       "training (> 0; Dupont 2018: 0.67)")
    categorical_gamma: float = _option(30.0, "categoricals: weight gamma of |KL_c - C_c|, the categoricals' capacity term")
    categorical_capacity: Optional[float] = _option(None, "categoricals: C_c at categorical_end_step in nats, at most "
                                                          "the sum of log(size); None = that sum")
    categorical_start_step: int = _option(0, "categoricals: step where C_c starts to rise from 0 (aggressive: decoder "
                                             "update)")
    categorical_end_step: int = _option(10000, "categoricals: step where C_c reaches categorical_capacity "
                                               "(aggressive: decoder update)")
    categorical_marginal_weight: float = _option(0.0, "categoricals: weight of KL(average q(c|x) || uniform), which "
                                                      "keeps every category in use (0 = JointVAE as published)")
    categorical_independence: float = _option(0.0, "categoricals: weight of HSIC between the Gaussian means and the "
                                                    "categoricals' probabilities, which keeps a categorical from "
                                                    "repeating a Gaussian latent (0 = none)")
    independence_kernel: str = _option("linear", "categoricals: HSIC's kernel on the Gaussian means, linear (HSIC = "
                                                 "the sum of squared covariances) | rbf (any dependence)")
    labels: int = _option(0, "m2, adgm: labelled training images in all, the same number of each class, drawn by seed and "
                             "saved in the run folder (labelled.csv)")
    label_factor: Optional[str] = _option(None, "m2, adgm: the label the labelled images give, a factor of shapes2d or "
                                                "dsprites (e.g. shape) or mnist's and fashion_mnist's label")
    classification_weight: Optional[float] = _option(None, "m2, adgm: alpha, the weight of the labelled batch's "
                                                           "cross-entropy of q(y|x); None = 0.1 * N / labels (the "
                                                           "paper's 0.1 * N, N the training images)")
    auxiliary_size: Optional[int] = _option(None, "adgm: dimensions of the auxiliary variable a (None = "
                                                  "latent_size)")
    classifier_layers: Optional[Layers] = _option(None, "m2: the network of the classifier q(y|x), [filters, "
                                                        "kernel, stride] convs then [units] dense layers; None = "
                                                        "encoder_layers")
    activation: str = _option("relu", "hidden-layer activation: relu, leaky_relu, elu, gelu, silu, tanh, softplus, "
                                      "glu (gated units: each layer a ⊙ σ(b), twice its width before the gate)")
    reconstruction_loss: str = _option("bernoulli", "bernoulli (cross-entropy) | squared_error | absolute_error, summed over pixels")
    objective: str = _option("dip_vae_ii", "training objective: beta_vae | beta_tcvae | factor_vae | dip_vae_i | dip_vae_ii | "
                                         "info_vae | iwae (docs/objectives.md); beta / kl_schedule weight its KL-type term")
    kl_schedule: str = _option("constant", "KL weight schedule: constant (= beta) | linear (kl_start_value -> kl_end_value) | capacity (beta * |KL - C|) | cyclical (kl_cycles linear ramps)")
    beta: float = _option(2.0, "KL weight for constant; the multiplier of |KL - C| for capacity")
    kl_start_step: int = _option(0, "linear/capacity: step where the ramp starts (value kl_start_value before it; "
                                    "aggressive: decoder update)")
    kl_end_step: int = _option(10000, "linear/capacity: step where the ramp ends (value kl_end_value after it; "
                                      "aggressive: decoder update)")
    kl_start_value: float = _option(0.0, "linear: KL weight at kl_start_step; capacity: C in nats at kl_start_step")
    kl_end_value: float = _option(1.0, "linear: KL weight at kl_end_step; capacity: C in nats at kl_end_step")
    kl_cycles: int = _option(4, "cyclical: ramps between kl_start_step and kl_end_step (Fu et al. 2019 use 4)")
    kl_cycle_ratio: float = _option(0.5, "cyclical: the share of each cycle the weight rises over, from "
                                         "kl_start_value to kl_end_value; it holds kl_end_value for the rest")
    free_bits: float = _option(0.0, "nats each group of latents keeps free of the KL penalty: the loss takes "
                                    "max(free_bits, the batch's mean KL of the group) (Kingma et al. 2016); 0 = off")
    free_bits_groups: Optional[int] = _option(None, "free_bits: equal groups of the Gaussian latents (1 = the whole "
                                                    "code); None = each dimension its own group")
    aggressive: bool = _option(False, "aggressive inference training (He et al. 2019): the encoder alone on fresh "
                                      "batches until its loss stops improving, then one decoder update, until "
                                      "I(x; z) on the validation images stops rising; num_steps counts every update, "
                                      "the KL schedules' and categoricals' steps (kl_end_step...) decoder updates")
    aggressive_check_updates: Optional[int] = _option(None, "aggressive: decoder updates between two checks of "
                                                            "I(x; z), the first validation after each is one; the "
                                                            "fifth check short of the best ends the phase; None = "
                                                            "an epoch of the training images (He et al.)")
    svi_steps: int = _option(0, "the semi-amortized VAE (Kim et al. 2018): steps of stochastic variational "
                                "inference that refine each image's posterior from the encoder's, differentiated "
                                "through in training; 0 = off (Kim et al. use 20)")
    pixel_dropout: float = _option(0.0, "decoder pixelcnn: the share of the pixels it reads that a training step "
                                        "replaces by 0.5, unknown (Bowman et al. 2016's word dropout): it must read "
                                        "z to predict them; the loss still scores every pixel; 0 = off")
    svi_learning_rate: float = _option(1.0, "svi_steps: SVI's step size on the means and log variances, for the "
                                            "batch's mean loss (Kim et al.'s 1; momentum 0.5, gradients clipped)")
    tc_alpha: float = _option(1.0, "beta_tcvae: weight alpha of the index-code mutual information (beta weights the total correlation)")
    tc_gamma: float = _option(1.0, "beta_tcvae: weight gamma of the dimension-wise KL")
    tc_estimator: str = _option("mss", "beta_tcvae: minibatch estimator of q(z), mss (stratified) | mws (weighted) (Chen et al. 2018, app. C)")
    factor_gamma: float = _option(40.0, "factor_vae: weight gamma of the discriminator's total-correlation estimate")
    dip_lambda_od: float = _option(10.0, "dip_vae_i / dip_vae_ii: weight of the squared off-diagonal covariances")
    dip_lambda_d: float = _option(100.0, "dip_vae_i / dip_vae_ii: weight of the squared diagonal deviations from 1")
    info_alpha: float = _option(0.0, "info_vae: alpha; the KL weight is (1 - alpha) * the schedule's")
    info_lambda: float = _option(1000.0, "info_vae: lambda; the MMD weight is alpha + lambda - 1")
    mmd_kernel: str = _option("rbf", "info_vae: MMD kernel, rbf | imq (inverse multiquadric), scale 2 * latent_size")
    iwae_samples: int = _option(5, "iwae: importance samples K per image (K = 1 is the VAE's ELBO)")
    batch_size: int = _option(64, "images per training step")
    learning_rate: float = _option(1e-3, "Adam learning rate")
    learning_rate_schedule: str = _option("constant", "constant: learning_rate throughout | cosine: from learning_rate "
                                                      "down to 0 at num_steps (Loshchilov & Hutter 2017)")
    adam_beta_1: float = _option(0.9, "Adam beta_1 (the beta-VAE project used 0.5)")
    max_grad_norm: float = _option(0.0, "clip each update's gradient (all the model's weights', summed over the "
                                        "replicas; not FactorVAE's discriminator's) to this global norm; 0 = off "
                                        "(He et al. 2019 and Kim et al. 2018 clip at 5)")
    num_steps: int = _option(15000, "training steps in total; raise it and rerun to extend a finished run")
    plot_step: int = _option(500, "write a snapshot image every plot_step steps (0 = only log_step snapshots)")
    log_step: list = _option([20, 50, 100, 200], "extra early steps that also get a snapshot image")
    tensorboard_step: int = _option(1, "write the training figures to TensorBoard every tensorboard_step steps; "
                                       "log.csv keeps every step (at 1, TensorBoard's file grows about 1.2 KB "
                                       "a step; 100 suits runs of 100,000s of steps)")
    validation_step: int = _option(500, "validate every validation_step steps (0 = no validation)")
    validation_tolerance: int = _option(20, "stop after this many validations without improvement (0 = never stop "
                                            "early); while a schedule ramps (to kl_end_step, or a categorical "
                                            "capacity to categorical_end_step) validations are logged, not compared")
    validation_size: int = _option(1024, "held-out images per validation")
    checkpoint_step: int = _option(500, "save a resumable checkpoint every checkpoint_step steps")
    mig_step: int = _option(1000, "score MIG (published protocol) every mig_step steps and at the end into mig.csv "
                                  "(data sets with known factors: shapes2d, dsprites; 0 = never)")
    seed: int = _option(0, "seed of the data order, the sampling noise and the initial weights")
    init_from: Optional[str] = _option(None, "a run folder whose trained weights start this run, to fine-tune them "
                                             "(with another objective, β or schedule): the same model, weight for "
                                             "weight, activation and reconstruction loss; the optimizer and the step "
                                             "start afresh; read when the run starts, not when it resumes")
    init_checkpoint: str = _option("best", "init_from: which of its checkpoints, best | latest | final (model.keras)")
    deterministic: bool = _option(True, "TensorFlow op determinism: the same params and seed give the same log.csv")
    nan_policy: str = _option("stop", "non-finite loss: stop (keep the last checkpoint) | skip_batch (skip the update)")
    strategy: str = _option("default", "default (one device) | mirrored (local GPUs, or cpu_devices) | "
                                       "multi_worker (machines listed in TF_CONFIG)")
    cpu_devices: int = _option(0, "split the CPU into this many logical devices for mirrored (0 = no split)")
    precision: str = _option("float32", "float32 | mixed_bfloat16 (CPUs with AVX-512 BF16 or AMX, recent GPUs, TPUs) | "
                                        "mixed_float16 (GPUs; the loss is scaled)")
    jit_compile: bool = _option(False, "compile the training step and log_likelihood's evaluations with XLA")
    steps_per_call: int = _option(0, "training steps per compiled call, between host round trips (0 = chosen from "
                                     "the step time)")

    def __post_init__(self):
        # The layers above z_1 have a parameter of their own: a list here is someone asking for them.
        _require(not isinstance(self.latent_size, (list, tuple)),
                 f"latent_size is the code's size (z_1's in a layered model), an integer, got {self.latent_size!r}: "
                 f"the layers above z_1 take upper_latent_sizes, e.g. model ladder, latent_size 4, "
                 f"upper_latent_sizes [2]")
        for field in dataclasses.fields(self):
            _check_type(field.name, getattr(self, field.name), _field_types()[field.name])
        _check_values(self)

    def to_dict(self):
        return dataclasses.asdict(self)


# Parameters that change the model's variables (or where they start), its arithmetic or the data order: a resumed run
# may not change them (mixed_float16 also adds the loss scale to the checkpoint).
STRUCTURAL = ("dataset", "data_dir", "image_size", "channels", "encoder_layers", "decoder", "decoder_layers",
              "pixelcnn_conditioning",
              "model", "latent_size", "categorical_sizes", "activation", "reconstruction_loss", "objective", "batch_size",
              "seed", "precision", "binarize", "labels", "label_factor", "auxiliary_size", "classifier_layers",
              "aggressive", "aggressive_check_updates", "svi_steps",
              "prior", "prior_components", "flow", "flow_length", "upper_latent_sizes", "upper_layer_units",
              "init_from", "init_checkpoint")

# Parameters added after run folders were first written, with the value every run written before them had: a
# params.json without one of them means that value, not today's default.
ADDED_LATER = {"decoder": "deconv"}

# The names each registry answers to (datasets.DATASETS, losses.RECONSTRUCTION_LOSSES, schedules.KL_SCHEDULES,
# objectives.OBJECTIVES, models.MODELS), here so that every parameter is checked before TensorFlow loads (4-8 s);
# tests/test_user_data.py pins each registry's keys, and the data sets' sizes, to these.
DATASETS = ("shapes2d", "mnist", "fashion_mnist", "celeb_a", "dsprites", "folder")
# Their own image sizes (a folder's is its images'): the conv strides must divide the size a run trains at.
NATIVE_SIZES = {"shapes2d": 64, "mnist": 28, "fashion_mnist": 28, "celeb_a": 64, "dsprites": 64}
RECONSTRUCTION_LOSSES = ("bernoulli", "squared_error", "absolute_error")
KL_SCHEDULES = ("constant", "linear", "capacity", "cyclical")
OBJECTIVES = ("beta_vae", "beta_tcvae", "factor_vae", "dip_vae_i", "dip_vae_ii", "info_vae", "iwae")
MODELS = ("vae", "m2", "adgm", "hierarchical", "ladder")
# A run's checkpoints by name (vae_tf.checkpoints.load_run): here for `init_checkpoint`, checked with the rest.
CHECKPOINTS = ("latest", "best", "final")
# Models of several stochastic layers (vae_tf.models.layered).
LAYERED_MODELS = ("hierarchical", "ladder")
# Models that classify as well as encode: they train on labelled images beside the others.
LABELLED_MODELS = ("m2", "adgm")
# What the labelled models train: their bound, weighted by beta and the KL schedules, and DIP-VAE-II's penalty on the
# covariance of the aggregate posterior, which the mixture over y gives exactly (vae_tf.models.m2).
LABELLED_OBJECTIVES = ("beta_vae", "dip_vae_ii")
# Objectives that estimate their penalty from the minibatch's codes: a batch of one has no statistics.
BATCH_STATISTICS = ("beta_tcvae", "factor_vae", "dip_vae_i", "dip_vae_ii", "info_vae")
TC_ESTIMATORS = ("mss", "mws")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "softplus", "glu")
NAN_POLICIES = ("stop", "skip_batch")
STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
LEARNING_RATE_SCHEDULES = ("constant", "cosine")
DECODERS = ("deconv", "broadcast", "pixelcnn")
PIXELCNN_CONDITIONINGS = ("global", "spatial")
MMD_KERNELS = ("rbf", "imq")
PRIORS = ("normal", "mog", "vamp")
FLOWS = ("none", "planar", "iaf")
# Objectives that read the code's KL through its estimate alone: the others assume a Gaussian posterior and the prior
# N(0, I) (β-TCVAE's dimension-wise KL, DIP-VAE's identity covariance, InfoVAE's prior samples, FactorVAE's KL).
SAMPLED_KL_OBJECTIVES = ("beta_vae", "iwae")
INDEPENDENCE_KERNELS = ("linear", "rbf")


def _field_types():
    return typing.get_type_hints(Params)


def names():
    return [f.name for f in dataclasses.fields(Params)]


def defaults():
    """Every parameter's built-in default, unvalidated: what `--help` shows without importing TensorFlow."""
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(Params)}


def help_text(name):
    return next(f.metadata["help"] for f in dataclasses.fields(Params) if f.name == name)


def saved_params(values):
    """The Params of a run's saved values (params.json, params_history.jsonl), however old the run."""
    return Params(**{**ADDED_LATER, **values})


def load_params(path="params.py", preset=None, overrides=None):
    """Params from a params file, then a preset's overrides, then `overrides` (a dict; str values are parsed)."""
    values = read_params_file(path) if path is not None else {}
    if preset is not None:
        from vae_tf.presets import PRESETS
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}{_suggest(preset, PRESETS)}; "
                            f"`python train.py --list-presets` lists them")
        values.update(PRESETS[preset])
    for name, value in (overrides or {}).items():
        check_name(name, "override")
        values[name] = parse_value(name, value) if isinstance(value, str) else value
    return Params(**values)


def read_params_file(path):
    """The top-level assignments of a plain Python params file, as a dict of known names."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"params file {str(path)!r} not found; pass --params=FILE or run from the project folder")
    try:
        namespace = runpy.run_path(str(path))
    except SyntaxError as error:
        raise UserError(f"{path}:{error.lineno}: syntax error: {error.msg}") from None
    except Exception as error:  # the file is the user's code: report what it raised, as one line
        raise UserError(f"{path} raised {type(error).__name__}: {error}") from None
    values = {k: v for k, v in namespace.items()
              if not k.startswith("_") and not isinstance(v, (types.ModuleType, types.FunctionType, type))}
    for name in values:
        check_name(name, str(path), "; a name of your own in a params file must start with _")
    return values


def parse_value(name, text):
    """A command-line string to the parameter's type: str as is, everything else as a Python literal."""
    kind = _field_types()[name]
    if text == "None" and _is_optional(kind):
        return None
    if _base(kind) is str:
        return text
    if _base(kind) is bool and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _base(kind) is list and not text.lstrip().startswith("["):
        text = f"[{text}]"  # --log_step=100,200
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise UserError(f"{name}: cannot read {text!r} as {_describe(kind)}") from None


def check_name(name, source, advice=""):
    if name not in names():
        raise UserError(f"unknown parameter {name!r} in {source}{_suggest(name, names())}; "
                        f"`python train.py --help` lists them{advice}")


def _suggest(word, choices):
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_optional(kind):
    return typing.get_origin(kind) is typing.Union and type(None) in typing.get_args(kind)


def _base(kind):
    if _is_optional(kind):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return typing.get_origin(kind) or kind


def _describe(kind):
    words = {int: "an integer", float: "a number", str: "a string", list: "a list", bool: "true/false"}
    text = words[_base(kind)]
    return f"{text} or None" if _is_optional(kind) else text


def _check_type(name, value, kind):
    if value is None and _is_optional(kind):
        return
    base = _base(kind)
    ok = {int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str),
          list: isinstance(value, (list, tuple)),
          bool: isinstance(value, bool)}[base]
    if not ok:
        raise UserError(f"{name} must be {_describe(kind)}, got {value!r} ({type(value).__name__})")


def _require(condition, message):
    if not condition:
        raise UserError(message)


def _check_layers(name, layers, conv_first):
    layers = [list(layer) if isinstance(layer, (list, tuple)) else layer for layer in layers]
    shape_ok = all(isinstance(layer, list) and len(layer) in (1, 3)
                   and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in layer)
                   for layer in layers)
    _require(layers and shape_ok, f"{name} must be a non-empty list of [filters, kernel, stride] and [units] "
                                  f"entries of positive integers, got {layers!r}")
    kinds = [len(layer) == 3 for layer in layers]
    ordered = kinds == sorted(kinds, reverse=conv_first)
    order = "convs before dense layers" if conv_first else "dense layers before (transposed) convs"
    _require(ordered, f"{name} must list {order}, got {layers!r}")


def conv_stride_product(layers):
    return math.prod(layer[2] for layer in layers if len(layer) == 3)


def _check_values(p):
    _require(p.run_name and p.run_name not in (".", "..") and "/" not in p.run_name and "\\" not in p.run_name,
             f"run_name must be a plain folder name (no '/'), got {p.run_name!r}")
    _check_registries(p)
    _check_network_layers(p)
    _check_ranges(p)
    _check_kl_schedule(p)
    _check_free_bits(p)
    _check_aggressive(p)
    _check_svi(p)
    _check_prior(p)
    _check_layers_of_latents(p)
    _require(all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in p.log_step),
             f"log_step must be a list of steps >= 0, got {p.log_step!r}")
    _require(p.channels in (None, 1, 3), f"channels must be 1, 3 or None, got {p.channels}")
    _require(p.init_from is None or p.init_from.strip(), "init_from must name a run folder, or be None")
    _require(p.init_from is not None or p.init_checkpoint == "best",
             "init_checkpoint picks a checkpoint of init_from's run: set init_from too")
    _check_categoricals(p)
    _check_pixelcnn(p)
    _require(not p.binarize or p.reconstruction_loss == "bernoulli",
             f"binarize draws binary pixels for a Bernoulli decoder; use reconstruction_loss bernoulli with it "
             f"(got {p.reconstruction_loss})")
    _check_strategy(p)
    if p.image_size is not None or p.dataset in NATIVE_SIZES:
        check_image_size(p, p.image_size or NATIVE_SIZES[p.dataset])
    _check_objective(p)
    _check_labels(p)


def _check_registries(p):
    """Every named choice is one its registry holds (with a suggestion for a near miss)."""
    for name, registry in (("dataset", DATASETS), ("reconstruction_loss", RECONSTRUCTION_LOSSES),
                           ("kl_schedule", KL_SCHEDULES), ("activation", ACTIVATIONS),
                           ("nan_policy", NAN_POLICIES), ("strategy", STRATEGIES), ("objective", OBJECTIVES),
                           ("tc_estimator", TC_ESTIMATORS), ("mmd_kernel", MMD_KERNELS),
                           ("independence_kernel", INDEPENDENCE_KERNELS), ("precision", PRECISIONS),
                           ("decoder", DECODERS), ("pixelcnn_conditioning", PIXELCNN_CONDITIONINGS),
                           ("learning_rate_schedule", LEARNING_RATE_SCHEDULES),
                           ("model", MODELS), ("prior", PRIORS), ("flow", FLOWS),
                           ("init_checkpoint", CHECKPOINTS)):
        value = getattr(p, name)
        _require(value in registry, f"{name} {value!r} is not one of {', '.join(registry)}{_suggest(value, registry)}")


def _check_network_layers(p):
    """The encoder's and decoder's layer lists, and what each decoder can build from them."""
    _check_layers("encoder_layers", p.encoder_layers, conv_first=True)
    _require(p.decoder != "pixelcnn" or p.decoder_layers is None or p.decoder_layers,
             "decoder pixelcnn needs at least one gated layer (a PixelCNN of depth 0 reads no pixel): set "
             "decoder_layers, e.g. [[32, 5, 1]] * 5, or None for that default")
    if p.decoder_layers is not None:
        _check_layers("decoder_layers", p.decoder_layers, conv_first=False)
        _require(p.decoder != "broadcast" or all(len(layer) == 3 and layer[2] == 1 for layer in p.decoder_layers),
                 f"decoder broadcast runs stride-1 convs over the whole image: decoder_layers must be [filters, "
                 f"kernel, 1] entries, got {p.decoder_layers!r}")
        _require(p.decoder != "pixelcnn" or all(len(layer) == 3 and layer[2] == 1 and layer[1] % 2 == 1
                                                for layer in p.decoder_layers),
                 f"decoder pixelcnn's layers are gated layers [filters, odd kernel, 1], got {p.decoder_layers!r}")
        # The broadcast default's layers under --decoder=deconv would project z straight onto the whole image.
        _require(p.decoder != "deconv" or any(len(layer) == 1 or layer[2] > 1 for layer in p.decoder_layers),
                 f"decoder deconv with decoder_layers {p.decoder_layers!r} (no dense layer, no stride above 1) "
                 f"would project z straight onto the whole image; pass --decoder_layers=None to mirror the encoder")


def _check_ranges(p):
    """Counts, steps and weights within their ranges."""
    for name in ("latent_size", "batch_size", "num_steps", "checkpoint_step", "tensorboard_step", "validation_size",
                 "iwae_samples"):
        _require(getattr(p, name) >= 1, f"{name} must be at least 1, got {getattr(p, name)}")
    for name in ("plot_step", "validation_step", "validation_tolerance", "mig_step", "kl_start_step", "kl_end_step",
                 "seed", "cpu_devices", "steps_per_call", "categorical_start_step", "categorical_end_step"):
        _require(getattr(p, name) >= 0, f"{name} must be 0 or more, got {getattr(p, name)}")
    for name in ("beta", "kl_start_value", "kl_end_value", "tc_alpha", "tc_gamma", "factor_gamma", "dip_lambda_od",
                 "dip_lambda_d", "info_alpha", "info_lambda", "categorical_gamma", "categorical_marginal_weight",
                 "categorical_independence"):
        value = getattr(p, name)
        _require(math.isfinite(value) and value >= 0, f"{name} must be a finite number >= 0, got {value}")
    _require(math.isfinite(p.learning_rate) and p.learning_rate > 0, f"learning_rate must be > 0, got {p.learning_rate}")
    _require(0 <= p.adam_beta_1 < 1, f"adam_beta_1 must be in [0, 1), got {p.adam_beta_1}")
    _require(math.isfinite(p.max_grad_norm) and p.max_grad_norm >= 0,
             f"max_grad_norm must be a finite number >= 0 (0 = off), got {p.max_grad_norm}")


def _check_kl_schedule(p):
    """A cyclical schedule's cycles and ratio, and a ramp that ends after it starts."""
    _require(p.kl_cycles >= 1, f"kl_cycles must be at least 1 (one ramp is kl_schedule linear), got {p.kl_cycles}")
    _require(0 < p.kl_cycle_ratio <= 1, f"kl_cycle_ratio must be in (0, 1], got {p.kl_cycle_ratio}")
    _require(p.kl_schedule != "cyclical" or p.kl_end_step - p.kl_start_step >= p.kl_cycles,
             f"kl_schedule cyclical needs at least a step per cycle: {p.kl_cycles} cycles between kl_start_step "
             f"{p.kl_start_step} and kl_end_step {p.kl_end_step}")
    _require(p.kl_end_step >= p.kl_start_step,
             f"kl_end_step ({p.kl_end_step}) precedes kl_start_step ({p.kl_start_step}); the ramp must end after it starts")


def _check_strategy(p):
    """What works only on one device: skipping a batch, XLA, float16's loss scale."""
    _require(p.nan_policy == "stop" or p.strategy == "default",
             "nan_policy skip_batch works with strategy default only (replicas would have to agree to skip "
             "inside the compiled step); use nan_policy stop with several devices")
    _require(not p.jit_compile or p.strategy == "default",
             "jit_compile works with strategy default only (XLA cannot compile the replicas' gradient all-reduce "
             "inside the step); use jit_compile False with several devices")
    _require(p.precision != "mixed_float16" or p.strategy == "default",
             "precision mixed_float16 works with strategy default only (its loss scale is updated inside a "
             "conditional that replicas cannot synchronise); use mixed_bfloat16 with several devices")


FREE_BITS_OBJECTIVES = ("beta_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "info_vae")  # whose penalty has a KL


def _check_free_bits(p):
    _require(math.isfinite(p.free_bits) and p.free_bits >= 0, f"free_bits must be a finite number >= 0 (nats), got "
                                                              f"{p.free_bits}")
    if p.free_bits == 0:
        _require(p.free_bits_groups is None, "free_bits_groups splits the latents for free_bits: set free_bits too")
        return
    _require(p.model == "vae", f"free_bits acts on the VAE's KL; model {p.model} weighs its own bound: drop it")
    _require(p.objective in FREE_BITS_OBJECTIVES,
             f"free_bits frees nats of the KL, which objective {p.objective} does not penalise as one term; use "
             f"{', '.join(FREE_BITS_OBJECTIVES)}")
    _require(p.kl_schedule != "capacity", "free_bits and kl_schedule capacity both set how many nats the KL may "
                                          "hold: use one")
    groups = p.free_bits_groups
    _require(groups is None or (groups >= 1 and p.latent_size % groups == 0),
             f"free_bits_groups must divide latent_size {p.latent_size} into equal groups, got {groups}")


def _check_pixelcnn(p):
    """The PixelCNN decoder and its own options (pixel_dropout, pixelcnn_conditioning)."""
    _require(0 <= p.pixel_dropout < 1, f"pixel_dropout is a share of the pixels, in [0, 1), got {p.pixel_dropout}")
    _require(not p.pixel_dropout or p.decoder == "pixelcnn",
             f"pixel_dropout hides pixels from a decoder that reads them; decoder {p.decoder} reads z alone: use "
             f"decoder pixelcnn, or drop pixel_dropout")
    _require(not p.pixel_dropout or p.binarize, "pixel_dropout marks a hidden pixel 0.5, which a grey image holds "
                                                "too: set binarize True")
    _require(p.pixelcnn_conditioning == "global" or p.decoder == "pixelcnn",
             f"pixelcnn_conditioning sets how the PixelCNN reads z; decoder {p.decoder} has no PixelCNN: use decoder "
             f"pixelcnn, or drop pixelcnn_conditioning")
    if p.decoder != "pixelcnn":
        return
    why = ("decodes z_1 alone, without the pixels a PixelCNN reads" if p.model in LAYERED_MODELS
           else "decodes every class and needs a decoder that reads z alone")
    _require(p.model == "vae", f"decoder pixelcnn is built for model vae; model {p.model} {why}: use deconv or "
                               f"broadcast")
    _require(p.reconstruction_loss == "bernoulli", "decoder pixelcnn models each pixel as a Bernoulli given "
                                                   "those before it: use reconstruction_loss bernoulli")
    _require(p.channels == 1 or (p.channels is None and p.dataset in ("shapes2d", "mnist", "fashion_mnist",
                                                                      "dsprites")),
             "decoder pixelcnn models one channel (colour needs van den Oord et al.'s channel masks): use "
             "channels 1")


def _check_aggressive(p):
    if not p.aggressive:
        return
    why = {"ladder": "infers its layers through its generative top-down pass, which encoder and decoder would share",
           "hierarchical": "infers z_2 from z_1 with networks that aggressive would train in the decoder's turns"
           }.get(p.model, "trains a classifier beside them")
    _require(p.model == "vae", f"aggressive trains the VAE's encoder and decoder in turn; model {p.model} {why}: drop "
                               f"aggressive")
    _require(p.objective != "factor_vae", "aggressive trains the encoder and the decoder in turn, and objective "
                                          "factor_vae trains its discriminator at every update of both: use another "
                                          "objective, or drop aggressive")
    _require(p.validation_step > 0, "aggressive ends when I(x; z) on the validation images stops rising: set "
                                    "validation_step > 0")
    _require(p.strategy == "default", "aggressive chooses the networks to update inside the compiled step, which "
                                      "replicas cannot synchronise: use strategy default")
    _require(p.precision != "mixed_float16", "aggressive gives the decoder an optimizer of its own, outside "
                                             "mixed_float16's loss scaling: use precision float32 or mixed_bfloat16")
    _require(p.aggressive_check_updates is None or p.aggressive_check_updates > 0,
             f"aggressive_check_updates must be at least 1 (None = an epoch), got {p.aggressive_check_updates}")
    # The KL schedules follow the decoder's updates (`Model.schedule_step`); the learning rate's follows num_steps.
    _require(p.learning_rate_schedule == "constant",
             f"aggressive counts every encoder update as a step, so learning_rate_schedule "
             f"{p.learning_rate_schedule} would run on the encoder's inner updates rather than on the decoder's: use "
             f"learning_rate_schedule constant, or drop aggressive")


def _check_svi(p):
    _require(p.svi_steps >= 0, f"svi_steps must be at least 0 (0 = off), got {p.svi_steps}")
    _require(math.isfinite(p.svi_learning_rate) and p.svi_learning_rate > 0,
             f"svi_learning_rate must be a finite number > 0, got {p.svi_learning_rate}")
    if not p.svi_steps:
        return
    _require(p.model == "vae" and not p.categorical_sizes and p.flow == "none" and p.prior == "normal",
             "svi_steps refines a Gaussian posterior under the N(0, I) prior: use model vae without "
             "categorical_sizes, flow none and prior normal")
    _require(p.objective == "beta_vae", f"svi_steps refines each posterior on its own ELBO, which objective "
                                        f"{p.objective} does not train: use objective beta_vae")
    _require(p.kl_schedule != "capacity" and not p.free_bits,
             "svi_steps refines each posterior on reconstruction + weight·KL, not on the KL's capacity or free bits "
             "that this run trains: use kl_schedule constant, linear or cyclical, and free_bits 0")
    _require(not p.aggressive, "svi_steps and aggressive are two remedies for a lagging encoder: use one")
    _require(p.strategy == "default", "svi_steps takes SVI steps on the batch's mean loss, which replicas would "
                                      "each take on their own rows: use strategy default")
    _require(p.precision != "mixed_float16", "svi_steps differentiates SVI's gradients, outside mixed_float16's loss "
                                             "scaling: use precision float32 or mixed_bfloat16")


def _check_prior(p):
    """A learned prior and a flow: their sizes, and what they cannot be combined with."""
    _require(p.prior_components >= 1, f"prior_components must be at least 1, got {p.prior_components}")
    _require(p.flow_length >= 0, f"flow_length must be 0 or more (0 = no flow), got {p.flow_length}")
    for name, plain in (("prior", "normal"), ("flow", "none")):
        value = getattr(p, name)
        if value == plain:
            continue
        takes = ("vae",) if name == "flow" else ("vae", *LAYERED_MODELS)  # a layered model's prior is its top layer's
        _require(p.model in takes, f"{name} {value} acts on the code of model {', '.join(takes)}; model {p.model} "
                                   f"keeps a Gaussian posterior and N(0, I): use {name} {plain}")
        _require(p.objective in SAMPLED_KL_OBJECTIVES,
                 f"objective {p.objective} assumes a Gaussian posterior and the prior N(0, I); with {name} {value} use "
                 f"{' or '.join(SAMPLED_KL_OBJECTIVES)}")
        _require(not p.free_bits, f"free_bits frees each dimension's KL to N(0, 1); with {name} {value} the KL has no "
                                  f"part per dimension: drop free_bits, or use {name} {plain}")
    _require(p.prior != "vamp" or p.flow == "none",
             "prior vamp mixes the encoder's Gaussian posteriors of its pseudo-inputs; through a flow the posteriors "
             "are no longer Gaussian: use prior mog with a flow, or no flow")


def _check_layers_of_latents(p):
    sizes = p.upper_latent_sizes
    _require(all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in sizes),
             f"upper_latent_sizes must list the sizes of the layers above z_1, each an integer >= 1, got {sizes!r}")
    _require(p.upper_layer_units >= 1, f"upper_layer_units must be at least 1, got {p.upper_layer_units}")
    if p.model not in LAYERED_MODELS:
        _require(not sizes, f"upper_latent_sizes are the layers of models {' and '.join(LAYERED_MODELS)}; model "
                            f"{p.model} has one: drop them, or set model ladder")
        return
    _require(sizes, f"model {p.model} needs stochastic layers above z_1: set upper_latent_sizes, e.g. [16] (without "
                    f"them it is model vae)")
    _require(p.objective in SAMPLED_KL_OBJECTIVES,
             f"model {p.model} trains its layers' KL or IWAE's bound; objective {p.objective} needs one Gaussian code "
             f"under N(0, I): use {' or '.join(SAMPLED_KL_OBJECTIVES)}")
    _require(not p.categorical_sizes and not p.free_bits,
             f"model {p.model} has Gaussian layers only, no KL per group: drop categorical_sizes and free_bits")
    _require(p.strategy == "default", f"model {p.model} trains on one device (strategy default)")


def _check_labels(p):
    """A labelled model's parameters (the data set's own labels are checked when it loads: vae_tf.datasets)."""
    labelled = p.model in LABELLED_MODELS
    _require(labelled or (p.labels == 0 and p.label_factor is None and p.classification_weight is None),
             f"labels, label_factor and classification_weight are for the semi-supervised models "
             f"({', '.join(LABELLED_MODELS)}); model {p.model} uses no labels: drop them, or set model m2")
    _require(p.model == "adgm" or p.auxiliary_size is None,
             f"auxiliary_size is the auxiliary variable of model adgm; model {p.model} has none: drop it")
    _require(p.model == "m2" or p.classifier_layers is None,
             f"classifier_layers is the network of model m2's classifier q(y|x); model {p.model} "
             + ("shares the convolutions of q(y|a,x) and q(z|a,y,x): set encoder_layers" if p.model == "adgm"
                else "has no classifier") + ", and drop classifier_layers")
    if p.classifier_layers is not None:
        _check_layers("classifier_layers", p.classifier_layers, conv_first=True)
    _require(p.auxiliary_size is None or p.auxiliary_size >= 1,
             f"auxiliary_size must be a whole number >= 1 or None (= latent_size), got {p.auxiliary_size}")
    if not labelled:
        return
    _require(p.label_factor is not None, f"model {p.model} learns to classify one label: set label_factor (shapes2d: "
                                         f"shape, scale, orientation, position_x or position_y; fashion_mnist: label)")
    _require(p.labels >= 1, f"model {p.model} needs labelled images: set labels, e.g. 1% of the training images")
    _require(p.classification_weight is None or (math.isfinite(p.classification_weight)
                                                 and p.classification_weight >= 0),
             f"classification_weight must be a finite number >= 0 or None, got {p.classification_weight}")
    _require(p.objective in LABELLED_OBJECTIVES,
             f"model {p.model} trains its own bound (labelled and unlabelled ELBOs), with beta and the KL schedules; "
             f"objective {p.objective} needs one Gaussian code per image: use objective beta_vae or dip_vae_ii")
    _require(not p.categorical_sizes, f"model {p.model}'s class is its categorical latent: use categorical_sizes []")
    _require(p.strategy == "default", f"model {p.model} trains on one device (strategy default)")


def _check_objective(p):
    """Parameter combinations that make no sense with the objective."""
    _require(p.objective not in BATCH_STATISTICS or p.batch_size >= 2,
             f"objective {p.objective} estimates its penalty from the minibatch; use batch_size 2 or more")
    _require(p.objective != "beta_tcvae" or p.kl_schedule != "capacity",
             "objective beta_tcvae weights the total correlation by beta; a capacity target C applies to the whole "
             "KL: use kl_schedule constant, linear or cyclical")
    _require(p.objective != "info_vae" or p.info_alpha + p.info_lambda - 1 >= 0,
             f"objective info_vae weights the MMD by info_alpha + info_lambda - 1 = "
             f"{p.info_alpha + p.info_lambda - 1:g} < 0; raise info_lambda")
    _require(p.objective != "iwae" or (p.kl_schedule == "constant" and p.beta == 1),
             "objective iwae trains a bound on log p(x), which has no KL weight: use kl_schedule constant with beta 1")
    _require(p.objective != "iwae" or not p.categorical_sizes,
             "objective iwae's bound needs the density of the categoricals' relaxed samples, which vae_tf does not "
             "compute: use categorical_sizes [] with iwae, or another objective")


def _check_categoricals(p):
    sizes = p.categorical_sizes
    _require(all(isinstance(k, int) and not isinstance(k, bool) and k >= 2 for k in sizes),
             f"categorical_sizes must list numbers of categories, each an integer >= 2 (a categorical of one "
             f"category carries nothing), got {sizes!r}")
    _require(math.isfinite(p.temperature) and p.temperature > 0,
             f"temperature must be a finite number > 0 (the relaxation divides by it), got {p.temperature}")
    _require(p.categorical_capacity is None or (math.isfinite(p.categorical_capacity) and p.categorical_capacity >= 0),
             f"categorical_capacity must be a number of nats >= 0 or None, got {p.categorical_capacity}")
    _require(p.categorical_end_step >= p.categorical_start_step,
             f"categorical_end_step ({p.categorical_end_step}) precedes categorical_start_step "
             f"({p.categorical_start_step}); the ramp must end after it starts")


def check_image_size(p, size):
    """The conv strides must divide the image size, so that the decoder can mirror the encoder exactly."""
    _require(size >= 4, f"image_size must be at least 4, got {size}")
    for name in ("encoder_layers", "decoder_layers"):
        layers = getattr(p, name)
        stride = conv_stride_product(layers) if layers is not None else 1
        _require(size % stride == 0,
                 f"image size {size} is not divisible by {stride}, the product of the {name} conv strides; "
                 f"set image_size to a multiple of {stride} such as {max(stride, round(size / stride) * stride)}")
