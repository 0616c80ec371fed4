"""A run folder `predictions/<run_name>/` (docs/runs.md): its paths and its files. Its weights: `vae_tf.checkpoints`."""

import contextlib
import csv
import dataclasses
import difflib
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from vae_tf.errors import UserError
from vae_tf.params import CHECKPOINTS, Params, saved_params

# A study's files in each of its run folders (vae_tf.study.trial): its record of the run, and what training printed
# (the study shows one line, not every run's progress); in the study folder, which study file owns it.
TRIAL_JSON = "trial.json"
TRIAL_LOG = "trial.log"
STUDY_JSON = "study.json"
FINAL_WINDOW = 100  # the "final" training figures average the last this many logged steps


def log_columns(step_figures):
    """log.csv's columns for a model's per-step figures."""
    return ("step",) + tuple(step_figures) + ("wall_time",)


def mig_columns(factor_names):
    """mig.csv's columns: the step, the seconds spent training until then, MIG, each factor's normalised gap and
    its most informative latent dimension."""
    return (("step", "train_seconds", "mig") + tuple(f"mig_{name}" for name in factor_names)
            + tuple(f"latent_{name}" for name in factor_names) + ("wall_time",))


def checkpoint_steps(folder):
    """The steps of the checkpoints `ckpt-<step>` in `folder` (those whose index file exists)."""
    return [int(index.stem.split("-")[1]) for index in Path(folder).glob("ckpt-*.index")
            if index.stem.split("-")[1].isdigit()]


class RunDir:
    """Where each file of a run lives."""

    def __init__(self, path, analysis=None):
        """analysis: where analyze.py writes this run's figures (default <run>/analysis; elsewhere for a read-only
        run)."""
        self.path = Path(path)
        self.params_json = self.path / "params.json"
        self.params_history = self.path / "params_history.jsonl"
        self.log_csv = self.path / "log.csv"
        self.validation_csv = self.path / "validation.csv"
        self.mig_csv = self.path / "mig.csv"
        self.latents_csv = self.path / "latents.csv"  # each validation's KL, I(x; z) and activity per dimension
        self.labelled_csv = self.path / "labelled.csv"  # a semi-supervised run's labelled images: position, class
        self.checkpoints = self.path / "checkpoints"
        self.best_checkpoints = self.path / "checkpoints" / "best"
        self.images = self.path / "images"
        self.logs = self.path / "logs"
        self.model_keras = self.path / "model.keras"
        self.analysis = Path(analysis) if analysis else self.path / "analysis"
        self.analysis_incomplete = self.analysis / "INCOMPLETE"  # there while analyze.py writes, so a Ctrl-C shows

    @property
    def name(self):
        """The run's name in exports and tables: its folder's (what the user sees and types), even for `.`."""
        return self.path.resolve().name

    def snapshot(self, step):
        return self.images / f"image_{step}.png"

    def has_checkpoint(self, which):
        """Whether the "latest", "best" or "final" checkpoint has been written."""
        return self.checkpoint_stamp(which) is not None

    def checkpoint_stamp(self, which):
        """What identifies the weights of checkpoint `which` without loading them: the step of the newest latest or
        best checkpoint, or model.keras's modification time; None when there is none."""
        if which == "final":
            return self.model_keras.stat().st_mtime_ns if self.model_keras.exists() else None
        return max(checkpoint_steps(self.checkpoints if which == "latest" else self.best_checkpoints), default=None)

    def read_params(self):
        try:
            values = json.loads(self.params_json.read_text())
        except FileNotFoundError:
            raise UserError(f"{self.path} is not a run folder (no params.json); "
                            f"runs are folders like predictions/<run_name>") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{self.params_json} is not valid JSON ({error}); restore it from a copy") from None
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(Params)}) if isinstance(values, dict) else []
        if not isinstance(values, dict) or unknown:
            raise UserError(f"{self.params_json} has parameters this version of vae_tf does not know "
                            f"({', '.join(unknown) or 'not a JSON object'}); was it written by another version?")
        return saved_params(values)


def record_params(run, previous, params, step):
    """Append `params` to the run's parameter history, one JSON line {"step", "params"} per change: the values that
    held from `step` on. A run from before the history starts it with its previous params from step 0."""
    lines = run.params_history.read_text().splitlines(keepends=True) if run.params_history.exists() else []
    if not lines and previous is not None:
        lines.append(json.dumps({"step": 0, "params": previous.to_dict()}) + "\n")
    if lines and json.loads(lines[-1])["params"] == json.loads(json.dumps(params.to_dict())):
        return
    lines.append(json.dumps({"step": step, "params": params.to_dict()}) + "\n")
    replace_atomically(run.params_history, lambda tmp: Path(tmp).write_text("".join(lines)))


def params_history(run_dir):
    """[(first step, Params)] of a run: which parameters held for which steps, oldest first."""
    run = RunDir(run_dir)
    if not run.params_history.exists():
        return [(0, run.read_params())]
    entries = [json.loads(line) for line in run.params_history.read_text().splitlines() if line.strip()]
    return [(entry["step"], saved_params(entry["params"])) for entry in entries]


def _read_umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


_FILE_MODE = 0o666 & ~_read_umask()  # read once, at import: os.umask can only be read by setting it


def replace_atomically(path, write):
    """Call `write(temporary_path)`, then move the result over `path` in one step: readers never see half a file."""
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    except OSError as error:  # named after the file wanted, not the temporary name it never got
        raise OSError(error.errno, error.strerror, str(path)) from error
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, _FILE_MODE)  # mkstemp makes files private (0600); results are not
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())  # the bytes reach the disk before the name points at them
        os.replace(temporary, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # and the rename itself survives a power loss
        finally:
            os.close(folder)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from error
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _json_ready(value):
    """Non-finite floats become null: JSON has no NaN, and a diverged figure must not make the file unreadable."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return value


def read_json(path):
    """A JSON object file as a dict; {} when it is missing or unreadable (what reads it treats it as optional)."""
    try:
        value = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def read_trial(run_dir):
    """A run's trial.json (a study's record of it) as a dict, or None when the run has not finished (or its record
    is unreadable)."""
    record = read_json(Path(run_dir) / TRIAL_JSON)
    return record if record.get("status") in ("finished", "failed") else None


def write_json(path, values):
    text = json.dumps(_json_ready(values), indent=2, allow_nan=False) + "\n"
    replace_atomically(path, lambda tmp: Path(tmp).write_text(text))


def check_columns(path, header, columns):
    """UserError when a log's `header` has columns this run does not write: resuming would rewrite the log without
    them."""
    unknown = [name for name in header if name not in columns]
    if unknown:
        raise UserError(f"{path} has the columns {', '.join(unknown)}, which this run does not write (a newer vae_tf, "
                        f"or other settings, wrote them); resume it with the version and settings that started it, "
                        f"or pick a new --run_name")


def log_header(path):
    """The column names of a CSV log's first line ([] when it is missing or empty)."""
    try:
        with open(path, newline="") as file:
            return next(csv.reader(file), [])
    except (FileNotFoundError, UnicodeDecodeError, csv.Error):
        return []


def latent_history(path):
    """[(active units, I(x; z), KL)] of a run's latents.csv, in step order ([] when there is none)."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as file:
        return [(int(row["active_units"]), float(row["mutual_information"]), float(row["kl"]))
                for row in csv.DictReader(file) if None not in row.values()]


class CsvLog:
    """An append-only CSV of per-step rows that resumes cleanly.

    Rows at or after the resumed step belong to work that was lost with an unsaved checkpoint; they
    are dropped when resuming (and written again, identically, as training redoes those steps). A log begun without
    some of `columns` (by an older vae_tf, or before a setting that adds a figure) keeps its own columns: its rows
    stay one length, the others' figures go to TensorBoard alone (train.py says so when it resumes).
    """

    def __init__(self, path, columns, resume_step):
        columns = tuple(columns)
        self.path, self.columns = Path(path), columns  # the file's own header, if it has one, replaces them below
        if self.path.exists():
            try:
                with open(self.path, newline="") as file:
                    reader = csv.DictReader(file)
                    rows, header = list(reader), reader.fieldnames or []
            except (csv.Error, UnicodeDecodeError) as error:
                raise UserError(f"{self.path} is not a readable CSV ({error}); move it away to resume "
                                f"without it") from None
            check_columns(self.path, header, columns)
            self.columns = tuple(header) or columns
            # A crash can leave a half-written last line: keep only complete rows before the resumed step.
            fitted = [_fit_header(row, header, columns) for row in rows]
            kept = [row for row in fitted if row is not None and None not in row.values() and _step(row) < resume_step]
            if fitted != rows or len(kept) < len(rows) or not header:
                replace_atomically(self.path, lambda tmp: self._write_rows(tmp, kept))
        else:
            replace_atomically(self.path, lambda tmp: self._write_rows(tmp, []))
        self._indices = [columns.index(name) for name in self.columns]  # a row of `columns` -> this file's
        self.file = open(self.path, "a", newline="")
        self.writer = csv.writer(self.file)

    def _write_rows(self, path, rows):
        with open(path, "w", newline="") as file:
            writer = csv.DictWriter(file, self.columns)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, values):
        self.writer.writerow([_format(values[column]) for column in self.columns])

    def append_rows(self, rows):
        """Rows given as sequences in the order of the `columns` the log was opened with."""
        with self._named_errors():
            self.writer.writerows([_format(row[i]) for i in self._indices] for row in rows)

    def flush(self):
        with self._named_errors():
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self):
        try:
            self.flush()
        finally:
            self.file.close()

    @contextlib.contextmanager
    def _named_errors(self):
        """A failed write to the open file names the file (the OSError of a write names none)."""
        try:
            yield
        except OSError as error:
            if error.filename is not None:
                raise
            raise OSError(error.errno, error.strerror, str(self.path)) from error


def _fit_header(row, header, columns):
    """A log's row as its header names it. vae_tf before 8b52e19 appended rows of all of `columns` under a header
    lacking some: such a row (its extra fields under the key None) is read back as `columns` names it and cut to the
    header's; one of another length is None (dropped)."""
    if None not in row:
        return row
    fields = [row[name] for name in header] + row[None]
    if len(fields) != len(columns):
        return None
    return {name: value for name, value in zip(columns, fields) if name in header}


def _step(row):
    """A row's step, or infinity for a row whose step a crash cut short (it is dropped)."""
    text = row.get("step") or ""
    return int(text) if text.isdigit() else float("inf")


def _format(value):
    return repr(value) if isinstance(value, float) else value


def read_log(path):
    """A log CSV as a dict column -> list of floats (NaN where the run logged one).

    A last line without its line end is being written (or was cut by a crash) and is left out.
    """
    try:
        lines = Path(path).read_text().splitlines(keepends=True)
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not a readable CSV ({error}); restore it from a copy") from None
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    reader = csv.DictReader(lines)
    rows = [row for row in reader if None not in row and None not in row.values() and "" not in row.values()]
    try:
        return {column: [float(row[column]) for row in rows] for column in reader.fieldnames or []}
    except (ValueError, TypeError) as error:
        raise UserError(f"{path} has a value that is not a number ({error}); restore it from a copy") from None


def final_figures(log, validation):
    """The run's final figures: training ones averaged over the last FINAL_WINDOW steps, the last validation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every value NaN (a diverged run): the mean is NaN
        final = {name: float(np.nanmean(log[name][-FINAL_WINDOW:]))
                 for name in ("loss", "reconstruction_loss", "kl_loss", "kl_weight")}
    final["steps"] = int(log["step"][-1]) + 1
    if validation.get("step"):
        final["validation_loss"] = validation["loss"][-1]
    return final


def open_run(run_dir, checkpoint="latest", analysis=None):
    """(RunDir, Params) of an existing run folder, after checking the name of the checkpoint wanted from it;
    `analysis`: its analysis folder, when not <run>/analysis."""
    run = RunDir(run_dir, analysis)
    if not run.path.is_dir():
        parent = run.path.parent
        siblings = [p.name for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
        close = difflib.get_close_matches(run.path.name, siblings, n=1)
        hint = f" (did you mean {str(parent / close[0])!r}?)" if close else ""
        raise UserError(f"run folder {str(run.path)!r} not found{hint}")
    if checkpoint not in CHECKPOINTS:
        raise UserError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}")
    return run, run.read_params()
