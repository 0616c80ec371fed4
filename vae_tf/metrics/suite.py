"""The metric suite: the registry of metrics by name, their published and quick protocols, and `evaluate`."""

import numpy as np
from tqdm.auto import tqdm

from vae_tf.errors import UserError
from vae_tf.metrics.checks import check_protocol, published
from vae_tf.metrics.gaps import mig, sap
from vae_tf.metrics.importance import dci
from vae_tf.metrics.sampled import beta_vae, factor_vae

METRICS_SEED = 0  # the random_state of every score vae_tf writes, so runs compare like for like

METRICS = {"beta_vae": beta_vae, "factor_vae": factor_vae, "mig": mig, "dci": dci, "sap": sap}


PROTOCOLS = {name: published(fn) for name, fn in METRICS.items()}  # disentanglement_lib's study settings

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
    check_protocol(METRICS[name], set(overrides) - set(PROTOCOLS[name]))
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
