"""Disentanglement metrics, from a ground-truth sampler or from plain (codes, factors) arrays (docs/metrics.md).

A sampled metric is `METRICS[name](ground_truth, representation_fn, random_state, **protocol) -> dict`:
`representation_fn` maps observations [n, ...] to codes [n, d] (for a VAE, the posterior mean). An array metric is
`ARRAY_METRICS[name](codes, factors, **protocol) -> dict` on codes [n, d] and factors [n, k] the user already has;
each sampled form draws observations and calls the array form. Every dict holds a headline `"score"` and the metric's
other figures as plain floats and lists (JSON-ready). `evaluate` and `evaluate_arrays` run several.

The default protocols are those of the unsupervised study of disentanglement_lib (Locatello et al. 2019,
"Challenging Common Assumptions in the Unsupervised Learning of Disentangled Representations"), read from
`disentanglement_lib/config/unsupervised_study_v1/metric_configs/*.gin` and the classifiers in
`disentanglement_lib/evaluation/metrics/*.py`. `QUICK` holds smaller protocols for everyday use. The implementation
is our own. Importing this package does not import TensorFlow.

Where each part lives: `sampled` (β-VAE, FactorVAE and the sampling the others share), `gaps` (MIG, SAP),
`importance` (DCI), `modularity_explicitness`, `robustness` (IRS), `unsupervised` (the scores of the codes alone),
`downstream` (the downstream tasks), `ranking` (UDR, which scores a set of runs), `information` (binning, mutual
information), `probes` (the predictors and how they are fitted), `checks` (inputs), `suite` (the registry, the
protocols, the runners, the tables).
"""

from vae_tf.metrics.checks import CONTINUOUS, DISCRETE, random_state_of, seed_from
from vae_tf.metrics.downstream import (downstream_boosted_trees, downstream_boosted_trees_from_arrays,
                                       downstream_logistic_regression, downstream_logistic_regression_from_arrays)
from vae_tf.metrics.gaps import mig, mig_from_arrays, sap, sap_from_arrays
from vae_tf.metrics.importance import dci, dci_from_arrays
from vae_tf.metrics.modularity_explicitness import (explicitness, explicitness_from_arrays, modularity,
                                                    modularity_from_arrays)
from vae_tf.metrics.ranking import udr_from_arrays
from vae_tf.metrics.robustness import irs, irs_from_arrays
from vae_tf.metrics.sampled import beta_vae, factor_vae
from vae_tf.metrics.unsupervised import (code_mutual_information, code_mutual_information_from_arrays,
                                         gaussian_total_correlation, gaussian_total_correlation_from_arrays,
                                         gaussian_wasserstein_correlation, gaussian_wasserstein_correlation_from_arrays)
from vae_tf.metrics.suite import (ARRAY_METRICS, DEFAULT_METRICS, LOWER_IS_BETTER, METRICS, METRICS_SEED, PROTOCOLS, QUICK, SUITE,
                                  array_protocol_of, evaluate, evaluate_arrays, format_table,
                                  markdown_table, protocol_of, scalar_figures)

__all__ = [  # the runners and registries, then each metric's sampled and array forms
    "evaluate", "evaluate_arrays", "format_table", "markdown_table", "scalar_figures", "protocol_of",
    "array_protocol_of", "SUITE", "METRICS", "ARRAY_METRICS", "DEFAULT_METRICS", "PROTOCOLS",
    "LOWER_IS_BETTER", "QUICK", "METRICS_SEED", "DISCRETE", "CONTINUOUS", "random_state_of", "seed_from",
    "beta_vae", "factor_vae", "mig", "mig_from_arrays", "dci", "dci_from_arrays", "sap", "sap_from_arrays",
    "modularity", "modularity_from_arrays", "explicitness", "explicitness_from_arrays", "irs", "irs_from_arrays",
    "gaussian_total_correlation", "gaussian_total_correlation_from_arrays", "gaussian_wasserstein_correlation",
    "gaussian_wasserstein_correlation_from_arrays", "code_mutual_information", "code_mutual_information_from_arrays",
    "downstream_logistic_regression", "downstream_logistic_regression_from_arrays", "downstream_boosted_trees",
    "downstream_boosted_trees_from_arrays", "udr_from_arrays",
]
