"""The metrics that need a sampler: β-VAE and FactorVAE, and the sampling every sampler entry point shares.

A sampler metric is `fn(ground_truth, representation_fn, random_state, **protocol) -> dict`: `ground_truth` has the
interface of docs/datasets.md, `representation_fn` maps observations [n, ...] to codes [n, d] (for a VAE, the posterior
mean).
Observations are rendered and encoded CHUNK_IMAGES at a time (the study encoded 64 at a time), which changes the
random streams but not the sampling distributions.
"""

import numpy as np
from sklearn import linear_model

from vae_tf.errors import UserError
from vae_tf.metrics.checks import call_array_metric, check_protocol, random_state_of, seed_from
from vae_tf.metrics.probes import fit_quietly

CHUNK_IMAGES = 4096  # observations rendered and encoded per representation_fn call
# Why β-VAE and FactorVAE have no array form:
NEEDS_SAMPLER = ("it draws batches of observations that share one factor's value and renders them on demand, which "
                 "a fixed set of observed (codes, factors) pairs cannot supply")


# --- shared plumbing ---------------------------------------------------------------------------------------

def checked(representation_fn):
    """representation_fn returning finite float codes [n, d] with the same d on every call, or a UserError."""
    widths = set()

    def checked(observations):
        codes = representation_fn(observations)
        try:
            codes = np.asarray(codes)
        except (TypeError, ValueError) as error:
            raise UserError(f"representation_fn returned something that is not a numeric array ({error}); "
                            f"it must return codes as an array [n, d]") from None
        if codes.dtype.kind not in "fiub":
            raise UserError(f"representation_fn returned an array of dtype {codes.dtype}; it must return numbers "
                            f"[n, d]")
        if codes.ndim != 2:
            raise UserError(f"representation_fn returned an array of shape {codes.shape}; it must return a 2-D "
                            f"array [n, d], one row per observation (flatten each code: codes.reshape(len(codes), -1))")
        if len(codes) != len(observations):
            raise UserError(f"representation_fn returned {len(codes)} rows for {len(observations)} observations; "
                            f"it must return exactly one code row per observation")
        if codes.shape[1] == 0:
            raise UserError("representation_fn returned codes with 0 dimensions; it must return at least one per row")
        widths.add(codes.shape[1])
        if len(widths) > 1:
            raise UserError(f"representation_fn returned codes of different widths {sorted(widths)} in different "
                            f"calls; it must always return the same number of dimensions")
        if codes.dtype.kind != "f":
            codes = codes.astype(np.float64)
        bad = int(np.count_nonzero(~np.isfinite(codes).all(axis=1)))
        if bad:
            raise UserError(f"representation_fn returned NaN or inf codes for {bad} of {len(codes)} observations; "
                            f"a diverged model gives these: evaluate an earlier checkpoint or retrain")
        return codes

    return checked


def _encode(ground_truth, representation_fn, factors, random_state):
    """Codes [n, d] of the observations of factor indices [n, F], CHUNK_IMAGES per call."""
    return np.concatenate([representation_fn(ground_truth.sample_observations_from_factors(
        factors[i:i + CHUNK_IMAGES], random_state)) for i in range(0, len(factors), CHUNK_IMAGES)])


def _grouped_codes(ground_truth, representation_fn, factors, random_state):
    """Codes [points, group, d] of factor groups [points, group, F], encoding whole groups, ~CHUNK_IMAGES at once."""
    points, group, num_factors = factors.shape
    per_call = max(1, CHUNK_IMAGES // group)
    for start in range(0, points, per_call):
        chunk = factors[start:start + per_call]
        codes = representation_fn(ground_truth.sample_observations_from_factors(chunk.reshape(-1, num_factors),
                                                                                random_state))
        yield codes.reshape(len(chunk), group, -1)


def observe(ground_truth, representation_fn, random_state, *sizes):
    """For each size in turn, that many random observations as (codes [size, d], factors [size, F]): the observed
    pairs the array metrics score."""
    representation_fn = checked(representation_fn)
    samples = []
    for size in sizes:
        factors = np.asarray(ground_truth.sample_factors(size, random_state))
        samples.append((_encode(ground_truth, representation_fn, factors, random_state), factors))
    return samples


def score_observed(array_fn, ground_truth, representation_fn, random_state, num_train, num_test=0, **protocol):
    """The array metric `array_fn` of the codes of `num_train` random observations (with `num_test` fresh ones as
    its test set when num_test > 0): the sampled form of every metric that needs only observed pairs."""
    random_state = random_state_of(random_state)
    (codes, factors), *test = observe(ground_truth, representation_fn, random_state,
                                      *([num_train, num_test] if num_test else [num_train]))
    held_out = dict(zip(("test_codes", "test_factors"), test[0])) if test else {}
    return call_array_metric(array_fn, codes, protocol, factors=factors, random_state=random_state, **held_out)


# --- β-VAE metric ------------------------------------------------------------------------------------------

def beta_vae(ground_truth, representation_fn, random_state, *, batch_size=64, num_train=10000, num_eval=5000,
             **unknown):
    """The β-VAE metric (Higgins et al. 2017, "β-VAE: Learning Basic Visual Concepts with a Constrained Variational
    Framework").

    Each point: pick a factor k uniformly; sample `batch_size` pairs of factor vectors that agree on k; the
    feature is the mean over the pairs of |code(x1) − code(x2)| [d]; the label is k. A logistic regression is
    fitted on `num_train` points and scored on `num_eval` fresh points.

    Protocol (beta_vae_sklearn.gin): batch_size=64, num_train=10000, num_eval=5000; classifier
    sklearn LogisticRegression with default settings (beta_vae.py). The study ran scikit-learn of 2019, whose
    default solver was liblinear one-vs-rest; today's default (lbfgs, multinomial) is used here.

    Returns score (= eval_accuracy), train_accuracy, eval_accuracy. Chance is about 1 / num_factors.
    Needs a sampler (NEEDS_SAMPLER): it has no array form.
    """
    check_protocol(beta_vae, unknown, batch_size=(batch_size, 1), num_train=(num_train, 2), num_eval=(num_eval, 1))
    if ground_truth.num_factors < 2:
        raise UserError("the beta_vae metric classifies which factor a batch shares: it needs at least 2 factors")
    random_state, representation_fn = random_state_of(random_state), checked(representation_fn)

    def features(num_points):
        labels = random_state.randint(ground_truth.num_factors, size=num_points)
        first = np.asarray(ground_truth.sample_factors(num_points * batch_size, random_state))
        second = np.asarray(ground_truth.sample_factors(num_points * batch_size, random_state))
        first = first.reshape(num_points, batch_size, -1)
        second = second.reshape(num_points, batch_size, -1)
        rows = np.arange(num_points)
        second[rows, :, labels] = first[rows, :, labels]  # each pair agrees on its point's factor
        pairs = np.concatenate([first, second], axis=1)  # one group per point: its firsts, then its seconds
        out = [np.mean(np.abs(codes[:, :batch_size] - codes[:, batch_size:]), axis=1)
               for codes in _grouped_codes(ground_truth, representation_fn, pairs, random_state)]
        return np.concatenate(out), labels

    train_x, train_y = features(num_train)
    model = fit_quietly(linear_model.LogisticRegression(random_state=seed_from(random_state)), train_x, train_y)
    train_accuracy = float(np.mean(model.predict(train_x) == train_y))
    eval_x, eval_y = features(num_eval)
    eval_accuracy = float(np.mean(model.predict(eval_x) == eval_y))
    return {"score": eval_accuracy, "train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy}


# --- FactorVAE metric --------------------------------------------------------------------------------------

def factor_vae(ground_truth, representation_fn, random_state, *, batch_size=64, num_train=10000, num_eval=5000,
               num_variance_estimate=10000, prune_threshold=0.05, **unknown):
    """The FactorVAE metric (Kim & Mnih 2018, "Disentangling by Factorising").

    The per-dimension variance of the codes over `num_variance_estimate` random observations is the global
    scale; dimensions whose standard deviation is below `prune_threshold` count as collapsed and are left out.
    Each point: pick a factor k, sample `batch_size` observations sharing k's value; the active dimension with
    the smallest variance relative to its global variance votes for k. A majority-vote classifier (each
    dimension predicts the factor it got most votes for) is built from `num_train` points and scored on
    `num_eval` fresh ones.

    Protocol (factor_vae_metric.gin): batch_size=64, num_train=10000, num_eval=5000,
    num_variance_estimate=10000, prune_dims.threshold=0.05; variances with ddof=1 (factor_vae.py).
    When every dimension is collapsed the score is 0, as in factor_vae.py. num_active_dims counts the
    dimensions kept (factor_vae.py reports the length of its mask, i.e. every dimension).

    Returns score (= eval_accuracy), train_accuracy, eval_accuracy, num_active_dims.
    Needs a sampler (NEEDS_SAMPLER): it has no array form.
    """
    check_protocol(factor_vae, unknown, batch_size=(batch_size, 2), num_train=(num_train, 1), num_eval=(num_eval, 1),
                   num_variance_estimate=(num_variance_estimate, 2))
    if not isinstance(prune_threshold, (int, float)) or isinstance(prune_threshold, bool) or prune_threshold < 0:
        raise UserError(f"factor_vae protocol parameter prune_threshold must be a number >= 0, got {prune_threshold!r}")
    random_state, representation_fn = random_state_of(random_state), checked(representation_fn)
    sample = np.asarray(ground_truth.sample_factors(num_variance_estimate, random_state))
    global_variance = np.var(_encode(ground_truth, representation_fn, sample, random_state), axis=0, ddof=1)
    active = np.sqrt(global_variance) >= prune_threshold
    if not active.any():
        return {"score": 0.0, "train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}

    def votes(num_points):
        """Vote counts [num_factors, active dims]."""
        labels = random_state.randint(ground_truth.num_factors, size=num_points)
        factors = np.asarray(ground_truth.sample_factors(num_points * batch_size, random_state))
        factors = factors.reshape(num_points, batch_size, -1)
        rows = np.arange(num_points)
        factors[rows, :, labels] = factors[rows, :1, labels]  # the whole group takes its first member's value
        winners = [np.argmin(np.var(codes[..., active], axis=1, ddof=1) / global_variance[active], axis=1)
                   for codes in _grouped_codes(ground_truth, representation_fn, factors, random_state)]
        counts = np.zeros((ground_truth.num_factors, int(active.sum())), np.int64)
        np.add.at(counts, (labels, np.concatenate(winners)), 1)
        return counts

    train_votes = votes(num_train)
    classifier = np.argmax(train_votes, axis=0)  # the factor each active dimension stands for
    columns = np.arange(train_votes.shape[1])
    train_accuracy = float(train_votes[classifier, columns].sum() / train_votes.sum())
    eval_votes = votes(num_eval)
    eval_accuracy = float(eval_votes[classifier, columns].sum() / eval_votes.sum())
    return {"score": eval_accuracy, "train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy,
            "num_active_dims": int(active.sum())}
