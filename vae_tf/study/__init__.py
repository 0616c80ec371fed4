"""Studies: grids of runs on Ray, resumed, aggregated and plotted (docs/studies.md).

`spec` says what a study is, `trial` what one run of it does in its worker, `runner` places the runs on Ray, and
`results` rebuilds results.csv, the summary and the figures from the run folders.
"""

from vae_tf.study.spec import Choice, LogUniform, Study, Uniform

__all__ = ["Study", "Uniform", "LogUniform", "Choice"]
