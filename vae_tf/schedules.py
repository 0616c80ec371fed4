"""KL-term schedules: how the KL divergence enters the loss as a function of the training step.

Each schedule is one small class with the same hook, `penalty(kl, step)`; the model adds it to the
reconstruction loss. Every method works on Python numbers and inside a compiled `tf.function` on a
step tensor (no retracing per step).
"""

import tensorflow as tf


def linear_ramp(step, start_step, end_step, start_value, end_value):
    """`start_value` until `start_step`, a straight line to `end_value` at `end_step`, constant after.

    A ramp that ends where it starts is a step change: `end_value` from `end_step` on.
    """
    step = tf.cast(step, tf.float64)
    span = max(end_step - start_step, 1)
    ramp = tf.clip_by_value((step - start_step) / span, 0.0, 1.0)
    fraction = tf.where(step >= end_step, tf.ones_like(ramp), ramp)
    return tf.cast(start_value + (end_value - start_value) * fraction, tf.float32)


class Constant:
    """β-VAE (Higgins et al. 2017): loss = reconstruction + β·KL. β = 1 is the plain VAE, β = 0 an autoencoder."""

    def __init__(self, beta, start_step, end_step, start_value, end_value):
        self.beta = beta
        self.ramp = (start_step, end_step, start_value, end_value)

    def weight(self, step):
        return tf.constant(self.beta, tf.float32)

    def target(self, step):
        return tf.constant(0.0, tf.float32)

    def penalty(self, kl, step):
        return self.weight(step) * kl


class Linear(Constant):
    """KL annealing (Bowman et al. 2016, §3.1) and its reverse, the "KL decrease" runs: the weight ramps linearly."""

    def weight(self, step):
        return linear_ramp(step, *self.ramp)


class Capacity(Constant):
    """Controlled capacity (Burgess et al. 2018, eq. 8): loss = reconstruction + β·|KL − C|, C ramping linearly in nats."""

    def target(self, step):
        return linear_ramp(step, *self.ramp)

    def penalty(self, kl, step):
        return self.weight(step) * tf.abs(kl - self.target(step))


class CategoricalCapacity(Capacity):
    """The categoricals' term (Dupont 2018, eq. 7, plus a marginal and an independence term): γ·|KL_c − C_c|
    + λ·KL(q̄(c) ‖ U) + ρ·HSIC(mean, q(c|x)), C_c ramping linearly from 0 to its capacity, λ = `marginal_weight`,
    ρ = `independence`."""

    def __init__(self, gamma, start_step, end_step, capacity, marginal_weight, independence=0.0):
        super().__init__(gamma, start_step, end_step, 0.0, capacity)
        self.marginal_weight, self.independence = marginal_weight, independence

    def penalty(self, kl, step, marginal_kl=0.0, hsic=None):
        """`hsic` None: the independence term is off (its weight 0) and was not computed."""
        penalty = super().penalty(kl, step) + self.marginal_weight * marginal_kl
        return penalty if hsic is None else penalty + self.independence * hsic


KL_SCHEDULES = {"constant": Constant, "linear": Linear, "capacity": Capacity}


def make_schedule(kind, beta, start_step, end_step, start_value, end_value):
    return KL_SCHEDULES[kind](float(beta), int(start_step), int(end_step), float(start_value), float(end_value))


def kl_weight_schedule(params):
    """`step -> KL weight` as a Python float: the multiplier of KL (of |KL − C| for capacity) at that step."""
    schedule = make_schedule(params.kl_schedule, params.beta, params.kl_start_step, params.kl_end_step,
                             params.kl_start_value, params.kl_end_value)
    return lambda step: float(schedule.weight(step))
