import math

import pytest
import tensorflow as tf

import vae_tf
from vae_tf.schedules import comparable_from, make_schedule


def weights(tiny, steps, **overrides):
    schedule = vae_tf.kl_weight_schedule(tiny(**overrides))
    return [schedule(step) for step in steps]


@pytest.mark.parametrize("overrides, step", [
    (dict(kl_schedule="constant", kl_end_step=500), 0),
    (dict(kl_schedule="linear", kl_end_step=500), 500),
    (dict(kl_schedule="linear", kl_end_step=500, kl_start_value=1.0, kl_end_value=1.0), 0),  # a weight that holds
    (dict(kl_schedule="cyclical", kl_end_step=800), 800),
    (dict(kl_schedule="capacity", kl_end_step=500, categorical_sizes=[3], categorical_end_step=700), 700),
    (dict(kl_schedule="linear", kl_end_step=900, categorical_sizes=[3], categorical_end_step=700), 900),
])
def test_validations_are_compared_from_the_last_ramps_end(tiny, overrides, step):
    assert comparable_from(tiny(**overrides)) == step


def test_constant_is_beta_at_every_step(tiny):
    assert weights(tiny, [0, 1, 10_000, 10**6], kl_schedule="constant", beta=4.0) == [4.0] * 4


def test_linear_anneal_holds_then_ramps_then_holds(tiny):
    # The VAE project's AE_1: 0 through step 3000, then +1/50000 per step, capped at 1.
    got = weights(tiny, [0, 2999, 3000, 3001, 28000, 53000, 60000], kl_schedule="linear",
                  kl_start_step=3000, kl_end_step=53000, kl_start_value=0.0, kl_end_value=1.0)
    assert got == pytest.approx([0, 0, 0, 1 / 50000, 0.5, 1, 1], abs=1e-7)


def test_linear_decrease(tiny):
    # The beta-VAE project's KLD_Decrease_40000_steps-100to1: max(1, 100 - step/400).
    steps = [0, 1, 4000, 39600, 40000, 50000]
    got = weights(tiny, steps, kl_schedule="linear", kl_start_step=0, kl_end_step=39600,
                  kl_start_value=100.0, kl_end_value=1.0)
    assert got == pytest.approx([max(1, 100 - s / 400) for s in steps], rel=1e-6)


def test_a_ramp_that_ends_where_it_starts_is_a_step_change(tiny):
    got = weights(tiny, [4, 5, 6], kl_schedule="linear", kl_start_step=5, kl_end_step=5,
                  kl_start_value=0.0, kl_end_value=2.0)
    assert got == [0.0, 2.0, 2.0]


def test_capacity_penalises_the_distance_to_a_ramping_target():
    schedule = make_schedule("capacity", beta=100.0, start_step=0, end_step=1000, start_value=0.0, end_value=25.0)
    assert float(schedule.weight(500)) == 100.0
    assert float(schedule.target(500)) == pytest.approx(12.5)
    assert float(schedule.penalty(tf.constant(10.0), 500)) == pytest.approx(100 * 2.5)
    assert float(schedule.penalty(tf.constant(30.0), 2000)) == pytest.approx(100 * 5.0)


def test_schedule_runs_in_graph_from_a_step_tensor_without_retracing():
    schedule = make_schedule("linear", beta=1.0, start_step=10, end_step=20, start_value=0.0, end_value=1.0)
    step = tf.Variable(0, dtype=tf.int64)
    weight = tf.function(lambda: schedule.weight(step))
    got = []
    for value in (0, 15, 25):
        step.assign(value)
        got.append(float(weight()))
    assert got == [0.0, 0.5, 1.0]
    assert weight.experimental_get_tracing_count() == 1


@pytest.mark.slow
def test_the_cosine_learning_rate_follows_sgdr_s_annealing_and_a_run_can_switch_to_it(tiny):
    params = tiny(learning_rate=2e-3, learning_rate_schedule="cosine", num_steps=100)
    schedule = vae_tf.build_model(params).learning_rate_at
    for step in (0, 25, 50, 99, 100, 150):
        expected = 2e-3 * 0.5 * (1 + math.cos(math.pi * min(step, 100) / 100))  # Loshchilov & Hutter 2017, eq. 5
        assert float(schedule(tf.constant(step, tf.int64))) == pytest.approx(expected, abs=2e-9)  # float32: 1e-6 of it
    # A constant-rate run resumed under the cosine schedule (and back, at a new rate) trains on from its checkpoint,
    # and a training step sets the rate its step has: the restored optimizer holds step 5's of the 6-step cosine run.
    vae_tf.train(tiny(run_name="switch", num_steps=3), progress=False)
    run = vae_tf.train(tiny(run_name="switch", num_steps=6, learning_rate_schedule="cosine"), progress=False)
    learning_rate = tiny().learning_rate * 0.5 * (1 + math.cos(math.pi * 5 / 6))
    assert float(vae_tf.load_run(run).optimizer.learning_rate) == pytest.approx(learning_rate, rel=1e-5)
    run = vae_tf.train(tiny(run_name="switch", num_steps=9, learning_rate=4e-4), progress=False)
    optimizer = vae_tf.load_run(run).optimizer
    assert (int(optimizer.iterations), float(optimizer.learning_rate)) == (9, pytest.approx(4e-4, rel=1e-6))
