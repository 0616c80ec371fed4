"""`analyze.py`: every figure of the originals, and more, from a saved run folder alone.

`analyze(run_dir)` writes `<run>/analysis/` (graphs, training GIF, traversals, interpolations, reconstructions,
samples, latent-space projections, KL per dimension, summary.json); `score_run` adds the disentanglement metrics;
`export` copies the originals' curated files into `images/`; `compare` overlays several runs. One module per part:

- `encoding`: the test images and their posteriors (`evaluation_images`, `Encoded`);
- `training_figures`: what the logs and snapshots give without a checkpoint (graphs, MIG curve, training GIF);
- `model_figures`: what the model's codes and decodings give (traversals, interpolations, samples, latent space);
- `report`: summary.json and its printed lines (test losses, likelihood, KL decomposition, active units, collapse);
- `scores`: the disentanglement metrics of a run and of the baseline representations;
- `compare`, `export`: several runs side by side; the curated files;
- `run`: `analyze`, the stages in order.

The studies (`vae_tf.study`) reuse `score_run`, `evaluation_images` and `likelihood_summary`; nothing here imports
the studies, whose files the analysis reads through `vae_tf.runs`.
"""

from vae_tf.analysis.compare import UDR_IMAGES, compare, runs_of
from vae_tf.analysis.encoding import Encoded, evaluation_images
from vae_tf.analysis.export import export
from vae_tf.analysis.report import (LIKELIHOOD_IMAGES, LIKELIHOOD_SAMPLES, is_current, likelihood_summary,
                                    read_summary, summary_lines)
from vae_tf.analysis.run import analysis_folder, analyze
from vae_tf.analysis.scores import baseline_params, score_baselines, score_run
from vae_tf.analysis.training_figures import snapshots

__all__ = ["LIKELIHOOD_IMAGES", "LIKELIHOOD_SAMPLES", "UDR_IMAGES", "Encoded", "analysis_folder", "analyze",
           "baseline_params", "compare", "evaluation_images", "export", "is_current", "likelihood_summary",
           "read_summary", "runs_of", "score_baselines", "score_run", "snapshots", "summary_lines"]
