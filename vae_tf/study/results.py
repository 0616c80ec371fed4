"""A study's results, rebuilt from its run folders alone: results.csv, study_summary.json, study.md and figures.

Each run folder with a trial.json is one row (runs still training have none and are counted as unfinished), so a
study can be re-aggregated at any time, after adding runs too: `python study.py --aggregate predictions/<study>`.
A rebuild never drops a run that results.csv lists unless asked (`--force`): its folder may be all that is gone.
"""

import csv
import difflib
import io
import math
from pathlib import Path

import numpy as np

from vae_tf.errors import UserError
from vae_tf.overwrite import refuse_fewer, refuse_foreign
from vae_tf.runs import (STUDY_JSON, RunDir, final_figures, read_json, read_log, read_trial, replace_atomically,
                         write_json)
from vae_tf.study.spec import run_name

RESULTS_CSV = "results.csv"
LOSSES = ("loss", "reconstruction_loss", "kl_loss")
FIGURES = {"metrics": "study_metrics.png", "correlation": "study_rank_correlation.png",
           "reconstruction": "study_reconstruction.png"}


def _row(run_dir, record, scores):
    """One run's row: its values, status, objective, final losses (as analyze.py --compare reports them: the mean of
    the last 100 logged steps), training time, likelihood, metric scores (its analysis/metrics.json, read by the
    caller)."""
    run = RunDir(run_dir)
    row = {"run": run.path.name, "status": record["status"], "reason": record.get("reason", ""),
           **record.get("values", {})}
    row.setdefault("objective", read_json(run.params_json).get("objective", ""))
    if record["status"] == "finished":
        log = read_log(run.log_csv) if run.log_csv.exists() else {}
        if log.get("step"):
            final = final_figures(log, {})  # no validation: results.csv has no column for it
            row["steps"] = final["steps"]
            row.update({name: final[name] for name in LOSSES})
        row["train_seconds"] = record.get("train_seconds")
        row["test_log_likelihood"] = record.get("test_log_likelihood")
        row.update({name: result["score"] for name, result in scores.get("metrics", {}).items()})
        row["metric_protocol"] = scores.get("protocol", "")
    return row


def _runs(folder):
    """Each run folder of the study with its trial.json record (None: unfinished); folders of neither are not runs."""
    for run_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        record = read_trial(run_dir)
        if record is not None or RunDir(run_dir).params_json.exists():
            yield run_dir, record


def found_runs(folder):
    """The names of the study folder's runs, finished, failed or unfinished (a run still training is not dropped)."""
    return [run_dir.name for run_dir, _ in _runs(folder)] if Path(folder).is_dir() else []


def collect(folder):
    """(rows, value columns, metric columns, names of the unfinished runs) of the study folder's runs."""
    rows, unfinished, values, metrics = [], [], [], []
    for run_dir, record in _runs(folder):
        if record is None:
            unfinished.append(run_dir.name)
            continue
        scores = read_json(RunDir(run_dir).analysis / "metrics.json")
        rows.append(_row(run_dir, record, scores))
        values += [name for name in record.get("values", {}) if name not in values]
        metrics += [name for name in scores.get("metrics", {}) if name not in metrics]
    return rows, values, metrics, unfinished


def _is_results(path):
    """Whether `path` is a results.csv a study wrote: its header starts with run, status."""
    try:
        with open(path, newline="") as file:
            return next(csv.reader(file), [])[:2] == ["run", "status"]
    except (UnicodeDecodeError, csv.Error):
        return False


def listed_runs(path):
    """The runs an existing results.csv lists ([] when there is none); a file of another kind there is refused."""
    if not Path(path).is_file():
        return []
    refuse_foreign(path, _is_results, "study's results table", instead="move it away")
    with open(path, newline="") as file:
        return [row["run"] for row in csv.DictReader(file)]


def refuse_dropping(folder, kept, force_option="--force"):
    """UserError (reading only) when rewriting the folder's results.csv with the runs `kept` would drop one it lists."""
    path = Path(folder) / RESULTS_CSV
    refuse_fewer(path, listed_runs(path), kept, ("run", "runs"), force_option)


def check_study_folder(path):
    """UserError unless `path` is a study folder (one holding study.json), saying what it is instead."""
    path = Path(path)
    if (path / STUDY_JSON).is_file():
        return
    fix = f"--aggregate takes a folder a study wrote (one holding {STUDY_JSON}), e.g. predictions/smoke"
    if not path.exists():
        siblings = [p.name for p in path.parent.iterdir() if p.is_dir()] if path.parent.is_dir() else []
        close = difflib.get_close_matches(path.name, siblings, n=1)
        problem = f"{path} not found" + (f" (did you mean {str(path.parent / close[0])!r}?)" if close else "")
    elif not path.is_dir():
        problem = f"{path} is a file, not a study folder"
    elif RunDir(path).params_json.is_file():
        problem = f"{path} is a run folder, not a study folder"
        if (path.parent / STUDY_JSON).is_file():
            fix = f"--aggregate its study folder, {path.parent}"
    elif not any(path.iterdir()):
        problem = f"{path} is an empty folder, not a study folder"
    else:
        problem = f"{path} is not a study folder (no {STUDY_JSON})"
    raise UserError(f"{problem}: {fix}")


def configuration(row, value_columns):
    """The configuration a run belongs to: its values but the seed."""
    return run_name({name: row[name] for name in value_columns if name != "seed" and name in row}) or "all"


def _finite(rows, column):
    return np.array([row[column] if isinstance(row.get(column), (int, float)) and row[column] is not None
                     and math.isfinite(row[column]) else np.nan for row in rows], np.float64)


def variance_shares(scores, objectives, configurations):
    """How much of a score's spread over runs each level explains: sums of squares (one-way nested ANOVA).

    scores [n] (finite), objectives [n] and configurations [n] labels (each configuration within one objective).
    objective: between objectives' means; hyper_parameters: between configurations of one objective; seed:
    between runs of one configuration. The three add up to 1 (0 each when every score is equal)."""
    scores, objectives, configurations = np.asarray(scores, np.float64), np.asarray(objectives), np.asarray(configurations)
    total = np.sum((scores - scores.mean()) ** 2)
    if total == 0:
        return {"objective": 0.0, "hyper_parameters": 0.0, "seed": 0.0}

    def between(labels):
        return sum(np.sum(labels == label) * (scores[labels == label].mean() - scores.mean()) ** 2
                   for label in np.unique(labels))
    objective, configuration_level = between(objectives), between(configurations)
    return {"objective": float(objective / total), "hyper_parameters": float((configuration_level - objective) / total),
            "seed": float((total - configuration_level) / total)}


def rank_correlation(rows, columns):
    """Spearman's rank correlation [len(columns), len(columns)] between columns over the runs where all are finite."""
    from scipy.stats import rankdata
    table = np.stack([_finite(rows, column) for column in columns], axis=1)
    table = table[np.isfinite(table).all(axis=1)]
    if len(table) < 3:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):  # Pearson's correlation of the ranks, ties averaged
        matrix = np.corrcoef(rankdata(table, axis=0), rowvar=False)
    return np.nan_to_num(np.atleast_2d(matrix), nan=0.0)  # a constant column ranks nothing: no correlation


def summarise(rows, value_columns, metric_columns, unfinished, select_by):
    """study_summary.json: counts, each configuration's mean and spread per score, the best run per objective, how
    much of each score the objective, its hyper-parameters and the seed explain, and the metrics' rank correlation."""
    finished = [row for row in rows if row["status"] == "finished"]
    scores = [column for column in metric_columns + ["test_log_likelihood", *LOSSES]
              if np.isfinite(_finite(finished, column)).any()]
    groups = {}
    for row in finished:
        groups.setdefault(configuration(row, value_columns), []).append(row)
    summary = {"runs": len(rows) + unfinished, "finished": len(finished), "failed": len(rows) - len(finished),
               "unfinished": unfinished, "metrics": metric_columns, "select_by": select_by,
               "failures": {row["run"]: row["reason"] for row in rows if row["status"] == "failed"},
               "configurations": {}, "best": {}, "variance_shares": {}, "rank_correlation": None}
    for name, members in groups.items():
        summary["configurations"][name] = {"objective": members[0]["objective"], "runs": len(members), **{
            column: {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v)), "min": float(np.nanmin(v)),
                     "max": float(np.nanmax(v))}
            for column in scores if np.isfinite(v := _finite(members, column)).any()}}
    if select_by in metric_columns:
        from vae_tf.metrics import LOWER_IS_BETTER
        pick = np.nanargmin if select_by in LOWER_IS_BETTER else np.nanargmax
        for objective in dict.fromkeys(row["objective"] for row in finished):
            members = [row for row in finished if row["objective"] == objective]
            values = _finite(members, select_by)
            if np.isfinite(values).any():
                best = members[int(pick(values))]
                summary["best"][objective] = {"run": best["run"], select_by: best[select_by]}
    for column in scores:
        values = _finite(finished, column)
        kept = [row for row, value in zip(finished, values) if np.isfinite(value)]
        if len(kept) > 1:
            summary["variance_shares"][column] = variance_shares(
                values[np.isfinite(values)], [row["objective"] for row in kept],
                [configuration(row, value_columns) for row in kept])
    correlated = metric_columns + ["reconstruction_loss"]
    matrix = rank_correlation(finished, correlated) if len(metric_columns) > 0 else None
    if matrix is not None:
        summary["rank_correlation"] = {"columns": correlated, "spearman": matrix.tolist()}
    return summary


def _markdown(name, summary, metric_columns):
    from vae_tf.metrics import markdown_table
    scores = metric_columns + ["test_log_likelihood", "reconstruction_loss"]
    shown = [s for s in scores if any(s in c for c in summary["configurations"].values())]
    lines = [f"# Study {name}\n", f"{summary['finished']} runs finished, {summary['failed']} failed, "
             f"{summary['unfinished']} unfinished.\n", "## Each configuration over its seeds (mean ± std)\n"]
    rows = [[config, str(values["runs"])] + [f"{values[s]['mean']:.3f} ± {values[s]['std']:.3f}" if s in values
                                             else "–" for s in shown]
            for config, values in summary["configurations"].items()]
    lines.append(markdown_table(["configuration", "runs"] + shown, rows))
    if summary["variance_shares"]:
        lines.append("\n## Share of each score's variance explained by\n")
        lines.append(markdown_table(["score", "objective", "hyper-parameters", "seed"], [
            [score, *(f"{shares[level]:.2f}" for level in ("objective", "hyper_parameters", "seed"))]
            for score, shares in summary["variance_shares"].items()]))
    if summary["best"]:
        lines.append(f"\n## Best run per objective by {summary['select_by']}\n")
        lines.append(markdown_table(["objective", "run", summary["select_by"]], [
            [objective, best["run"], f"{best[summary['select_by']]:.3f}"] for objective, best in summary["best"].items()]))
    if summary["failures"]:
        lines.append("\n## Failed runs\n")
        lines.append(markdown_table(["run", "reason"], [[run, reason] for run, reason in summary["failures"].items()]))
    return "\n".join(lines)


def _write_csv(path, rows, columns):
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({column: "" if row.get(column) is None else row.get(column, "") for column in columns}
                     for row in rows)
    replace_atomically(path, lambda temporary: Path(temporary).write_text(text.getvalue()))


def aggregate(folder, force=False, force_option="--force"):
    """Rebuild results.csv, study_summary.json, study.md and the figures of a study folder; returns the summary.

    The best run per objective is picked by study.json's select_by (the study's), else by the first metric. Nothing
    is written when results.csv lists a run that would lose its row (its folder gone, or its trial.json), unless
    `force`; the refusal names `force_option` as the way to force it."""
    from vae_tf import figures  # matplotlib, only when figures are drawn

    folder = Path(folder)
    rows, value_columns, metric_columns, unfinished = collect(folder)
    if not force:  # a run results.csv lists must keep its row: an unfinished run (no readable trial.json) has none
        refuse_dropping(folder, [row["run"] for row in rows], force_option)
    select_by = read_json(folder / STUDY_JSON).get("select_by") or (metric_columns[0] if metric_columns else None)
    columns = (["run", "status"] + value_columns + (["objective"] if "objective" not in value_columns else [])
               + ["steps", *LOSSES, "train_seconds", "test_log_likelihood", "metric_protocol"] + metric_columns
               + ["reason"])
    _write_csv(folder / RESULTS_CSV, rows, columns)
    summary = summarise(rows, value_columns, metric_columns, len(unfinished), select_by)
    write_json(folder / "study_summary.json", summary)
    text = _markdown(folder.name, summary, metric_columns)
    replace_atomically(folder / "study.md", lambda temporary: Path(temporary).write_text(text))
    finished = [row for row in rows if row["status"] == "finished"]
    if finished and metric_columns:
        by_configuration = {}
        for row in finished:
            by_configuration.setdefault(configuration(row, value_columns), row["objective"])
        groups = {metric: {config: _finite([r for r in finished if configuration(r, value_columns) == config], metric)
                           for config in by_configuration} for metric in metric_columns}
        figures.save_figure(figures.study_scores(groups, by_configuration, f"{folder.name}: scores over seeds"),
                            folder / FIGURES["metrics"])
        figures.save_figure(figures.study_reconstruction({m: _finite(finished, m) for m in metric_columns},
                                                         _finite(finished, "reconstruction_loss"),
                                                         [row["objective"] for row in finished],
                                                         f"{folder.name}: scores against reconstruction"),
                            folder / FIGURES["reconstruction"])
        if summary["rank_correlation"]:
            correlation = summary["rank_correlation"]
            figures.save_figure(figures.rank_correlation(np.array(correlation["spearman"]), correlation["columns"],
                                                         f"{folder.name}: Spearman rank correlation over runs"),
                                folder / FIGURES["correlation"])
    return summary
