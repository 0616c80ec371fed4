"""The metric suite: every metric by name (one `Metric` record each), their published and quick protocols, and the
runners `evaluate` (a ground-truth sampler and a representation) and `evaluate_arrays` (codes and factors arrays)."""

from typing import Callable, NamedTuple, Optional

import numpy as np
from tqdm.auto import tqdm

from vae_tf.errors import UserError
from vae_tf.metrics import downstream, unsupervised
from vae_tf.metrics.checks import call_array_metric, check_protocol, codes_of, observed, published, takes_factors
from vae_tf.metrics.gaps import mig, mig_from_arrays, sap, sap_from_arrays
from vae_tf.metrics.importance import dci, dci_from_arrays
from vae_tf.metrics.modularity_explicitness import (explicitness, explicitness_from_arrays, modularity,
                                                    modularity_from_arrays)
from vae_tf.metrics.robustness import irs, irs_from_arrays
from vae_tf.metrics.sampled import NEEDS_SAMPLER, beta_vae, factor_vae

METRICS_SEED = 0  # the random_state of every score vae_tf writes, so runs compare like for like


class Metric(NamedTuple):
    sampled: Callable  # fn(ground_truth, representation_fn, random_state, **protocol) -> dict
    from_arrays: Optional[Callable]  # fn(codes, factors, ...) -> dict, None for a metric that needs a sampler
    quick: dict  # the QUICK protocol
    images: Callable  # protocol -> observations the sampled form encodes (for progress bars)
    default: bool  # run when no names are given (evaluate, analyze.py --metrics)
    # The score of codes that know nothing of the factors, 10 Gaussian noise dimensions against shapes2d's five
    # factors drawn at random, n = 10,000 (benchmarks/chance_levels.py measures it; the command's help shows it): a
    # score near it does not tell a disentangled code from noise. Not always 0: explicitness is an ROC-AUC (0.5), the
    # downstream tasks an accuracy (about the mean of 1 / classes), and modularity and IRS score noise well. None for
    # the metrics that need a sampler.
    chance: Optional[float] = None


def _train_test(p):
    return p["num_train"] + p["num_test"]


def _train(p):
    return p["num_train"]


def _largest_and_test(p):
    return max(p["train_sizes"]) + p["num_test"]


# Smaller protocols for everyday use: ~50k encoded images for the default metrics instead of ~3M, the same
# classifiers, boosted trees of 10 rounds instead of 100 (their cost is per tree, not per sample), downstream tasks up
# to 1,000 examples. The default suite takes ~18 s for a 64×64 model on 2 busy CPU cores (benchmarks/bench_metrics.py,
# docs/speed.md). Scores are noisier, and the plug-in mutual information is more biased on fewer samples per bin:
# compare runs at the same protocol only. The downstream tasks fit a predictor per factor and training size (boosted
# trees at 10,000 examples cost about what DCI does), so they run only when named.
# Scores of dependence among the code's own dimensions: for these, lower is more disentangled (a study's best run is
# its lowest).
LOWER_IS_BETTER = frozenset({"gaussian_total_correlation", "gaussian_wasserstein_correlation", "code_mutual_information"})
SUITE = {
    "beta_vae": Metric(beta_vae, None, dict(batch_size=32, num_train=200, num_eval=100),
                       lambda p: (p["num_train"] + p["num_eval"]) * p["batch_size"] * 2, True),
    "factor_vae": Metric(factor_vae, None, dict(batch_size=32, num_train=200, num_eval=100,
                                                num_variance_estimate=2000, prune_threshold=0.05),
                         lambda p: p["num_variance_estimate"] + (p["num_train"] + p["num_eval"]) * p["batch_size"],
                         True),
    "mig": Metric(mig, mig_from_arrays, dict(num_train=2000, num_bins=20), _train, True, chance=0.0),
    "dci": Metric(dci, dci_from_arrays, dict(num_train=1000, num_test=500, n_estimators=10), _train_test, True,
                  chance=0.0),
    "sap": Metric(sap, sap_from_arrays, dict(num_train=2000, num_test=1000, continuous_factors=False), _train_test,
                  True, chance=0.0),
    "modularity": Metric(modularity, modularity_from_arrays, dict(num_train=2000), _train, True, chance=0.67),
    "explicitness": Metric(explicitness, explicitness_from_arrays, dict(num_train=2000, num_test=1000), _train_test,
                           True, chance=0.5),
    "irs": Metric(irs, irs_from_arrays, dict(num_train=2000), _train, True, chance=0.39),
    "gaussian_total_correlation": Metric(unsupervised.gaussian_total_correlation,
                                         unsupervised.gaussian_total_correlation_from_arrays, dict(num_train=2000),
                                         _train, True, chance=0.0),
    "gaussian_wasserstein_correlation": Metric(unsupervised.gaussian_wasserstein_correlation,
                                               unsupervised.gaussian_wasserstein_correlation_from_arrays,
                                               dict(num_train=2000), _train, True, chance=0.0),
    "code_mutual_information": Metric(unsupervised.code_mutual_information,
                                      unsupervised.code_mutual_information_from_arrays, dict(num_train=2000), _train,
                                      True, chance=0.02),
    "downstream_logistic_regression": Metric(downstream.downstream_logistic_regression,
                                             downstream.downstream_logistic_regression_from_arrays,
                                             dict(train_sizes=(10, 100, 1000), num_test=1000), _largest_and_test,
                                             False, chance=0.12),
    "downstream_boosted_trees": Metric(downstream.downstream_boosted_trees,
                                       downstream.downstream_boosted_trees_from_arrays,
                                       dict(train_sizes=(10, 100, 1000), num_test=1000, n_estimators=10),
                                       _largest_and_test, False, chance=0.12),
}

METRICS = {name: metric.sampled for name, metric in SUITE.items()}
ARRAY_METRICS = {name: metric.from_arrays for name, metric in SUITE.items() if metric.from_arrays}
DEFAULT_METRICS = [name for name, metric in SUITE.items() if metric.default]
PROTOCOLS = {name: published(fn) for name, fn in METRICS.items()}  # disentanglement_lib's study settings
QUICK = {name: metric.quick for name, metric in SUITE.items()}
_DATA = ("kinds", "random_state", "test_codes", "test_factors")  # what an array metric gets besides its protocol


def protocol_of(name, quick=False, **overrides):
    """The full protocol a metric runs with: the published one (or QUICK's) with overrides on top."""
    if name not in METRICS:
        raise UserError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    check_protocol(METRICS[name], set(overrides) - set(PROTOCOLS[name]))
    return {**PROTOCOLS[name], **(QUICK[name] if quick else {}), **overrides}


def evaluate(ground_truth, representation_fn, random_state=0, names=None, quick=False, progress=False,
             protocols=None, label=None):
    """Run the metrics `names` (default: DEFAULT_METRICS) on a ground truth and a representation -> {name: result}.

    Each metric gets its own np.random.RandomState(random_state), so a result depends only on the seed, the
    protocol and the representation, never on which other metrics ran. `quick` uses QUICK's protocols;
    `protocols` ({name: {parameter: value}}) overrides single parameters. `progress` shows a bar per metric
    counting encoded observations, titled `label: metric` when a `label` names the representation. `random_state`
    is an int seed.
    """
    names = list(DEFAULT_METRICS) if names is None else list(names)
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
        with tqdm(total=SUITE[name].images(protocol), desc=f"{label}: {name}" if label else name, unit="img",
                  disable=not progress) as bar:
            def counted(observations):
                codes = representation_fn(observations)
                bar.update(len(observations))
                return codes

            results[name] = METRICS[name](ground_truth, counted, np.random.RandomState(random_state), **protocol)
    return results


def array_protocol_of(name, quick=False, **overrides):
    """The protocol an array metric runs with: its defaults (or QUICK's where they apply) with overrides on top."""
    if name not in SUITE:
        raise UserError(f"unknown metric {name!r}; choose from {', '.join(ARRAY_METRICS)}")
    if name not in ARRAY_METRICS:
        raise UserError(f"{name} needs a sampler: {NEEDS_SAMPLER}; score it with "
                        f"metrics.evaluate(ground_truth, representation_fn)")
    defaults = {key: value for key, value in published(ARRAY_METRICS[name]).items() if key not in _DATA}
    check_protocol(ARRAY_METRICS[name], set(overrides) - set(defaults), known=defaults)
    return {**defaults, **{key: value for key, value in QUICK[name].items() if quick and key in defaults},
            **overrides}


def evaluate_arrays(codes, factors, names=None, kinds=None, random_state=0, quick=False, protocols=None):
    """Run the metrics `names` (default: those of DEFAULT_METRICS that need no sampler) on codes [n, d] and
    factors [n, k], row i of both describing one observation -> {name: result}. `factors` may be None when every
    metric named reads the codes alone (the unsupervised scores).

    `kinds` says which factors are discrete or continuous (`checks.factor_kinds`; default: inferred). Each metric
    gets its own np.random.RandomState(random_state) (for held-out rows and predictor seeds), so a result depends
    only on the seed, the protocol and the arrays. `quick` uses QUICK's values where they apply to arrays (fewer
    boosting rounds, fewer downstream sizes); `protocols` ({name: {parameter: value}}) overrides single parameters.
    """
    names = [name for name in DEFAULT_METRICS if name in ARRAY_METRICS] if names is None else list(names)
    protocols = protocols or {}
    stray = set(protocols) - set(ARRAY_METRICS)
    if stray:
        raise UserError(f"protocols for unknown array metric(s) {', '.join(sorted(stray))}; choose from "
                        f"{', '.join(ARRAY_METRICS)}")
    chosen = {name: array_protocol_of(name, quick, **protocols.get(name, {})) for name in names}
    needing = [name for name in chosen if takes_factors(ARRAY_METRICS[name])]
    if factors is None and needing:
        alone = [name for name, fn in ARRAY_METRICS.items() if not takes_factors(fn)]
        raise UserError(f"factors are needed by {', '.join(needing)}: pass factors [n, k], or score only metrics of "
                        f"the codes alone ({', '.join(alone)})")
    if needing:  # bad arrays fail before any metric runs
        observed(codes, factors, kinds)
    else:
        codes_of(codes)
    results = {}
    for name, protocol in chosen.items():
        results[name] = call_array_metric(ARRAY_METRICS[name], codes, protocol, factors=factors, kinds=kinds,
                                          random_state=np.random.RandomState(random_state))
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


def scalar_figures(results, prefix=""):
    """{metric: result dict} -> {column: number}: every number in the results, nested keys joined by dots, a metric's
    score under the metric's own name (`mig`, `mig.top_dims` is a list and left out, `downstream_boosted_trees.by_size.
    100.mean_test`). Lists stay in the JSON the results come from."""
    flat = {}
    for key, value in results.items():
        name = prefix if key == "score" and prefix else f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(scalar_figures(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = value
    return flat
