"""A run folder `predictions/<run_name>/` (DESIGN §5): its paths, its files, and `load_run`."""

import csv
import json
import os
import tempfile
from pathlib import Path

from vae_tf.errors import UserError
from vae_tf.model import STEP_FIGURES
from vae_tf.params import Params

LOG_COLUMNS = ("step",) + STEP_FIGURES + ("wall_time",)
VALIDATION_COLUMNS = ("step", "loss", "reconstruction_loss", "kl_loss", "wall_time")
CHECKPOINTS = ("latest", "best", "final")


class RunDir:
    """Where each file of a run lives."""

    def __init__(self, path):
        self.path = Path(path)
        self.params_json = self.path / "params.json"
        self.log_csv = self.path / "log.csv"
        self.validation_csv = self.path / "validation.csv"
        self.checkpoints = self.path / "checkpoints"
        self.best_checkpoints = self.path / "checkpoints" / "best"
        self.images = self.path / "images"
        self.logs = self.path / "logs"
        self.model_keras = self.path / "model.keras"
        self.analysis = self.path / "analysis"

    def snapshot(self, step):
        return self.images / f"image_{step}.png"

    def read_params(self):
        try:
            values = json.loads(self.params_json.read_text())
        except FileNotFoundError:
            raise UserError(f"{self.path} is not a run folder (no params.json); "
                            f"runs are folders like predictions/<run_name>") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{self.params_json} is not valid JSON ({error}); restore it from a copy") from None
        return Params(**values)


def replace_atomically(path, write):
    """Call `write(temporary_path)`, then move the result over `path` in one step: readers never see half a file."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json(path, values):
    replace_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(values, indent=2) + "\n"))


class CsvLog:
    """An append-only CSV of per-step rows that resumes cleanly.

    Rows at or after the resumed step belong to work that was lost with an unsaved checkpoint; they
    are dropped when resuming (and written again, identically, as training redoes those steps).
    """

    def __init__(self, path, columns, resume_step):
        self.path, self.columns = Path(path), columns
        if self.path.exists():
            with open(self.path, newline="") as file:
                rows = list(csv.DictReader(file))
            # A crash can leave a half-written last line: keep only complete rows before the resumed step.
            kept = [row for row in rows if None not in row.values() and int(row["step"]) < resume_step]
            if len(kept) < len(rows):
                replace_atomically(self.path, lambda tmp: self._write_rows(tmp, kept))
        else:
            replace_atomically(self.path, lambda tmp: self._write_rows(tmp, []))
        self.file = open(self.path, "a", newline="")
        self.writer = csv.writer(self.file)

    def _write_rows(self, path, rows):
        with open(path, "w", newline="") as file:
            writer = csv.DictWriter(file, self.columns)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, values):
        self.writer.writerow([_format(values[column]) for column in self.columns])

    def flush(self):
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self):
        self.flush()
        self.file.close()


def _format(value):
    return repr(value) if isinstance(value, float) else value


def read_log(path):
    """A log CSV as a dict column -> list of floats."""
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    return {column: [float(row[column]) for row in rows] for column in (rows[0] if rows else {})}


def load_run(run_dir, checkpoint="latest"):
    """The trained model of a run folder, rebuilt from its files alone, with `.params` set.

    checkpoint: "latest" (the last training checkpoint), "best" (lowest validation loss) or "final"
    (`model.keras`, written when training finished).
    """
    import keras

    from vae_tf.model import build_model
    from vae_tf.training import Checkpointer

    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise UserError(f"run folder {str(run.path)!r} not found")
    if checkpoint not in CHECKPOINTS:
        raise UserError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}")
    params = run.read_params()
    if checkpoint == "final":
        if not run.model_keras.exists():
            raise UserError(f"{run.model_keras} not found: the run has not finished; use checkpoint='latest'")
        model = keras.saving.load_model(run.model_keras)
    else:
        model = build_model(params)
        if not Checkpointer(model, run).restore(checkpoint):
            raise UserError(f"{run.path} has no {checkpoint} checkpoint yet")
    model.params = params
    return model
