"""Disentanglement metrics on any data set with ground-truth factors (DESIGN §3).

A metric is `fn(ground_truth, representation_fn, random_state, **protocol) -> dict`: `representation_fn` maps
observations [n, ...] to codes [n, d] (for a VAE, the posterior mean); the dict holds a headline `"score"` and the
metric's other figures as plain floats and lists (JSON-ready).

The default protocols are those of the unsupervised study of disentanglement_lib (Locatello et al. 2019,
"Challenging Common Assumptions in the Unsupervised Learning of Disentangled Representations"), read from
`disentanglement_lib/config/unsupervised_study_v1/metric_configs/{beta_vae_sklearn,factor_vae_metric,mig,dci,
sap_score}.gin` and the classifiers in `disentanglement_lib/evaluation/metrics/*.py`. `QUICK` holds smaller
protocols for everyday use. The implementation is our own.

Where each part lives: `sampled` (β-VAE, FactorVAE and the sampling the others share), `gaps` (MIG, SAP),
`importance` (DCI), `information` (discretisation), `probes` (how predictors are fitted), `checks` (inputs),
`suite` (the registry, the protocols, `evaluate`).
"""

from vae_tf.metrics.checks import random_state_of, seed_from
from vae_tf.metrics.gaps import mig, sap
from vae_tf.metrics.importance import dci
from vae_tf.metrics.sampled import beta_vae, factor_vae
from vae_tf.metrics.suite import (METRICS, METRICS_SEED, PROTOCOLS, QUICK, evaluate, format_table, images_needed,
                                  markdown_table, protocol_of)
