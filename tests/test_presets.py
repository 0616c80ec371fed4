import csv
import dataclasses
import json

import pytest

import vae_tf
from vae_tf.params import saved_params
from vae_tf import objectives, schedules
from vae_tf.presets import DESCRIPTIONS, PRESETS

from conftest import ROOT, train_cli

STEPS = [0, 1, 2999, 3000, 3001, 4000, 20000, 39600, 40000, 53000, 99990, 125000]

# The originals' KL weight as a function of the step (docs/presets.md).
ORIGINAL_WEIGHT = {
    "AE_0": lambda s: 0.0,
    "AE_1": lambda s: 0.0 if s <= 3000 else min(1.0, (s - 3000) / 50000),
    "VAE_0": lambda s: 1.0,
    "MSE_0": lambda s: 1.0,
    "VAE": lambda s: 1.0,
    "10-Beta-VAE": lambda s: 10.0,
    "100-Beta-VAE": lambda s: 100.0,
    "1000-Beta-VAE": lambda s: 1000.0,
    "10000-Beta-VAE": lambda s: 10000.0,
    "KLD_Anneal_40000_steps-10-Beta-VAE": lambda s: min(10.0, s / 4000),
    "KLD_Decrease_40000_steps-100to1-Beta-VAE": lambda s: max(1.0, 100 - s / 400),
    "KLD_Decrease_100000_steps-10000to1-Beta-VAE": lambda s: max(1.0, 10000 - s / 10),
}
# disentanglement_lib's study values, one preset per objective (the KL-type term's weight; AnnealedVAE's is γ).
ORIGINAL_WEIGHT.update({"shapes2d_beta_vae": lambda s: 4.0, "shapes2d_annealed_vae": lambda s: 1000.0,
                        "shapes2d_beta_tcvae": lambda s: 6.0, "shapes2d_factor_vae": lambda s: 1.0,
                        "shapes2d_dip_vae_i": lambda s: 1.0, "shapes2d_dip_vae_ii": lambda s: 1.0,
                        "shapes2d_info_vae": lambda s: 1.0, "shapes2d_iwae": lambda s: 1.0,
                        "shapes2d_64": lambda s: 4.0, "shapes2d_disentangle": lambda s: 2.0,
                        "shapes2d_joint": lambda s: 2.0, "shapes2d_m2": lambda s: 2.0, "quick": lambda s: 2.0, "fashion_mnist_vae": lambda s: 1.0,
                        # the seeds' AE -> VAE switch, at once and annealed (AE_1's ramp over 10,000 steps)
                        "fashion_mnist_ae_to_vae": lambda s: 0.0 if s < 3000 else 1.0,
                        "fashion_mnist_ae_to_vae_annealed": lambda s: 0.0 if s <= 3000 else min(1.0, (s - 3000) / 10000),
                        "fashion_mnist_mlp": lambda s: min(1.0, s / 60000),  # a warm-up over 100 epochs
                        "fashion_mnist_m2": lambda s: 1.0, "fashion_mnist_adgm": lambda s: 1.0})
MODEL = ("dataset", "image_size", "encoder_layers", "decoder", "decoder_layers", "latent_size", "activation",
         "reconstruction_loss", "objective")


def test_presets_are_exactly_the_original_runs():
    assert list(PRESETS) == list(ORIGINAL_WEIGHT) and set(DESCRIPTIONS) == set(PRESETS)


def test_the_quick_preset_is_params_py_s_model_trained_shorter():
    default, quick = vae_tf.load_params(ROOT / "params.py"), vae_tf.load_params(ROOT / "params.py", preset="quick")
    differing = {f.name for f in dataclasses.fields(default) if getattr(default, f.name) != getattr(quick, f.name)}
    assert differing == {"run_name", "num_steps", "validation_step", "mig_step"}
    assert quick.num_steps == 2000 and quick.mig_step == 0


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_follows_the_original_schedule(name):
    params = vae_tf.load_params(ROOT / "params.py", preset=name)
    weight = vae_tf.kl_weight_schedule(params)
    for step in STEPS:
        assert weight(step) == pytest.approx(ORIGINAL_WEIGHT[name](step), rel=1e-6, abs=1e-7), step
    assert params.run_name == name


def test_a_preset_sets_its_whole_model_whatever_params_py_says():
    for name, overrides in PRESETS.items():
        assert set(MODEL) - {"activation", "reconstruction_loss"} <= set(overrides), name
    edited = vae_tf.load_params(ROOT / "params.py", preset="MSE_0", overrides=None)
    assert (edited.objective, edited.image_size) == ("beta_vae", None)  # not params.py's dip_vae_ii at 32x32


def test_the_disentangle_preset_is_the_default_model_at_64x64_trained_longer_with_a_decaying_rate():
    default = vae_tf.load_params(ROOT / "params.py")
    preset = vae_tf.load_params(ROOT / "params.py", preset="shapes2d_disentangle")
    same = [name for name in MODEL + ("beta", "dip_lambda_od", "dip_lambda_d", "kl_schedule", "learning_rate",
                                      "batch_size", "seed") if name not in ("image_size", "encoder_layers")]
    assert [getattr(preset, n) for n in same] == [getattr(default, n) for n in same]
    # One more stride-2 conv for twice the image size: the dense layers see the same 4×4 map.
    assert (preset.image_size, default.image_size) == (64, 32)
    assert preset.encoder_layers == default.encoder_layers[:1] + default.encoder_layers
    assert (preset.num_steps, preset.validation_tolerance, preset.mig_step) == (24000, 0, 2500)
    assert (default.batch_size, default.num_steps) == (64, 15000)
    assert (preset.learning_rate_schedule, default.learning_rate_schedule) == ("cosine", "constant")


def test_the_shipped_disentangled_run_was_trained_with_the_preset_as_it_stands():
    shipped = json.loads((ROOT / "predictions" / "shapes2d_disentangled" / "params.json").read_text())
    preset = vae_tf.load_params(ROOT / "params.py", preset="shapes2d_disentangle",
                                overrides={"run_name": "shapes2d_disentangled"})
    # As a run reads its params.json: parameters added since then take their defaults, which train as runs did before.
    assert saved_params(shipped).to_dict() == preset.to_dict()
    assert set(shipped) <= set(preset.to_dict())


def test_the_projects_settings():
    conv = vae_tf.load_params(ROOT / "params.py", preset="MSE_0")
    assert (conv.dataset, conv.encoder_layers, conv.latent_size, conv.batch_size, conv.learning_rate,
            conv.reconstruction_loss) == ("mnist", [[64, 4, 2], [64, 4, 2], [256]], 32, 64, 4e-4, "squared_error")
    mlp = vae_tf.load_params(ROOT / "params.py", preset="VAE_0")
    assert (mlp.encoder_layers, mlp.decoder_layers) == ([[500], [500]], [[500]])
    beta = vae_tf.load_params(ROOT / "params.py", preset="10-Beta-VAE")
    assert (beta.dataset, beta.encoder_layers, beta.latent_size, beta.learning_rate, beta.adam_beta_1,
            beta.validation_step, beta.validation_tolerance) == (
        "celeb_a", [[32, 4, 2]] * 4 + [[256], [256]], 32, 5e-4, 0.5, 500, 20)
    scheduled = vae_tf.load_params(ROOT / "params.py", preset="KLD_Decrease_100000_steps-10000to1-Beta-VAE")
    assert (scheduled.num_steps, scheduled.validation_step) == (125000, 0)


def test_the_study_presets_use_disentanglement_lib_s_values():
    study = {name: vae_tf.load_params(ROOT / "params.py", preset=name) for name in PRESETS
             if name.startswith("shapes2d_") and name not in ("shapes2d_64", "shapes2d_disentangle", "shapes2d_joint",
                                                              "shapes2d_m2")}
    assert {p.objective for p in study.values()} == set(objectives.OBJECTIVES)
    for p in study.values():
        assert (p.dataset, p.encoder_layers, p.latent_size, p.batch_size, p.learning_rate, p.num_steps) == (
            "shapes2d", [[32, 4, 2], [32, 4, 2], [64, 4, 2], [64, 4, 2], [256]], 10, 64, 1e-4, 300000)
    annealed = study["shapes2d_annealed_vae"]
    assert schedules.make_schedule("capacity", annealed.beta, annealed.kl_start_step, annealed.kl_end_step,
                                          annealed.kl_start_value, annealed.kl_end_value).target(100000) == 25.0
    assert study["shapes2d_factor_vae"].factor_gamma == 40.0 and study["shapes2d_beta_tcvae"].beta == 6.0
    assert [(study[n].dip_lambda_od, study[n].dip_lambda_d) for n in ("shapes2d_dip_vae_i", "shapes2d_dip_vae_ii")] == [
        (10.0, 100.0), (10.0, 10.0)]


# The study's presets differ from each other only in the objective, whose runs tests/test_objectives.py covers;
# of them, AnnealedVAE is the one with a schedule to check. Presets that differ from another only in a constant of
# the same schedule train as it does: of the β-VAE project's constant weights, 1 and 10,000 train here, of its
# decreases the steeper one, and AE_0 and MSE_0 (AE_0 with β = 1) train in the sweep below; the schedule test above
# follows every preset.
SAME_AS_ANOTHER = {"10-Beta-VAE", "100-Beta-VAE", "1000-Beta-VAE", "KLD_Decrease_40000_steps-100to1-Beta-VAE", "MSE_0",
                   "AE_0"}


def logged_kl_weights(run):
    """The KL weight the compiled step used, step by step."""
    with open(run / "log.csv", newline="") as file:
        return [float(row["kl_weight"]) for row in csv.DictReader(file)]


@pytest.mark.parametrize("name", [n for n in PRESETS if not n.startswith("shapes2d_") and n not in SAME_AS_ANOTHER]
                         + ["shapes2d_annealed_vae"])
def test_each_preset_trains_two_steps_on_shapes2d(tiny, name):
    # A semi-supervised preset's label is its data set's: on shapes2d, 10 of each shape.
    labelled = dict(labels=30, label_factor="shape") if PRESETS[name].get("labels") else {}
    params = vae_tf.load_params(ROOT / "params.py", preset=name, overrides=dict(
        output_dir=tiny().output_dir, dataset="shapes2d", image_size=16, num_steps=2, batch_size=8,
        plot_step=0, log_step=[], validation_size=8, **labelled))
    run = vae_tf.train(params, progress=False)
    model = vae_tf.load_run(run)
    encoder = model.features if labelled else model.encoder
    assert encoder.input_shape == (None, 16, 16, 1)  # channels and size follow the data set
    assert logged_kl_weights(run) == pytest.approx([ORIGINAL_WEIGHT[name](s) for s in (0, 1)], rel=1e-6, abs=1e-7)


def test_list_presets_and_a_sweep_of_two(tmp_path):
    listing = train_cli("--list-presets")
    assert listing.returncode == 0
    for name in PRESETS:
        assert name in listing.stdout
    args = [f"--output_dir={tmp_path}", "--dataset=shapes2d", "--image_size=16", "--num_steps=2", "--batch_size=8",
            "--plot_step=0", "--log_step=[]", "--validation_size=8"]
    sweep = train_cli("--preset=AE_0", "--preset=MSE_0", *args)
    assert sweep.returncode == 0, sweep.stderr
    for name in ("AE_0", "MSE_0"):
        assert vae_tf.load_run(tmp_path / name).encoder.input_shape == (None, 16, 16, 1)
        assert logged_kl_weights(tmp_path / name) == [ORIGINAL_WEIGHT[name](s) for s in (0, 1)]
    unknown = train_cli("--preset=VAE_1", *args)
    assert unknown.returncode == 2 and "unknown preset 'VAE_1' (did you mean" in unknown.stderr
