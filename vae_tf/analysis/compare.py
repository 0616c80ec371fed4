"""Several runs side by side: their curves overlaid, a table of their final figures, and UDR."""

from pathlib import Path

import numpy as np

from vae_tf import figures, latent_space
from vae_tf.analysis.encoding import Encoded, evaluation_images
from vae_tf.analysis.image_likelihoods import finished_log_likelihoods
from vae_tf.analysis.report import DECOMPOSITION
from vae_tf.analysis.training_figures import read_logs, read_mig
from vae_tf.errors import UserError
from vae_tf.figures import save_figure
from vae_tf.overwrite import begins_with, refuse_foreign
from vae_tf.runs import (STUDY_JSON, RunDir, final_figures, open_run, read_json, read_trial, replace_atomically,
                         write_json)

OTHER_OUTPUT = "move it away, or write the comparison elsewhere with --output"
UDR_IMAGES = 1000  # test images every run encodes for UDR (disentanglement_lib's udr num_data_points)


def _number(value):
    """A figure for a table: two decimals, or three significant digits once it is huge (5.9e+31, not 32 digits)."""
    return f"{value:.2f}" if abs(value) < 1e6 else f"{value:.3g}"


def _warn_if_unlike(params, note):
    """One warning per setting that makes the runs' curves incomparable when overlaid."""
    for name, describe in (("reconstruction_loss", "reconstruction losses, so their losses are in different units"),
                           ("image_size", "image sizes, so their losses sum over different numbers of pixels")):
        values = {}
        for run, p in params.items():
            values.setdefault(getattr(p, name), []).append(run)
        if len(values) > 1:
            listing = "; ".join(f"{value}: {', '.join(runs)}" for value, runs in values.items())
            note(f"warning: these runs have different {describe} ({listing})")


def _training_columns(final):
    return [str(final["steps"]), _number(final["loss"]), _number(final["reconstruction_loss"]),
            _number(final["kl_loss"]), f"{final['kl_weight']:.3g}"]


def _test_columns(summary):
    """A summary's test log-likelihood and KL decomposition (nats) as table cells; "–" before analyze.py ran."""
    test = summary.get("test", {})
    values = [summary.get("test_log_likelihood")] + [test.get(name) for name in DECOMPOSITION]
    return ["–" if value is None else f"{value:.2f}" for value in values]


def _classifier_columns(report, baselines):
    """A semi-supervised run's test accuracy of q(y|x) and of each logistic-regression baseline (`--label_baselines`)
    as table cells; "–" where a run has none."""
    if report is None:
        return ["–"] * (1 + len(baselines))
    return [f"{report['accuracy']:.2%}"] + [f"{report['baselines'][b]:.2%}" if b in report.get("baselines", {})
                                             else "–" for b in baselines]


def _accuracy_series(classifiers, params_of):
    """comparison_accuracy.png's lines: each labelled model's test accuracy of q(y|x), and each logistic-regression
    baseline's, against the run's labelled images (`params_of`: run name -> Params): name -> [(labels, accuracy)]."""
    series = {}
    for name, report in classifiers.items():
        params = params_of[name]
        series.setdefault(f"{params.model} ({params.label_factor})", []).append((params.labels, report["accuracy"]))
        for baseline, accuracy in report.get("baselines", {}).items():
            series.setdefault(f"logistic regression on {baseline}", []).append((params.labels, accuracy))
    return series


def runs_of(paths):
    """The run folders that `paths` name: a study folder (one holding study.json) stands for each of its runs."""
    found = []
    for path in map(Path, paths):
        if (path / STUDY_JSON).is_file():
            found += sorted(str(p) for p in path.iterdir() if RunDir(p).params_json.is_file())
        else:
            found.append(str(path))
    return found


def compare(run_dirs, output_dir=None, note=print, udr=False):
    """One figure overlaying the runs' KL and reconstruction curves, and a Markdown table of their final figures.

    Writes `comparison.png` and `comparison.md` into `output_dir` (default: the first run's parent folder), and
    `comparison_samples.png` stacking the samples.png of the runs analysed before, and with two semi-supervised runs
    analysed or more, `comparison_accuracy.png`: their test accuracy against their labelled images;
    returns the table. Runs of different losses or image sizes get a `note` each, and so does a run shipped without
    its log.csv (its training figures are left out; its MIG curve and test figures stay). `udr` also ranks the runs
    by UDR (`udr_scores`, written to `udr.json`) in a last column.
    """
    opened = [open_run(path) for path in run_dirs]
    runs = [run for run, _ in opened]
    names = [run.name for run in runs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserError(f"--compare got several runs named {', '.join(repeated)}; name each run once")
    _warn_if_unlike({name: params for name, (_, params) in zip(names, opened)}, note)
    logs, finals, summaries, metrics, protocols = _read_runs(runs, names, note)
    output = Path(output_dir) if output_dir else runs[0].path.parent
    # Only its own earlier tables are replaced: a file of the user's under one of these names is refused, first.
    refuse_foreign(output / "comparison.md", begins_with(b"| run |"), "comparison table", None, OTHER_OUTPUT)
    if udr:
        refuse_foreign(output / "udr.json", begins_with(b'{\n  "runs": '), "UDR record", None, OTHER_OUTPUT)
    output.mkdir(parents=True, exist_ok=True)
    ranked = udr_scores(runs, names, [params for _, params in opened], output) if udr else {}
    classifiers = {name: summary["classifier"] for name, summary in summaries.items() if "classifier" in summary}
    table = _table(finals, summaries, classifiers, metrics, protocols, ranked, paired_differences(runs, names),
                   names[0])
    if logs:
        save_figure(figures.comparison(logs, "comparison"), output / "comparison.png")
    migs = {name: mig for run, name in zip(runs, names) if (mig := read_mig(run))}
    if migs:
        save_figure(figures.mig_curves(migs, "MIG while training"), output / "comparison_mig.png")
    if len(classifiers) >= 2:
        series = _accuracy_series(classifiers, {name: params for name, (_, params) in zip(names, opened)})
        save_figure(figures.accuracy_against_labels(series, "q(y|x) on the test images against the labels it learnt "
                                                            "from"), output / "comparison_accuracy.png")
    samples = {name: run.analysis / "samples.png" for run, name in zip(runs, names)
               if (run.analysis / "samples.png").exists()}
    if samples:
        save_figure(figures.stacked_pictures(samples, "each run's samples.png, from the checkpoint it was analysed at"),
                    output / "comparison_samples.png")
    replace_atomically(output / "comparison.md", lambda temporary: Path(temporary).write_text(table))
    return table


def _read_runs(runs, names, note):
    """What the comparison reads of each run, by name: (log.csv's rows, the final training figures or None for a run
    shipped without its log, summary.json or the study's record, metrics.json's scores, their protocol)."""
    logs, finals, summaries, metrics, protocols = {}, {}, {}, {}, {}
    for run, name in zip(runs, names):
        if run.log_csv.exists() or not run.has_checkpoint("latest"):
            logs[name], validation = read_logs(run)
            finals[name] = final_figures(logs[name], validation)
        else:
            note(f"note: {run.path} has no log.csv (a run shipped as its checkpoint); its training curves and final "
                 f"training figures are left out")
            finals[name] = None
        summaries[name] = read_json(run.analysis / "summary.json") or _study_record(run)
        scored = read_json(run.analysis / "metrics.json")
        metrics[name], protocols[name] = scored.get("metrics", {}), scored.get("protocol", "–")
    return logs, finals, summaries, metrics, protocols


def paired_differences(runs, names):
    """{run name: (its mean test log p(x) minus the first run's, the standard error of the difference)}, image by
    image over analysis/likelihood.csv, for the runs whose finished estimate is of the first run's test images with as
    many samples (likelihood.json's `images_sha256` and `samples`): the spread of the images, which both share, is
    left out of the error. An analysis interrupted after its estimate (its summary.json older) pairs with none. {}
    when no other run pairs with the first."""
    estimates = [None if run.analysis_incomplete.exists() else finished_log_likelihoods(run.analysis)
                 for run in runs]
    if estimates[0] is None or len(estimates[0][1]) < 2:  # one image has no spread to take an error from
        return {}
    estimated, first = estimates[0]
    paired = {}
    for name, estimate in zip(names[1:], estimates[1:]):
        if estimate is not None and estimate[0] == estimated:
            difference = estimate[1] - first
            paired[name] = (float(difference.mean()), float(difference.std(ddof=1) / np.sqrt(len(difference))))
    return paired


def _table(finals, summaries, classifiers, metrics, protocols, ranked, paired, first):
    """comparison.md: a row per run of its final training figures, test figures, classifier, metrics and UDR, and
    with `paired` (`paired_differences`) its test log p(x) against the `first` run's, image by image."""
    from vae_tf.metrics import METRICS, markdown_table

    found = {metric for scores in metrics.values() for metric in scores}
    metric_names = [name for name in METRICS if name in found] + sorted(found - set(METRICS))
    baselines = list(dict.fromkeys(b for report in classifiers.values() for b in report.get("baselines", {})))
    header = (["run", "steps", "loss", "reconstruction", "KL", "KL weight", "active units", "test log p(x)",
               "test index-code MI", "test TC", "test dim-wise KL"]
              + ([f"test log p(x) − {first}'s, image by image"] if paired else [])
              + (["q(y\\|x) test accuracy"] + [f"logistic regression on {b}" for b in baselines]
                 if classifiers else [])
              + (["metric protocol"] + metric_names if metric_names else []) + (["UDR"] if ranked else []))
    rows = [[name] + (_training_columns(final) if final else ["–"] * 5)
            + [str(summaries[name].get("active_units", "–"))]
            + _test_columns(summaries[name])
            + ([f"{paired[name][0]:+.2f} ± {paired[name][1]:.2f}" if name in paired else "–"] if paired else [])
            + (_classifier_columns(classifiers.get(name), baselines) if classifiers else [])
            + ([protocols[name]] if metric_names else [])
            + [f"{metrics[name][m]['score']:.3f}" if m in metrics[name] else "–" for m in metric_names]
            + ([f"{ranked[name]:.3f}"] if ranked else [])
            for name, final in finals.items()]
    return markdown_table(header, rows)


def _study_record(run):
    """What a study recorded of a run it scored (its test log-likelihood) when the run has no analysis of its own."""
    record = read_trial(run.path) or {}
    return {"test_log_likelihood": record["test_log_likelihood"]} if record.get("test_log_likelihood") is not None else {}


def udr_scores(runs, names, params, output):
    """Each run's UDR (`metrics.udr_from_arrays`, Lasso) among `runs`, from the codes their latest checkpoints give the
    first UDR_IMAGES test images of their common data set, each dimension's KL deciding whether it is informative;
    the scores, pairwise figures and protocol go to `output/udr.json`. Returns {run name: score}."""
    from vae_tf.checkpoints import load_run
    from vae_tf.metrics import udr_from_arrays

    differing = [field for field in ("dataset", "image_size", "channels")
                 if len({getattr(each, field) for each in params}) > 1]
    if differing:
        raise UserError(f"--udr compares the runs' codes of the same images, but the runs differ in "
                        f"{', '.join(differing)}: compare runs of one data set and image size")
    untrained = [name for run, name in zip(runs, names) if not run.has_checkpoint("latest")]
    if untrained:
        raise UserError(f"--udr encodes images with each run, but {', '.join(untrained)} has no checkpoint yet: "
                        f"train it first")
    images = evaluation_images(params[0], UDR_IMAGES)[0]
    codes, kls = [], []
    for run in runs:
        encoded = Encoded(load_run(run.path), images)
        codes.append(np.column_stack([encoded.mean, *encoded.categories]))
        kls.append(np.concatenate([encoded.kl_per_dimension(),
                                   [latent_space.categorical_kl(q) for q in encoded.probabilities]]))
    result = udr_from_arrays(codes, kl=kls)
    write_json(output / "udr.json", {"runs": names, "dataset": params[0].dataset, "images": len(images),
                                     "correlation": "lasso", "checkpoint": "latest", **result})
    return dict(zip(names, result["model_scores"]))
