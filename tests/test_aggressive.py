"""Aggressive inference-network training (He et al. 2019): which network each step updates, against the paper's
loop written out in Python; the end of the aggressive phase; exact resume, reload and analysis; bad input."""

import csv
import math

import numpy as np
import pytest

import vae_tf
from vae_tf.cli import analyze_main, train_main
from vae_tf.params import OBJECTIVES

from conftest import ROOT, assert_resumed_as_straight, assert_train_refuses, tiny_args


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def he_et_al_updates(losses):
    """What He et al.'s training loop (their image.py, Algorithm 1 of the paper) updates at each step, fed the loss
    of each encoder update in turn: "encoder" for each inner update, "decoder" for the update that ends an inner loop.
    The inner loop sums its losses over windows of 10 updates and breaks when a window's sum exceeds the previous
    one's, or when `sub_iter` reaches 100."""
    updates, losses = [], iter(losses)
    while True:
        sub_iter, previous, current = 1, 1e30, 0.0
        try:
            while sub_iter < 100:
                current += next(losses)
                updates.append("encoder")
                if sub_iter % 10 == 0:
                    if previous - current < 0:
                        break
                    previous, current = current, 0.0
                sub_iter += 1
        except StopIteration:
            return updates
        updates.append("decoder")


def tiny_model(**overrides):
    return vae_tf.build_model(vae_tf.load_params(ROOT / "params.py", overrides={
        "objective": "beta_vae", "latent_size": 4, "image_size": 16, "encoder_layers": [[8, 4, 2], [32]],
        "decoder": "deconv", "decoder_layers": None, "aggressive": True, **overrides}))


@pytest.mark.parametrize("losses", [
    [100.0 - i for i in range(25)] + [200.0] * 10 + [50.0 - 0.1 * i for i in range(150)],  # a worse window, then 99
    [10.0 + (i % 20 >= 10) for i in range(60)],  # windows that alternate: no improvement, every other one worse
    list(np.random.default_rng(0).normal(100.0, 5.0, 300)),  # noise
])
def test_each_step_updates_the_network_he_et_al_s_loop_updates(losses):
    """The compiled schedule, fed each encoder step's loss, updates the networks the paper's loop updates, in order:
    the encoder alone (the decoder's weights unchanged), and the decoder alone when the inner loop ends (the
    encoder's unchanged); both together after the aggressive phase."""
    import tensorflow as tf

    model = tiny_model()
    schedule = model.aggressive
    variables = model.trainable_variables
    gradients = [tf.ones_like(v) for v in variables]
    @tf.function
    def apply(loss):
        schedule.apply(gradients, variables, loss)
        return schedule.figures()

    expected = he_et_al_updates(losses)
    feed = iter(losses)
    for want in expected[:len(expected) - 1]:
        encoder_before = [v.numpy().copy() for v in schedule.encoder_variables]
        decoder_before = [v.numpy().copy() for v in schedule.decoder_variables]
        # A decoder update's own loss is not watched: the loss it is fed does not matter.
        figures = apply(tf.constant(next(feed) if want == "encoder" else math.nan, tf.float32))
        encoder_moved = any(not np.array_equal(b, v.numpy()) for b, v in zip(encoder_before, schedule.encoder_variables))
        decoder_moved = any(not np.array_equal(b, v.numpy()) for b, v in zip(decoder_before, schedule.decoder_variables))
        assert (encoder_moved, decoder_moved) == (want == "encoder", want == "decoder")
        assert float(figures["aggressive"]) == 1.0
    assert "decoder" in expected  # every case ends at least one inner loop
    steps = int(model.optimizer.iterations.numpy())
    assert steps == len(expected) - 1  # one step per update, decoder updates included
    assert int(schedule.decoder_optimizer.iterations.numpy()) == expected[:-1].count("decoder")
    assert int(schedule.decoder_updates.numpy()) == expected[:-1].count("decoder")  # He et al.'s outer iterations

    schedule.on.assign(False)  # what the phase's end (`check`) sets
    before = [v.numpy().copy() for v in variables]
    figures = apply(tf.constant(1.0))
    assert all(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))
    assert float(figures["aggressive"]) == 0.0 and int(model.optimizer.iterations.numpy()) == steps + 1


@pytest.mark.parametrize("objective", sorted(set(OBJECTIVES) - {"factor_vae"}))
def test_the_first_step_of_every_objective_aggressive_accepts_moves_the_encoder_alone(objective):
    """Aggressive training composes with the objectives: whatever an objective's penalty, its training step begins the
    inner loop with an encoder update on that objective's loss, the decoder's weights untouched."""
    import tensorflow as tf

    model = tiny_model(objective=objective, batch_size=8, **(dict(beta=1.0, kl_schedule="constant")
                                                           if objective == "iwae" else {}))
    schedule = model.aggressive
    images = (np.random.default_rng(0).random((8, 16, 16, 1)) > 0.7).astype("float32")
    encoder_before = [v.numpy().copy() for v in schedule.encoder_variables]
    decoder_before = [v.numpy().copy() for v in schedule.decoder_variables]
    figures = tf.function(model.train_step, autograph=False)(tf.constant(images))
    assert np.isfinite(float(figures["loss"])) and float(figures["aggressive"]) == 1.0
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(encoder_before, schedule.encoder_variables))
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(decoder_before, schedule.decoder_variables))


def test_an_iaf_trains_with_the_encoder_and_a_learned_prior_with_the_decoder():
    """He et al.'s inner loop trains the inference network: an IAF's weights are the encoder's side, a prior's the
    generative side's."""
    model = tiny_model(flow="iaf", flow_length=2, prior="mog", prior_components=3)
    encoder = {id(v) for v in model.aggressive.encoder_variables}
    decoder = {id(v) for v in model.aggressive.decoder_variables}
    assert all(id(v) in encoder for v in model.flow.trainable_variables)
    assert all(id(v) in decoder for v in model.prior.trainable_variables)
    assert encoder.isdisjoint(decoder) and encoder | decoder == {id(v) for v in model.trainable_variables}


@pytest.mark.parametrize("information, ends_at", [
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], None),  # rising
    ([0.5, 0.4, 0.3, 0.2, 0.1], None),  # four misses
    ([0.5, 0.4, 0.3, 0.2, 0.1, 0.05], 5),  # the fifth
    ([0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.1, 0.05], 8),  # misses counted over the phase, not in a row (He et al.)
    ([0.5, 0.4, 0.3, 0.2, 0.1, 0.9], None),  # four misses, then a new best
    ([-0.01, -0.02, -0.01, -0.03, -0.02], 4),  # the best starts at 0, as theirs: a negative estimate is a miss
])
def test_the_phase_ends_at_the_fifth_check_under_the_best_with_one_check_per_interval_of_decoder_updates(
        information, ends_at):
    schedule = tiny_model(aggressive_check_updates=3).aggressive
    best, misses = 0.0, 0
    for i, value in enumerate(information):
        schedule.decoder_updates.assign(3 * i + 2)  # a validation before the interval has passed is no check
        assert not schedule.check(-1.0)
        assert not schedule.check(math.nan)
        schedule.decoder_updates.assign(3 * i + 3 + (i % 2))  # a validation at or after it is one
        assert not schedule.check(math.nan)  # a non-finite estimate is none either
        assert schedule.check(value) is (i == ends_at)
        best, misses = (best, misses + 1) if value < best else (value, misses)
        assert (float(schedule.best_information.numpy()), int(schedule.misses.numpy())) == (best, misses)
        assert bool(schedule.on.numpy()) is (ends_at is None or i < ends_at)
        if i == ends_at:
            schedule.decoder_updates.assign(1000)
            assert not schedule.check(-1.0) and int(schedule.misses.numpy()) == misses  # no check after the phase
            break


def test_by_default_i_x_z_is_checked_once_an_epoch_of_decoder_updates():
    params = vae_tf.load_params(ROOT / "params.py", overrides=dict(objective="beta_vae", aggressive=True))
    assert vae_tf.build_model(params, dataset_size=1000).aggressive.check_every == math.ceil(1000 / params.batch_size)


def test_an_aggressive_run_ends_its_phase_resumes_exactly_reloads_and_analyses(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    # I(x; z) checked after every decoder update (one in 20 to 100 steps), so that the phase ends within the run.
    common = [f"--output_dir={tmp_path}", *tiny_args(num_steps=320, validation_step=4, validation_size=16,
                                                     checkpoint_step=8, aggressive=True, aggressive_check_updates=1)]
    assert train_main([*common, "--run_name=straight"]) == 0
    assert "aggressive inference training ends" in capsys.readouterr().out
    # Resumed before the phase ends (at step 260 here): the end is decided on the checks of both sessions.
    assert train_main([*common, "--run_name=resumed", "--num_steps=160"]) == 0
    halfway = vae_tf.load_run(tmp_path / "resumed").aggressive  # what the second session starts from
    assert bool(halfway.on.numpy()) and int(halfway.decoder_updates.numpy()) > 0
    assert int(halfway.misses.numpy()) >= 1 and float(halfway.best_information.numpy()) > 0
    assert train_main([*common, "--run_name=resumed"]) == 0
    straight, resumed = rows(tmp_path / "straight" / "log.csv"), rows(tmp_path / "resumed" / "log.csv")
    for column in ("aggressive", "encoder_updates"):
        assert [r[column] for r in resumed] == [r[column] for r in straight]
    assert_resumed_as_straight(tmp_path / "resumed", tmp_path / "straight")
    phase = [float(r["aggressive"]) for r in straight]
    assert phase[0] == 1.0 and phase[-1] == 0.0 and sorted(phase, reverse=True) == phase  # it ends, for good
    assert max(float(r["encoder_updates"]) for r in straight) >= 1

    model = vae_tf.load_run(tmp_path / "resumed")
    assert not bool(model.aggressive.on.numpy())
    assert analyze_main([str(tmp_path / "resumed"), "--num_images=32", "--no_tsne", "--likelihood_samples=4"]) == 0


def decoder_updates_before(log):
    """The decoder's updates before each row of an aggressive run's log.csv: during the phase a row whose
    encoder_updates is 0 updated the decoder alone; after it every row updates both."""
    updated = [float(r["aggressive"]) == 0 or float(r["encoder_updates"]) == 0 for r in log]
    return np.concatenate([[0], np.cumsum(updated)])  # [rows + 1]: the last entry, after the last row


def test_the_kl_and_capacity_schedules_follow_the_decoder_s_updates(tmp_path, capsys, monkeypatch):
    """He et al.'s warm-up advances once per decoder update: each logged step's KL weight and categorical capacity are
    their ramps at the decoder updates before it, counted from the log, and no validation is compared, so none saved
    as the best, before the ramps end, however many steps the encoder's inner updates add; the run and load_run say
    so in decoder updates."""
    monkeypatch.chdir(ROOT)
    ramp = 40  # decoder updates; the run's 120 steps make a few
    assert train_main([f"--output_dir={tmp_path}", "--run_name=warm", *tiny_args(
        num_steps=120, validation_step=4, validation_size=16, aggressive=True, kl_schedule="linear", kl_start_step=0,
        kl_end_step=ramp, kl_start_value=0.1, kl_end_value=1.0, categorical_sizes=[3], categorical_start_step=0,
        categorical_end_step=ramp, categorical_capacity=0.5)]) == 0
    assert "validations are compared from decoder update 40 on" in capsys.readouterr().out
    log = rows(tmp_path / "warm" / "log.csv")
    assert [int(r["step"]) for r in log] == list(range(120))
    before = decoder_updates_before(log)
    assert 0 < before[-1] < ramp < len(log)  # the steps pass the ramp's end, the decoder's updates do not
    fraction = np.minimum(before[:-1] / ramp, 1.0)
    np.testing.assert_allclose([float(r["kl_weight"]) for r in log], 0.1 + 0.9 * fraction, rtol=1e-6)
    np.testing.assert_allclose([float(r["categorical_capacity"]) for r in log], 0.5 * fraction, rtol=1e-6)
    with pytest.raises(vae_tf.UserError, match=f"compared from decoder update 40 on, .* stopped at decoder update "
                                               f"{before[-1]}; use the latest"):
        vae_tf.load_run(tmp_path / "warm", "best")


def test_validations_are_compared_once_the_decoder_s_updates_pass_the_ramp(tmp_path, capsys, monkeypatch):
    """A ramp of 6 decoder updates in a run whose aggressive phase ends: the KL weight follows the decoder's updates
    through the phase and after it, and the best checkpoint is the lowest validation loss among those taken once the
    decoder had made 6 updates."""
    from vae_tf.checkpoints import checkpoint_steps

    monkeypatch.chdir(ROOT)
    ramp = 6
    args = [f"--output_dir={tmp_path}", "--run_name=warm", *tiny_args(
        num_steps=320, validation_step=4, validation_size=16, aggressive=True, aggressive_check_updates=1,
        kl_schedule="linear", kl_end_step=ramp, kl_start_value=0.1, kl_end_value=1.0)]
    assert train_main(args) == 0
    assert "validations are compared from decoder update 6 on" in capsys.readouterr().out
    log = rows(tmp_path / "warm" / "log.csv")
    before = decoder_updates_before(log)
    assert float(log[-1]["aggressive"]) == 0.0  # the phase ended: the last rows update both networks
    np.testing.assert_allclose([float(r["kl_weight"]) for r in log], 0.1 + 0.9 * np.minimum(before[:-1] / ramp, 1),
                               rtol=1e-6)
    validations = [(int(r["step"]), float(r["loss"])) for r in rows(tmp_path / "warm" / "validation.csv")]
    compared = [(loss, step) for step, loss in validations if before[step] >= ramp]
    assert len(compared) < len([v for v in validations if v[0] >= ramp])  # steps alone would compare more
    assert checkpoint_steps(tmp_path / "warm" / "checkpoints" / "best") == [min(compared)[1]]
    assert train_main([*args, "--num_steps=324"]) == 0  # resumed past the ramp: no note
    assert "validations are compared from" not in capsys.readouterr().out


@pytest.mark.parametrize("overrides, message", [
    (dict(aggressive=True, objective="factor_vae"), "objective factor_vae trains its discriminator"),
    (dict(aggressive=True, validation_step=0), "set validation_step > 0"),
    (dict(aggressive=True, strategy="mirrored", cpu_devices=2), "use strategy default"),
    (dict(aggressive=True, precision="mixed_float16"), "outside mixed_float16's loss scaling"),
    (dict(aggressive=True, model="m2", labels=30, label_factor="shape"), "model m2 trains a classifier"),
    (dict(aggressive=True, aggressive_check_updates=0), "aggressive_check_updates must be at least 1"),
    (dict(aggressive=True, learning_rate_schedule="cosine"), "learning_rate_schedule cosine would run on the encoder"),
])
def test_aggressive_training_it_cannot_drive_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, overrides,
                                                                          message):
    monkeypatch.chdir(ROOT)
    assert_train_refuses(tmp_path, capsys, overrides, message)
