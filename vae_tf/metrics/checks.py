"""The metrics' input checks: random states and protocol parameters, each failure one UserError line."""

import inspect

import numpy as np

from vae_tf.errors import UserError


def random_state_of(random_state):
    """A np.random.RandomState from an int seed (or the RandomState itself)."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    return np.random.RandomState(random_state)


def seed_from(random_state):
    """An int seed for a scikit-learn estimator, drawn from the metric's RandomState."""
    return int(random_state.randint(2 ** 31 - 1))


def published(fn):
    """A metric function's protocol: its keyword-only parameters and their defaults."""
    return {name: parameter.default for name, parameter in inspect.signature(fn).parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY}


def check_protocol(fn, unknown, **values):
    """UserError for keywords `fn` does not know or counts below their least sensible value: name=(value, least)."""
    if unknown:
        raise UserError(f"unknown {fn.__name__} protocol parameter(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(published(fn))}")
    for name, (value, least) in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise UserError(f"{fn.__name__} protocol parameter {name} must be an integer >= {least}, got {value!r}")
