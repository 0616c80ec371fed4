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

    ramps = False  # whether the KL term's weighting changes between kl_start_step and kl_end_step

    def __init__(self, beta, start_step, end_step, start_value, end_value):
        self.beta = beta
        self.ramp = (start_step, end_step, start_value, end_value)

    def settled_step(self):
        """The first step from which the term is weighted as it will be to the end (0: from the start)."""
        start_step, end_step, start_value, end_value = self.ramp
        return end_step if self.ramps and start_value != end_value else 0

    def weight(self, step):
        return tf.constant(self.beta, tf.float32)

    def target(self, step):
        return tf.constant(0.0, tf.float32)

    def penalty(self, kl, step):
        return self.weight(step) * kl


class Linear(Constant):
    """KL annealing (Bowman et al. 2016, §3.1) and its reverse, the "KL decrease" runs: the weight ramps linearly."""

    ramps = True

    def weight(self, step):
        return linear_ramp(step, *self.ramp)


class Capacity(Constant):
    """Controlled capacity (Burgess et al. 2018, eq. 8): loss = reconstruction + β·|KL − C|, C ramping linearly in nats."""

    ramps = True

    def target(self, step):
        return linear_ramp(step, *self.ramp)

    def penalty(self, kl, step):
        return self.weight(step) * tf.abs(kl - self.target(step))


class Cyclical(Constant):
    """Cyclical annealing (Fu et al. 2019, eq. 6): between kl_start_step and kl_end_step, `cycles` cycles of equal
    length, each a linear ramp from kl_start_value to kl_end_value over the first `ratio` of the cycle, then that
    value held; kl_start_value before, kl_end_value after. Each cycle reopens the code to information the decoder
    would otherwise learn to do without."""

    ramps = True

    def __init__(self, beta, start_step, end_step, start_value, end_value, cycles=4, ratio=0.5):
        super().__init__(beta, start_step, end_step, start_value, end_value)
        self.cycles, self.ratio = cycles, ratio

    def weight(self, step):
        start_step, end_step, start_value, end_value = self.ramp
        step = tf.cast(step, tf.float64)
        length = (end_step - start_step) / self.cycles
        within = tf.math.floormod(step - start_step, length) / length  # τ in [0, 1)
        fraction = tf.minimum(within / self.ratio, tf.ones_like(within))
        fraction = tf.where(step < start_step, tf.zeros_like(within),
                            tf.where(step >= end_step, tf.ones_like(within), fraction))
        return tf.cast(start_value + (end_value - start_value) * fraction, tf.float32)


class CategoricalCapacity(Capacity):
    """The categoricals' term (Dupont 2018, eq. 7, plus a marginal and an independence term): γ·|KL_c − C_c|
    + λ·KL(q̄(c) ‖ U) + ρ·HSIC(mean, q(c|x)), C_c ramping linearly from 0 to its capacity, λ = `marginal_weight`,
    ρ = `independence`."""

    def __init__(self, gamma, start_step, end_step, capacity, marginal_weight, independence):
        super().__init__(gamma, start_step, end_step, 0.0, capacity)
        self.marginal_weight, self.independence = marginal_weight, independence

    def penalty(self, kl, step, marginal_kl, hsic):
        """`hsic` None: the independence term is off (its weight 0) and was not computed."""
        penalty = super().penalty(kl, step) + self.marginal_weight * marginal_kl
        return penalty if hsic is None else penalty + self.independence * hsic


class Clocked:
    """`schedule` read at `clock(step)` rather than at the training step. Aggressive training's clock is the
    decoder's updates (`Model.schedule_step`): He et al. 2019 advance their KL warm-up once per decoder update, their
    outer iteration, and the encoder's inner updates, each a step here, leave it where it stands."""

    def __init__(self, schedule, clock):
        self.schedule, self.clock = schedule, clock

    def weight(self, step):
        return self.schedule.weight(self.clock(step))

    def target(self, step):
        return self.schedule.target(self.clock(step))

    def penalty(self, kl, step, *terms):
        """`terms`: the categoricals' marginal KL and HSIC, for their schedule."""
        return self.schedule.penalty(kl, self.clock(step), *terms)


KL_SCHEDULES = {"constant": Constant, "linear": Linear, "capacity": Capacity, "cyclical": Cyclical}


def make_schedule(kind, beta, start_step, end_step, start_value, end_value, **options):
    """`options`: a schedule's own (cyclical: cycles, ratio)."""
    return KL_SCHEDULES[kind](float(beta), int(start_step), int(end_step), float(start_value), float(end_value),
                              **options)


def schedule_of(params):
    """The KL schedule a run's `params` name."""
    options = (dict(cycles=params.kl_cycles, ratio=params.kl_cycle_ratio) if params.kl_schedule == "cyclical"
               else {})
    return make_schedule(params.kl_schedule, params.beta, params.kl_start_step, params.kl_end_step,
                         params.kl_start_value, params.kl_end_value, **options)


def comparable_from(params):
    """The first step whose loss weighs every scheduled term as the run's last step will (0: from the start): the end
    of the KL schedule's ramp and, with categorical latents, of their capacity's (JointVAE). Validation losses of
    earlier steps weigh them otherwise and are not compared with later ones (`jobs.Validate`)."""
    categorical = params.categorical_end_step if params.categorical_sizes and params.categorical_capacity != 0 else 0
    return max(schedule_of(params).settled_step(), categorical)


def schedule_unit(params):
    """What a run's schedule steps (kl_end_step, ...) count: training steps, or under aggressive training the decoder's
    updates (`Model.schedule_step`)."""
    return "decoder update" if params.aggressive else "step"


def kl_weight_schedule(params):
    """`step -> KL weight` as a Python float: the multiplier of KL (of |KL − C| for capacity) at that step (under
    aggressive training, at that many decoder updates: `Model.schedule_step`)."""
    schedule = schedule_of(params)
    return lambda step: float(schedule.weight(step))
