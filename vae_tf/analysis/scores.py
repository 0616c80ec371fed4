"""The disentanglement metrics of a run (metrics.json, metrics.csv) and of the baseline representations."""

import csv
import dataclasses
from pathlib import Path

from vae_tf.overwrite import begins_with, refuse_foreign
from vae_tf.runs import open_run, read_json, replace_atomically, write_json


def _ground_truth(params):
    from vae_tf.datasets import load_ground_truth
    return load_ground_truth(params.dataset, params.image_size, params.data_dir, channels=params.channels)


def score_run(run_dir, checkpoint="latest", quick=False, progress=True, names=None, output=None):
    """Disentanglement metrics of a run (`names`, default metrics.DEFAULT_METRICS) into
    `<run>/analysis/metrics.json`, and their numbers as one row of `metrics.csv` (`metrics.scalar_figures`);
    returns their Markdown table.

    `names` scores only those metrics and keeps the file's other scores when they are of the same weights, protocol
    and random_state (each metric draws from its own generator, so scoring in parts gives the scores of one call).
    `output`: the analysis folder, when not <run>/analysis.
    """
    from vae_tf import metrics
    from vae_tf.baselines import model_representation
    from vae_tf.checkpoints import load_run

    run, params = open_run(run_dir, checkpoint, output)
    ground_truth = _ground_truth(params)  # first: a data set without factors is a one-line error, not a model load
    model = load_run(run.path, checkpoint)
    scores = metrics.evaluate(ground_truth, model_representation(model), metrics.METRICS_SEED, names=names,
                              quick=quick, progress=progress)
    record = {"protocol": "quick" if quick else "default", "random_state": metrics.METRICS_SEED,
              "checkpoint": checkpoint,
              "checkpoint_step": int(model.optimizer.iterations.numpy()) if model.optimizer else None}
    earlier = read_json(run.analysis / "metrics.json")
    if names is not None and all(earlier.get(key) == value for key, value in record.items()):
        merged = {**earlier["metrics"], **scores}
        scores = {name: merged[name] for name in metrics.METRICS if name in merged}
    run.analysis.mkdir(parents=True, exist_ok=True)
    write_json(run.analysis / "metrics.json", {**record, "metrics": scores})
    row = {"run": params.run_name, **record, **metrics.scalar_figures(scores)}
    replace_atomically(run.analysis / "metrics.csv", lambda temporary: _write_row(temporary, row))
    return metrics.format_table({params.run_name: scores})


def _write_row(path, row):
    """A CSV file of a header and one row, from {column: value}."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(row)
        writer.writerow(row.values())


def baseline_params(dataset=None, run_dir=None):
    """The params whose data set and architecture the baselines use: `run_dir`'s, else params.py's (else the
    defaults), with `dataset` when given."""
    from vae_tf.params import load_params

    if run_dir is not None:
        params = open_run(run_dir)[1]
        return params if dataset is None else dataclasses.replace(params, dataset=dataset)
    return load_params("params.py" if Path("params.py").is_file() else None,
                       overrides={"dataset": dataset} if dataset else None)


def score_baselines(dataset=None, run_dir=None, quick=False, output_dir=None, progress=True, names=None):
    """The baseline representations' metrics (`names`, default all) on a data set, written to
    `<output_dir>/baselines_<dataset>.md|json`.

    The untrained model has the architecture of `run_dir` when given, else of params.py (else the defaults).
    """
    from vae_tf import metrics
    from vae_tf.baselines import evaluate_baselines

    params = baseline_params(dataset, run_dir)
    output = Path(output_dir or params.output_dir)
    stem = f"baselines_{params.dataset}" + ("_quick" if quick else "")
    for name, prefix in ((f"{stem}.md", b"| representation |"), (f"{stem}.json", b'{\n  "protocol": ')):
        refuse_foreign(output / name, begins_with(prefix), "baselines table", None,  # before minutes of scoring
                       "move it away, or write the baselines elsewhere with --output")
    ground_truth = _ground_truth(params)
    rows = evaluate_baselines(ground_truth, params, metrics.METRICS_SEED, metrics=names, quick=quick,
                              progress=progress)
    table = metrics.format_table(rows)
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / f"{stem}.json", {"protocol": "quick" if quick else "default",
                                         "random_state": metrics.METRICS_SEED,
                                         "dataset": params.dataset, "baselines": rows})
    replace_atomically(output / f"{stem}.md", lambda temporary: Path(temporary).write_text(table))
    return table
