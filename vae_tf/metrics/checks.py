"""The metrics' input checks: random states, protocol parameters and (codes, factors) arrays, each failure one
UserError line."""

import inspect
import math

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import type_of_target

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


def call_array_metric(fn, codes, protocol, **data):
    """fn(codes, **protocol) with those of `data` (factors, kinds, random_state, test sets) that `fn` takes: an array
    metric that reads only the codes takes no factors."""
    accepted = inspect.signature(fn).parameters
    return fn(codes, **{name: value for name, value in data.items() if name in accepted}, **protocol)


def takes_factors(fn):
    """Whether an array metric compares the codes with factors (the unsupervised scores read the codes alone)."""
    return "factors" in inspect.signature(fn).parameters


def check_protocol(fn, unknown, known=None, **values):
    """UserError for keywords `fn` does not know (`known`, default its published protocol) or counts below their least
    sensible value: name=(value, least)."""
    if unknown:
        raise UserError(f"unknown {fn.__name__} protocol parameter(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(published(fn) if known is None else known)}")
    for name, (value, least) in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise UserError(f"{fn.__name__} protocol parameter {name} must be an integer >= {least}, got {value!r}")


# --- observed (codes, factors) arrays ----------------------------------------------------------------------

DISCRETE, CONTINUOUS = "discrete", "continuous"


def matrix(values, name):
    """`values` as a finite numeric array [n, m] with n, m >= 1, or a UserError naming `name`."""
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as error:
        raise UserError(f"{name} is not a numeric array ({error}); pass a NumPy array [n, columns]") from None
    if array.dtype.kind not in "fiub":
        raise UserError(f"{name} has dtype {array.dtype}; it must hold numbers (a NumPy array [n, columns])")
    if array.ndim != 2:
        fix = f" (one column: {name}.reshape(-1, 1))" if array.ndim == 1 else ""
        raise UserError(f"{name} has shape {array.shape}; it must be 2-D [n, columns], one row per observation{fix}")
    if array.size == 0:
        raise UserError(f"{name} has shape {array.shape}; it needs at least one row and one column")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if len(bad):
        advice = " (codes of a diverged model: evaluate an earlier checkpoint)" if "codes" in name else ""
        raise UserError(f"{name} hold NaN or inf in {len(bad)} of {len(array)} rows (the first is row {bad[0]}); drop "
                        f"those rows{advice}")
    return array


def codes_of(codes, name="codes"):
    """Checked codes [n, d] as float64, n >= 2 (what the metrics of the codes alone read)."""
    codes = matrix(codes, name)
    _enough(len(codes))
    return codes.astype(np.float64)


def _enough(rows):
    if rows < 2:
        raise UserError(f"got {rows} observation: a metric compares observations, it needs at least 2 rows")


def factor_kinds(factors, kinds=None):
    """Each factor's kind, DISCRETE or CONTINUOUS: `kinds` as given (one for all factors, or one per factor), else
    inferred per column: discrete when every value is a whole number (scikit-learn's type_of_target says binary or
    multiclass), continuous otherwise."""
    if kinds is None:
        return [DISCRETE if type_of_target(column) in ("binary", "multiclass") else CONTINUOUS
                for column in factors.T]
    kinds = [kinds] * factors.shape[1] if isinstance(kinds, str) else list(kinds)
    if len(kinds) != factors.shape[1] or any(kind not in (DISCRETE, CONTINUOUS) for kind in kinds):
        raise UserError(f"kinds must be {DISCRETE!r} or {CONTINUOUS!r}, or a list of one of them per factor "
                        f"({factors.shape[1]}), got {kinds!r}")
    return kinds


def observed(codes, factors, kinds=None):
    """Checked codes [n, d], factors [n, k] and each factor's kind. Discrete factors become their class indices
    0 .. K−1 (in the order of their values), so any numbers can label classes; continuous ones stay as they are."""
    codes, factors = _rows_alike(codes, factors)
    _enough(len(codes))
    codes = codes if codes.dtype.kind == "f" else codes.astype(np.float64)
    kinds = factor_kinds(factors, kinds)
    for k, column in enumerate(factors.T):
        if np.all(column == column[0]):
            raise UserError(f"factor {k} takes one value ({column[0]:g}) in all {len(column)} rows: no metric can "
                            f"score a factor that does not vary; leave that column out")
    labels = [np.unique(column, return_inverse=True)[1] if kind == DISCRETE else column
              for column, kind in zip(factors.T, kinds)]
    return codes, np.stack(labels, axis=1).astype(np.float64), kinds


def _rows_alike(codes, factors, prefix=""):
    """Checked codes and factors (named with `prefix`) of as many rows."""
    codes, factors = matrix(codes, f"{prefix}codes"), matrix(factors, f"{prefix}factors")
    if len(codes) != len(factors):
        raise UserError(f"{prefix}codes have {len(codes)} rows but {prefix}factors have {len(factors)}: row i of both "
                        f"must describe the same observation{_transposed(codes, factors, prefix)}")
    return codes, factors


def _transposed(codes, factors, prefix):
    """Advice to transpose the codes or the factors when that makes their rows agree, else "": an array saved as
    [columns, n] is a common slip. When either would do, the one that leaves more rows, as observations usually
    outnumber dimensions and factors."""
    codes_fit, factors_fit = codes.shape[1] == len(factors), factors.shape[1] == len(codes)
    if codes_fit and (not factors_fit or len(factors) >= len(codes)):
        name, shape = "codes", codes.shape
    elif factors_fit:
        name, shape = "factors", factors.shape
    else:
        return ""
    return (f"; {prefix}{name} of shape {list(shape)} look transposed: transpose them to {list(shape[::-1])} "
            f"({prefix}{name}.T)")


def train_and_test(metric, codes, factors, kinds, test_codes, test_factors, test_size, random_state):
    """Checked (codes, factors, test_codes, test_factors, kinds): the test set given, else `test_size` of the rows
    held out at random (sklearn's train_test_split, seeded from `random_state`), so that rows in any order (a
    factor grid, sorted by class) split fairly."""
    if (test_codes is None) != (test_factors is None):
        raise UserError(f"{metric} takes test_codes and test_factors together: pass both, or neither to hold out "
                        f"test_size of the rows")
    if test_codes is not None:
        (codes, factors), (test_codes, test_factors) = (_rows_alike(c, f, name) for c, f, name in (
            (codes, factors, ""), (test_codes, test_factors, "test_")))
        for name, train, test in (("codes", codes, test_codes), ("factors", factors, test_factors)):
            if train.shape[1] != test.shape[1]:
                raise UserError(f"test_{name} have {test.shape[1]} columns but {name} {train.shape[1]}: both sets "
                                f"must hold the same dimensions and factors")
        both, labels, kinds = observed(np.concatenate([codes, test_codes]), np.concatenate([factors, test_factors]),
                                       kinds)  # together: a discrete factor's classes are numbered alike in both
        return both[:len(codes)], labels[:len(codes)], both[len(codes):], labels[len(codes):], kinds
    if isinstance(test_size, bool) or not isinstance(test_size, (float, int)) or not 0 < test_size < 1:
        raise UserError(f"{metric} protocol parameter test_size is the share of rows held out to test its "
                        f"predictors: a number between 0 and 1, got {test_size!r}")
    codes, factors, kinds = observed(codes, factors, kinds)
    held = math.ceil(test_size * len(codes))  # train_test_split's rounding
    if len(codes) - held < 2:
        raise UserError(f"{metric} holds out {held} of the {len(codes)} rows to test its predictors, leaving "
                        f"{len(codes) - held} to train them on; it needs at least 2: pass more rows")
    codes, test_codes, factors, test_factors = train_test_split(codes, factors, test_size=test_size,
                                                                random_state=seed_from(random_state))
    return codes, factors, test_codes, test_factors, kinds
