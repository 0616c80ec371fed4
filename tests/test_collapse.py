"""Posterior collapse, told to the user: latents.csv's per-dimension KL, activity and I(x; z) at each validation, the
one-line warning while training (a run that collapses gets it, one that learns does not), and the analysis' line."""

import csv
import json

import numpy as np
import pytest

from vae_tf import latent_space
from vae_tf.cli import analyze_main, train_main

from conftest import ROOT, assert_resumed_as_straight, assert_train_refuses, tiny_args


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("history, state", [
    ([(0, 0.0, 0.08)], None),  # the first validation: every VAE starts on the prior
    ([(0, 0.0, 0.08), (2, 0.05, 0.4)], None),  # under 1 nat but gaining KL: learning, not collapsed
    ([(0, 0.0, 0.004), (0, 0.0, 0.003)], "collapsed"),  # no unit active, losing KL
    ([(4, 2.0, 12.0), (3, 0.4, 0.5)], "collapsed"),  # fell under 1 nat
    ([(6, 3.0, 20.0), (4, 1.2, 9.0)], "collapsing"),  # fewer units and under half the peak information
    ([(10, 1.0, 30.0), (4, 2.5, 18.0)], None),  # a β-VAE pruning spare units keeps (here gains) its information
    ([(6, 3.0, 20.0), (6, 1.0, 9.0)], None),  # less information, the same units: not called collapsing
    ([(3, 0.07, 3.0), (2, 0.03, 3.7)], None),  # the first steps' flicker: no informative peak to fall from
])
def test_the_training_warning_tells_collapse_from_learning_and_pruning(history, state):
    got, sentence = latent_space.training_warning(history)
    assert got == state and (sentence is None) == (state is None)
    if state:
        assert "remedies" in sentence and "free_bits" in sentence and "cyclical" in sentence


def test_without_the_codes_information_only_collapse_is_told_not_a_trend():
    """A flow's I(x; z) is q_0's, not its code's (`FlowGaussian.code_information`): no "collapsing" from it."""
    assert latent_space.training_warning([(6, 3.0, 20.0), (4, 1.2, 9.0)], trend=False) == (None, None)
    assert latent_space.training_warning([(4, 2.0, 12.0), (3, 0.4, 0.5)], trend=False)[0] == "collapsed"


def test_a_run_that_collapses_is_warned_once_and_one_that_learns_is_not(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    common = [f"--output_dir={tmp_path}", *tiny_args(num_steps=60, validation_step=10, validation_size=64)]
    assert train_main([*common, "--run_name=collapsed", "--beta=1000"]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if "warning at step" in line]
    assert len(warnings) == 1 and "The posterior has collapsed (0 active units" in warnings[0], out
    assert train_main([*common, "--run_name=learning", "--beta=1"]) == 0
    assert "warning" not in capsys.readouterr().out

    for name in ("collapsed", "learning"):
        table = rows(tmp_path / name / "latents.csv")
        assert [int(r["step"]) for r in table] == [10, 20, 30, 40, 50, 60]
        for r in table:  # the total is the dimensions' sum, the count their activity
            assert float(r["kl"]) == pytest.approx(sum(float(r[f"kl_{d}"]) for d in range(4)), rel=1e-6, abs=1e-9)
            assert int(r["active_units"]) == sum(int(r[f"active_{d}"]) for d in range(4))
    collapsed, learning = rows(tmp_path / "collapsed" / "latents.csv"), rows(tmp_path / "learning" / "latents.csv")
    assert all(int(r["active_units"]) == 0 and float(r["kl"]) < 0.05 for r in collapsed)
    assert int(learning[-1]["active_units"]) >= 2 and float(learning[-1]["kl"]) > latent_space.COLLAPSED_KL
    # I(x; z) is at most log n (64 validation images) and well above 0 only when the codes carry information.
    assert all(abs(float(r["mutual_information"])) < 0.05 for r in collapsed)
    assert 0.1 < float(learning[-1]["mutual_information"]) <= np.log(64)

    analysis = ["--num_images=64", "--no_tsne", "--no_figures", "--likelihood_samples=4"]
    assert analyze_main([str(tmp_path / "collapsed"), *analysis]) == 0
    assert "The posterior has collapsed" in capsys.readouterr().out
    assert analyze_main([str(tmp_path / "learning"), *analysis]) == 0
    assert "The posterior" not in capsys.readouterr().out
    assert not json.loads((tmp_path / "learning" / "analysis" / "summary.json").read_text())["collapsed"]

    # The analysis reads the run's history in latents.csv: the learning run, its first validation row given all 4
    # units and over twice the last row's I(x; z) (at least COLLAPSED_KL), its last row 3 units at most, is one whose
    # latents have fallen from a peak.
    learning[0].update(active_units=4,
                       mutual_information=2 * float(learning[-1]["mutual_information"]) + latent_space.COLLAPSED_KL)
    learning[-1]["active_units"] = min(int(learning[-1]["active_units"]), 3)
    with open(tmp_path / "learning" / "latents.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(learning[0]))
        writer.writeheader()
        writer.writerows(learning)
    assert analyze_main([str(tmp_path / "learning"), *analysis]) == 0
    assert "The posterior is collapsing" in capsys.readouterr().out
    summary = json.loads((tmp_path / "learning" / "analysis" / "summary.json").read_text())
    assert summary["collapsed"] and summary["collapse"].startswith("The posterior is collapsing")


def fu_et_al_weights(steps, start, end, cycles, ratio, low, high):
    """Fu et al. 2019's frange_cycle_linear, written from the paper (eq. 6): weights at each step of `steps`."""
    period = (end - start) / cycles
    weights = []
    for step in steps:
        if step < start:
            weights.append(low)
        elif step >= end:
            weights.append(high)
        else:
            tau = ((step - start) % period) / period
            weights.append(low + (high - low) * (tau / ratio if tau <= ratio else 1.0))
    return weights


@pytest.mark.parametrize("start, end, cycles, ratio, low, high", [
    (0, 10000, 4, 0.5, 0.0, 1.0), (1000, 4000, 3, 0.25, 0.1, 2.0), (0, 7, 7, 1.0, 0.0, 1.0)])
def test_cyclical_annealing_is_fu_et_al_s_schedule(start, end, cycles, ratio, low, high):
    import tensorflow as tf

    from vae_tf.schedules import make_schedule
    schedule = make_schedule("cyclical", 1.0, start, end, low, high, cycles=cycles, ratio=ratio)
    steps = sorted(set(range(0, end + 50, max(1, (end - start) // 97))) | {start, end - 1, end, end + 1})
    expected = fu_et_al_weights(steps, start, end, cycles, ratio, low, high)
    compiled = tf.function(schedule.weight)
    for step, weight in zip(steps, expected):
        assert float(compiled(tf.constant(step, tf.int64))) == pytest.approx(weight, rel=1e-6, abs=1e-6), step


@pytest.mark.parametrize("groups", [None, 1, 2])
def test_free_bits_charge_only_the_nats_over_each_groups_allowance(groups):
    """Σ_g max(λ, batch mean of group g's KL) (Kingma et al. 2016, appendix C), against NumPy on posteriors whose four
    dimensions carry about 0, 0.1, 1 and 3 nats."""
    import vae_tf
    from vae_tf.objectives import Batch

    model = vae_tf.build_model(vae_tf.load_params(ROOT / "params.py", overrides=dict(
        objective="beta_vae", latent_size=4, image_size=16, encoder_layers=[[8, 4, 2], [32]], free_bits=0.5,
        free_bits_groups=groups)))
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(32, 4)) * np.array([0.0, 0.4, 1.3, 2.4]) + np.array([0.0, 0.1, 0.3, 0.5])
    log_std = np.full((32, 4), -0.05) + rng.normal(size=(32, 4)) * 0.01
    kl = 0.5 * (mean ** 2 + np.exp(2 * log_std) - 1) - log_std  # [32, 4]
    per_group = kl.mean(0).reshape(groups or 4, -1).sum(1)
    expected = np.maximum(0.5, per_group).sum()
    batch = Batch(None, mean.astype(np.float32), log_std.astype(np.float32), None, None, None,
                  kl.sum(1).astype(np.float32), 0, 1)
    assert float(model.objective.kl_term(batch)) == pytest.approx(expected, rel=1e-5)
    assert expected > kl.sum(1).mean()  # the allowance is charged where a group holds less
    model_off = vae_tf.build_model(vae_tf.load_params(ROOT / "params.py", overrides=dict(
        objective="beta_vae", latent_size=4, image_size=16, encoder_layers=[[8, 4, 2], [32]])))
    assert float(model_off.objective.kl_term(batch)) == pytest.approx(kl.sum(1).mean(), rel=1e-5)


@pytest.mark.parametrize("objective", ["factor_vae", "dip_vae_i", "dip_vae_ii", "info_vae"])
def test_free_bits_take_the_place_of_the_kl_in_every_objective_that_has_one(objective):
    """The same weights with and without free bits λ above every dimension's KL: the losses differ by the objective's
    weight on its KL term (β, and InfoVAE's 1 − α: Zhao et al. 2017, eq. 6) times (D·λ − the batch's mean KL), and by
    nothing else: their own penalties (FactorVAE's total correlation, DIP-VAE's covariance, InfoVAE's MMD) stay."""
    import tensorflow as tf

    import vae_tf

    tiny = dict(objective=objective, latent_size=4, image_size=16, encoder_layers=[[8, 4, 2], [32]], beta=2.0,
                **({"info_alpha": 0.25} if objective == "info_vae" else {}))
    plain = vae_tf.build_model(vae_tf.load_params(ROOT / "params.py", overrides=tiny))
    floored = vae_tf.build_model(vae_tf.load_params(ROOT / "params.py", overrides={**tiny, "free_bits": 50.0}))
    floored.set_weights(plain.get_weights())
    x = tf.constant((np.random.default_rng(0).random((16, 16, 16, 1)) > 0.5).astype(np.float32))
    step = tf.constant(3, tf.int64)
    figures = plain.forward(x, step, 0)[0]
    weight = 2.0 * ((1.0 - plain.params.info_alpha) if objective == "info_vae" else 1.0)
    assert float(figures["kl_loss"]) < 50.0  # every dimension under its allowance: the floor is charged whole
    expected = float(figures["loss"]) + weight * (4 * 50.0 - float(figures["kl_loss"]))
    assert float(floored.forward(x, step, 0)[0]["loss"]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("overrides, message", [
    (dict(free_bits=-1.0), "free_bits must be a finite number >= 0"),
    (dict(free_bits_groups=2), "set free_bits too"),
    (dict(free_bits=0.5, free_bits_groups=3), "free_bits_groups must divide latent_size 4"),
    (dict(free_bits=0.5, objective="beta_tcvae"), "free_bits frees nats of the KL"),
    (dict(free_bits=0.5, kl_schedule="capacity"), "use one"),
    (dict(kl_schedule="cyclical", kl_cycles=0), "kl_cycles must be at least 1"),
    (dict(kl_schedule="cyclical", kl_cycle_ratio=0.0), "kl_cycle_ratio must be in (0, 1]"),
    (dict(kl_schedule="cyclical", kl_start_step=0, kl_end_step=3, kl_cycles=4), "at least a step per cycle"),
])
def test_bad_remedies_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, overrides, message):
    monkeypatch.chdir(ROOT)
    assert_train_refuses(tmp_path, capsys, overrides, message)


def test_runs_with_each_remedy_train_resume_exactly_reload_and_analyse(tmp_path, monkeypatch):
    import vae_tf

    monkeypatch.chdir(ROOT)
    images = np.random.default_rng(0).random((8, 16, 16, 1)).astype(np.float32)
    for name, overrides in (("cyclical", dict(kl_schedule="cyclical", kl_end_step=12, kl_cycles=3)),
                            ("free_bits", dict(free_bits=0.25, free_bits_groups=2))):
        common = [f"--output_dir={tmp_path}", *tiny_args(num_steps=12, **overrides)]
        assert train_main([*common, f"--run_name={name}"]) == 0
        assert train_main([*common, f"--run_name={name}_resumed", "--num_steps=6"]) == 0
        assert train_main([*common, f"--run_name={name}_resumed"]) == 0
        straight = rows(tmp_path / name / "log.csv")
        assert_resumed_as_straight(tmp_path / f"{name}_resumed", tmp_path / name)
        if name == "cyclical":  # the weight rises over the first half of each 4-step cycle, then holds
            assert [float(r["kl_weight"]) for r in straight] == pytest.approx(
                fu_et_al_weights(range(12), 0, 12, 3, 0.5, 0.0, 1.0))
        reloaded, trained = vae_tf.load_run(tmp_path / f"{name}_resumed"), vae_tf.load_run(tmp_path / name)
        assert {key: getattr(reloaded.params, key) for key in overrides} == overrides
        np.testing.assert_allclose(reloaded.represent(images), trained.represent(images), rtol=1e-4, atol=1e-5)
        untrained = vae_tf.build_model(reloaded.params).represent(images)  # the same seed's start: not what reloads
        assert np.abs(untrained - reloaded.represent(images)).max() > 1e-4
        assert analyze_main([str(tmp_path / f"{name}_resumed"), "--num_images=32", "--no_tsne", "--no_figures",
                             "--likelihood_samples=4"]) == 0  # the figures: tests/test_analysis.py
        assert (tmp_path / f"{name}_resumed" / "analysis" / "summary.json").exists()


@pytest.mark.parametrize("values, scale", [
    ([1.0, 10.0, 1000.0], "log"),  # positive, over decades
    ([1400.0, 8.0, 1e-7, 0.0, -3e-8], "symlog"),  # a KL that collapses to 0 (rounded just below it): still readable
    ([1.0, 2.0, 3.0], "linear"),  # within a decade and a half
    ([5.0, -2.0, 300.0], "linear"),  # truly negative values
])
def test_curves_spanning_decades_get_a_log_axis_even_when_a_collapsed_kl_reaches_zero(values, scale):
    import matplotlib.pyplot as plt

    from vae_tf.figures import _log_scale_if_decades
    figure, axis = plt.subplots()
    axis.plot(values)
    _log_scale_if_decades(axis, values)
    assert axis.get_yscale() == scale
    plt.close(figure)


def test_the_factor_probe_reads_position_and_scale_from_the_shipped_disentangled_run(capsys, monkeypatch):
    """experiments/factor_probe.py on predictions/shapes2d_disentangled, whose latents hold x, y and scale
    (docs/experiments): each of the three regresses from the posterior means with R² above 0.8."""
    import re
    import runpy
    import sys
    monkeypatch.setattr(sys, "argv", ["factor_probe.py", str(ROOT / "predictions" / "shapes2d_disentangled"),
                                      "--images=1000"])
    runpy.run_path(str(ROOT / "experiments" / "factor_probe.py"), run_name="__main__")
    scores = dict(re.findall(r"(\w+) R2=(-?[\d.]+)", capsys.readouterr().out))
    assert set(scores) == {"scale", "position_x", "position_y"}
    assert all(float(score) > 0.8 for score in scores.values()), scores
