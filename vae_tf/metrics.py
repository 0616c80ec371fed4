"""Disentanglement metrics on any data set with ground-truth factors (DESIGN §3).

A metric is `fn(ground_truth, representation_fn, random_state, **protocol) -> dict`: `representation_fn`
maps observations [n, ...] to codes [n, d] (for a VAE, the posterior mean); the dict holds a headline
`"score"` and the metric's other figures as plain floats and lists (JSON-ready).

The default protocols are those of the unsupervised study of disentanglement_lib (Locatello et al. 2019,
"Challenging Common Assumptions in the Unsupervised Learning of Disentangled Representations"), read from
`disentanglement_lib/config/unsupervised_study_v1/metric_configs/{beta_vae_sklearn,factor_vae_metric,mig,dci,
sap_score}.gin` and the classifiers in `disentanglement_lib/evaluation/metrics/*.py`. `QUICK` holds smaller
protocols for everyday use. The implementation is our own: observations are rendered and encoded
CHUNK_IMAGES at a time (the study encoded 64 at a time), which changes the random streams but not the
sampling distributions.
"""

import inspect
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn import ensemble, linear_model, metrics as sk_metrics, svm
from sklearn.exceptions import ConvergenceWarning
from tqdm.auto import tqdm

from vae_tf.errors import UserError

CHUNK_IMAGES = 4096  # observations rendered and encoded per representation_fn call
FIT_THREADS = os.cpu_count() or 1  # threads fitting DCI's per-factor trees (scikit-learn builds trees without the GIL)
METRICS_SEED = 0  # the random_state of every score vae_tf writes, so runs compare like for like


# --- shared plumbing ---------------------------------------------------------------------------------------

def _checked(representation_fn):
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


def seed_from(random_state):
    """An int seed for a scikit-learn estimator, drawn from the metric's RandomState."""
    return int(random_state.randint(2 ** 31 - 1))


def random_state_of(random_state):
    if isinstance(random_state, np.random.RandomState):
        return random_state
    return np.random.RandomState(random_state)


def _check(metric, unknown, **values):
    """UserError for unknown protocol keywords or counts below their least sensible value."""
    if unknown:
        raise UserError(f"unknown {metric} protocol parameter(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(_published(METRICS[metric]))}")
    for name, (value, least) in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise UserError(f"{metric} protocol parameter {name} must be an integer >= {least}, got {value!r}")


def _fit_quietly(model, x, y):
    """Fit a scikit-learn model without its convergence warnings (the study used default iteration limits)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def _top_two_gap(matrix):
    """Per column of [d, F]: largest minus second-largest entry (0 for the second when d == 1)."""
    ordered = np.sort(matrix, axis=0)[::-1]
    second = ordered[1] if len(ordered) > 1 else np.zeros(matrix.shape[1])
    return ordered[0] - second


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
    """
    _check("beta_vae", unknown, batch_size=(batch_size, 1), num_train=(num_train, 2), num_eval=(num_eval, 1))
    if ground_truth.num_factors < 2:
        raise UserError("the beta_vae metric classifies which factor a batch shares: it needs at least 2 factors")
    random_state, representation_fn = random_state_of(random_state), _checked(representation_fn)

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
    model = _fit_quietly(linear_model.LogisticRegression(random_state=seed_from(random_state)), train_x, train_y)
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
    """
    _check("factor_vae", unknown, batch_size=(batch_size, 2), num_train=(num_train, 1), num_eval=(num_eval, 1),
           num_variance_estimate=(num_variance_estimate, 2))
    if not isinstance(prune_threshold, (int, float)) or isinstance(prune_threshold, bool) or prune_threshold < 0:
        raise UserError(f"factor_vae protocol parameter prune_threshold must be a number >= 0, got {prune_threshold!r}")
    random_state, representation_fn = random_state_of(random_state), _checked(representation_fn)
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


# --- Mutual Information Gap --------------------------------------------------------------------------------

def _histogram_bins(codes, num_bins):
    """Each column of codes [n, d] discretised into num_bins equal-width bins over its own range -> ints [n, d].

    A column whose range is too narrow for num_bins distinct float edges (a collapsed latent, constant up to
    rounding) is one bin: numpy refuses to bin it, and it carries no information about any factor."""
    def bins(column):
        try:
            return np.digitize(column, np.histogram_bin_edges(column, num_bins)[:-1])
        except ValueError:  # "Too many bins for data range"
            return np.ones(len(column), np.int64)
    return np.stack([bins(column) for column in codes.T], axis=1)


def mig(ground_truth, representation_fn, random_state, *, num_train=10000, num_bins=20, **unknown):
    """The Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in Variational
    Autoencoders"), on discretised codes as in disentanglement_lib.

    Codes of `num_train` random observations are binned per dimension into `num_bins` equal-width bins; the
    mutual information I(code_j; factor_k) (sklearn mutual_info_score, nats) is computed for every pair; per
    factor, the gap between its two most informative dimensions divided by the factor's entropy H(factor_k);
    the score is the mean over factors.

    Protocol (mig.gin): num_train=10000, histogram_discretizer with num_bins=20 (mig.py, utils.py).
    A factor whose sampled values are all equal (entropy 0) scores 0.

    Returns score, per_factor (the normalised gaps), top_dims (each factor's most informative dimension).
    """
    _check("mig", unknown, num_train=(num_train, 1), num_bins=(num_bins, 1))
    random_state, representation_fn = random_state_of(random_state), _checked(representation_fn)
    factors = np.asarray(ground_truth.sample_factors(num_train, random_state))
    binned = _histogram_bins(_encode(ground_truth, representation_fn, factors, random_state), num_bins)
    information = np.array([[sk_metrics.mutual_info_score(factors[:, k], binned[:, j])
                             for k in range(factors.shape[1])] for j in range(binned.shape[1])])  # [d, F]
    entropy = np.array([sk_metrics.mutual_info_score(factor, factor) for factor in factors.T])
    gaps = np.divide(_top_two_gap(information), entropy, out=np.zeros(len(entropy)), where=entropy > 0)
    return {"score": float(np.mean(gaps)), "per_factor": gaps.tolist(),
            "top_dims": np.argmax(information, axis=0).tolist()}


# --- DCI ---------------------------------------------------------------------------------------------------

def _one_minus_entropy(weights, base):
    """1 − entropy (log base `base`) of each row of non-negative weights [m, base], as in dci.py (+1e-11 keeps
    all-zero rows defined: they count as uniform)."""
    if base == 1:
        return np.ones(len(weights))  # one outcome: nothing to spread over
    p = weights + 1e-11
    p = p / p.sum(axis=1, keepdims=True)
    return 1.0 + np.sum(p * np.log(p), axis=1) / math.log(base)


def _weighted(per_row, weights):
    """Mean of per_row weighted by each row's share of the total weight (uniform when all weights are 0)."""
    totals = weights.sum(axis=1)
    if totals.sum() == 0:
        totals = np.ones_like(totals)
    return float(np.sum(per_row * totals / totals.sum()))


def dci(ground_truth, representation_fn, random_state, *, num_train=10000, num_test=5000, n_estimators=100,
        **unknown):
    """Disentanglement, completeness, informativeness (Eastwood & Williams 2018, "A Framework for the Quantitative
    Evaluation of Disentangled Representations", §2-3), with gradient-boosted trees as in disentanglement_lib.

    One GradientBoostingClassifier per factor (FIT_THREADS fitted at a time) predicts the factor from the codes of
    `num_train` observations; its feature_importances_ fill column k of the importance matrix R [d, F].
    Disentanglement: per dimension, 1 − entropy (base F) of its normalised row, weighted by the row's share of all
    importance. Completeness: per factor, 1 − entropy (base d) of its normalised column, weighted alike.
    Informativeness: mean classification accuracy over factors on the training and on `num_test` fresh
    observations.

    Protocol (dci.gin): num_train=10000, num_test=5000; GradientBoostingClassifier with scikit-learn's defaults
    (dci.py), whose n_estimators=100 is exposed so QUICK can lower it (multi-class boosting fits n_estimators
    trees per factor value: 11,300 trees for shapes2d's 113 values).

    Returns score (= disentanglement), disentanglement, completeness, informativeness_train,
    informativeness_test.
    """
    _check("dci", unknown, num_train=(num_train, 1), num_test=(num_test, 1), n_estimators=(n_estimators, 1))
    random_state, representation_fn = random_state_of(random_state), _checked(representation_fn)
    train_factors = np.asarray(ground_truth.sample_factors(num_train, random_state))
    train_codes = _encode(ground_truth, representation_fn, train_factors, random_state)
    test_factors = np.asarray(ground_truth.sample_factors(num_test, random_state))
    test_codes = _encode(ground_truth, representation_fn, test_factors, random_state)
    fitted = [k for k in range(train_factors.shape[1]) if len(np.unique(train_factors[:, k])) > 1]
    seeds = [seed_from(random_state) for _ in fitted]  # drawn in factor order: the result ignores FIT_THREADS

    def fit(k, seed):
        return ensemble.GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed).fit(
            train_codes, train_factors[:, k])

    with ThreadPoolExecutor(max(1, min(FIT_THREADS, len(fitted)))) as pool:
        models = dict(zip(fitted, pool.map(fit, fitted, seeds)))
    importance = np.zeros((train_codes.shape[1], train_factors.shape[1]))
    train_accuracy, test_accuracy = [], []
    for k in range(train_factors.shape[1]):
        if k not in models:  # a constant factor: nothing to learn, trivially predicted
            train_accuracy.append(1.0)
            test_accuracy.append(float(np.mean(test_factors[:, k] == train_factors[0, k])))
            continue
        importance[:, k] = np.abs(models[k].feature_importances_)
        train_accuracy.append(float(np.mean(models[k].predict(train_codes) == train_factors[:, k])))
        test_accuracy.append(float(np.mean(models[k].predict(test_codes) == test_factors[:, k])))
    disentanglement = _weighted(_one_minus_entropy(importance, importance.shape[1]), importance)
    completeness = _weighted(_one_minus_entropy(importance.T, importance.shape[0]), importance.T)
    return {"score": disentanglement, "disentanglement": disentanglement, "completeness": completeness,
            "informativeness_train": float(np.mean(train_accuracy)),
            "informativeness_test": float(np.mean(test_accuracy))}


# --- SAP ---------------------------------------------------------------------------------------------------

def sap(ground_truth, representation_fn, random_state, *, num_train=10000, num_test=5000, continuous_factors=False,
        **unknown):
    """The Separated Attribute Predictability score (Kumar et al. 2018, "Variational Inference of Disentangled
    Latent Concepts from Unlabeled Observations", §3).

    For each (dimension j, factor k) a predictability score: for discrete factors, the test accuracy of a
    LinearSVC (C=0.01, balanced class weights) fitted on dimension j alone of `num_train` observations and
    tested on `num_test` fresh ones; for continuous factors, the squared correlation of code j and factor k on
    the training observations. Per factor, the gap between its two best dimensions; the score is their mean.

    Protocol (sap_score.gin): num_train=10000, num_test=5000, continuous_factors=False; LinearSVC(C=0.01,
    class_weight="balanced") (sap_score.py). A one-dimensional linear classifier separates few classes, so
    even a perfect code scores well below 1 on factors with many values.

    Returns score, per_factor (the gaps), score_matrix (`[d][F]` predictabilities).
    """
    _check("sap", unknown, num_train=(num_train, 1), num_test=(num_test, 1))
    if not isinstance(continuous_factors, (bool, np.bool_)):
        raise UserError(f"sap protocol parameter continuous_factors must be True or False, got {continuous_factors!r}")
    random_state, representation_fn = random_state_of(random_state), _checked(representation_fn)
    train_factors = np.asarray(ground_truth.sample_factors(num_train, random_state))
    train_codes = _encode(ground_truth, representation_fn, train_factors, random_state)
    test_factors = np.asarray(ground_truth.sample_factors(num_test, random_state))
    test_codes = _encode(ground_truth, representation_fn, test_factors, random_state)
    num_codes, num_factors = train_codes.shape[1], train_factors.shape[1]
    matrix = np.zeros((num_codes, num_factors))
    for k in range(num_factors):
        y, y_test = train_factors[:, k], test_factors[:, k]
        for j in range(num_codes):
            x, x_test = train_codes[:, j:j + 1].astype(np.float64), test_codes[:, j:j + 1].astype(np.float64)
            if continuous_factors:
                covariance = np.cov(x[:, 0], y)
                if covariance[0, 0] > 1e-12 and covariance[1, 1] > 0:
                    matrix[j, k] = covariance[0, 1] ** 2 / (covariance[0, 0] * covariance[1, 1])
            elif len(np.unique(y)) < 2:  # a constant factor: every dimension predicts it, no gap
                matrix[j, k] = float(np.mean(y_test == y[0]))
            else:
                model = svm.LinearSVC(C=0.01, class_weight="balanced", random_state=seed_from(random_state))
                matrix[j, k] = float(np.mean(_fit_quietly(model, x, y).predict(x_test) == y_test))
    gaps = _top_two_gap(matrix)
    return {"score": float(np.mean(gaps)), "per_factor": gaps.tolist(), "score_matrix": matrix.tolist()}


# --- the suite ---------------------------------------------------------------------------------------------

METRICS = {"beta_vae": beta_vae, "factor_vae": factor_vae, "mig": mig, "dci": dci, "sap": sap}


def _published(fn):
    return {name: parameter.default for name, parameter in inspect.signature(fn).parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY}


PROTOCOLS = {name: _published(fn) for name, fn in METRICS.items()}  # disentanglement_lib's study settings

# Smaller protocols for everyday use: ~37k encoded images in all instead of ~2.9M, the same classifiers, DCI
# boosting 10 rounds instead of 100 (its cost is per tree, not per sample). The suite takes ~20 s for the
# default model on 2 CPU cores (benchmarks/bench_metrics.py). Scores are noisier, and MIG's plug-in mutual
# information is more biased on fewer samples per bin: compare runs at the same protocol only.
QUICK = {
    "beta_vae": dict(batch_size=32, num_train=200, num_eval=100),
    "factor_vae": dict(batch_size=32, num_train=200, num_eval=100, num_variance_estimate=2000, prune_threshold=0.05),
    "mig": dict(num_train=2000, num_bins=20),
    "dci": dict(num_train=1000, num_test=500, n_estimators=10),
    "sap": dict(num_train=2000, num_test=1000, continuous_factors=False),
}

_IMAGES = {  # observations each metric encodes under a protocol (for progress bars)
    "beta_vae": lambda p: (p["num_train"] + p["num_eval"]) * p["batch_size"] * 2,
    "factor_vae": lambda p: p["num_variance_estimate"] + (p["num_train"] + p["num_eval"]) * p["batch_size"],
    "mig": lambda p: p["num_train"],
    "dci": lambda p: p["num_train"] + p["num_test"],
    "sap": lambda p: p["num_train"] + p["num_test"],
}


def protocol_of(name, quick=False, **overrides):
    """The full protocol a metric runs with: the published one (or QUICK's) with overrides on top."""
    if name not in METRICS:
        raise UserError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    _check(name, set(overrides) - set(PROTOCOLS[name]))
    return {**PROTOCOLS[name], **(QUICK[name] if quick else {}), **overrides}


def images_needed(name, quick=False, **overrides):
    """How many observations the metric renders and encodes under that protocol."""
    return _IMAGES[name](protocol_of(name, quick, **overrides))


def evaluate(ground_truth, representation_fn, random_state=0, names=None, quick=False, progress=False,
             protocols=None, label=None):
    """Run the metrics `names` (default: all of METRICS) -> {name: result dict}.

    Each metric gets its own np.random.RandomState(random_state), so a result depends only on the seed, the
    protocol and the representation, never on which other metrics ran. `quick` uses QUICK's protocols;
    `protocols` ({name: {parameter: value}}) overrides single parameters. `progress` shows a bar per metric
    counting encoded observations, titled `label: metric` when a `label` names the representation. `random_state`
    is an int seed.
    """
    names = list(METRICS) if names is None else list(names)
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    stray = set(protocols or {}) - set(METRICS)
    if stray:
        raise UserError(f"protocols for unknown metric(s) {', '.join(sorted(stray))}; choose from {', '.join(METRICS)}")
    results = {}
    for name in names:
        overrides = (protocols or {}).get(name, {})
        protocol = protocol_of(name, quick, **overrides)
        with tqdm(total=_IMAGES[name](protocol), desc=f"{label}: {name}" if label else name, unit="img",
                  disable=not progress) as bar:
            def counted(observations):
                codes = representation_fn(observations)
                bar.update(len(observations))
                return codes

            results[name] = METRICS[name](ground_truth, counted, np.random.RandomState(random_state), **protocol)
    return results


def markdown_table(header, rows):
    """A Markdown table: header [k] strings, rows [n][k] strings; numbers (all but the first column) right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def format_table(rows):
    """{row name: {metric: result dict}} -> a Markdown table of the scores (3 decimals; "–" where missing)."""
    columns = [name for name in METRICS if any(name in results for results in rows.values())]
    columns += sorted({name for results in rows.values() for name in results} - set(columns))
    return markdown_table(["representation"] + columns,
                          [[row] + [f"{results[name]['score']:.3f}" if name in results else "–" for name in columns]
                           for row, results in rows.items()])
