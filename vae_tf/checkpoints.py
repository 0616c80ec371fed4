"""A run's resumable state on disk (`Checkpointer`) and `load_run`, which rebuilds a trained model from a run folder."""

import math
import os
import shutil
import tempfile
import textwrap
import zipfile
from pathlib import Path

import keras
import tensorflow as tf

from vae_tf.errors import UserError
from vae_tf.models import build_model
from vae_tf.runs import checkpoint_steps, open_run
from vae_tf.schedules import comparable_from, schedule_unit


class Checkpointer:
    """The resumable state of a run (model, optimizer and its step, `model.checkpointables()` such as FactorVAE's
    discriminator, early-stopping record), saved as the newest few `latest` checkpoints and the `best` one.

    In a multi-worker run every worker must take part in a save; only the chief's lands in the run folder.
    """

    KEEP = {"latest": 3, "best": 1}  # checkpoints kept of each kind

    def __init__(self, model, run, chief=True):
        self.best_validation = tf.Variable(math.inf, dtype=tf.float64, trainable=False)
        self.checks_since_best = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)  # time in training calls so far
        # The weights reach the checkpoint through the optimizers' lists of the variables they train; what no
        # optimizer trains (batch normalisation's moving statistics, in the Ladder VAE) is listed here.
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                              best_validation=self.best_validation,
                                              checks_since_best=self.checks_since_best,
                                              train_seconds=self.train_seconds,
                                              untrained=list(model.non_trainable_variables),
                                              **model.checkpointables())
        # A non-chief worker saves into scratch space, removed with this object.
        self.scratch = None if chief else tempfile.TemporaryDirectory(prefix="vae_tf_worker_")
        root = Path(run.path if chief else self.scratch.name)
        self.folders = {"latest": root / "checkpoints", "best": root / "checkpoints" / "best"}
        # Written by a compiled function: the object graph is serialised once, when it is traced, rather than in
        # Python at every save (a save of the tiny benchmark model: about 4 ms, against 18-42 ms through CheckpointManager).
        # Every variable exists by then: build_model builds the optimizers.
        self.write = tf.function(lambda prefix: self.checkpoint.write(prefix), autograph=False)
        self.written = None  # (step, folder) of the last save
        self.run = run

    def restore(self, which="latest"):
        """Restore the newest latest (or best) checkpoint whose files exist; False when there is none.

        The newest files on disk are used rather than the `checkpoint` state file, so moving an unreadable
        checkpoint's files away resumes from the one before it.
        """
        directory = self.run.checkpoints if which == "latest" else self.run.best_checkpoints
        numbers = sorted(checkpoint_steps(directory), reverse=True)
        if not numbers:
            return False
        path = str(directory / f"ckpt-{numbers[0]}")
        try:
            self.checkpoint.restore(path).expect_partial()
        except (tf.errors.OpError, ValueError, AssertionError) as error:
            reason = textwrap.shorten((str(error).strip().splitlines() or [type(error).__name__])[0], 120,
                                      placeholder=" ...")
            if len(numbers) > 1:
                fix = f"move its files (ckpt-{numbers[0]}.*) out of {directory} to use ckpt-{numbers[1]}, the one before"
            elif which == "best":
                fix = "restore it from a copy, or use the latest checkpoint"
            else:
                fix = "it is the only one: restore it from a copy (moving it away would start the run over)"
            raise UserError(f"checkpoint {path} cannot be read ({reason}); {fix}") from None
        return True

    def save(self, step, best=False):
        """Write checkpoint `ckpt-<step>` and remove the superseded ones, keeping the newest KEEP of its kind.

        A second save at the same step (the best after a validation, then the latest) saves the same state: its
        files are hard links to the first one's where the file system allows."""
        which = "best" if best else "latest"
        folder = self.folders[which]
        folder.mkdir(parents=True, exist_ok=True)
        # TensorFlow writes a checkpoint's index in place: a kill inside a save would leave a truncated index that
        # `checkpoint_steps` lists as the newest checkpoint. The files are written under a partial name, then renamed
        # with the index last, so a checkpoint is listed only once it is whole.
        for partial in folder.glob("partial-*"):  # left by a save that was killed
            if partial.is_dir():
                shutil.rmtree(partial)
            else:
                partial.unlink()
        if not self._link(step, folder):
            self.write(tf.constant(str(folder / f"partial-ckpt-{step}")))
        for file in sorted(folder.glob(f"partial-ckpt-{step}.*"), key=lambda file: file.suffix == ".index"):
            os.replace(file, folder / file.name.removeprefix("partial-"))
        self.written = (step, folder)
        # CheckpointManager's state file, in runs it saved: it would name checkpoints removed below.
        (folder / "checkpoint").unlink(missing_ok=True)
        for old in sorted(checkpoint_steps(folder), reverse=True)[self.KEEP[which]:]:
            for file in folder.glob(f"ckpt-{old}.*"):
                file.unlink()

    def _link(self, step, folder):
        """Link the files of the checkpoint written at `step` into `folder`; False when there is none, or on failure."""
        if self.written is None or self.written[0] != step or self.written[1] == folder:
            return False
        linked = []
        try:
            for file in self.written[1].glob(f"ckpt-{step}.*"):
                os.link(file, folder / f"partial-{file.name}")
                linked.append(folder / f"partial-{file.name}")
        except OSError:
            for file in linked:
                file.unlink()
            return False
        return True


def train_seconds(run):
    """Seconds spent in training calls over all of a run's attempts (`Checkpointer.train_seconds`: validations,
    snapshots and restarts left out), read from its newest readable checkpoint (an analysis of the best checkpoint
    may meet a damaged newest one: passed over); None without one, or from a release before it was kept."""
    key = "train_seconds/.ATTRIBUTES/VARIABLE_VALUE"
    for step in sorted(checkpoint_steps(run.checkpoints), reverse=True):
        try:
            reader = tf.train.load_checkpoint(str(run.checkpoints / f"ckpt-{step}"))
        except (tf.errors.OpError, ValueError):
            continue
        return float(reader.get_tensor(key)) if reader.has_tensor(key) else None
    return None


def load_run(run_dir, checkpoint="latest"):
    """The trained model of a run folder, rebuilt from its files alone, with `.params` set.

    checkpoint: "latest" (the last training checkpoint), "best" (lowest validation loss) or "final"
    (`model.keras`, written when training finished).
    """
    run, params = open_run(run_dir, checkpoint)
    if checkpoint == "final":
        model = _load_final(run)
    else:
        model = build_model(params)
        if not Checkpointer(model, run).restore(checkpoint):
            raise UserError(missing_checkpoint(run, params, checkpoint))
    model.params = params
    return model


def start_from(model, params, run):
    """Copy the weights of `params.init_from`'s `init_checkpoint` into `model`, new run `run`'s (fine-tuning), and
    return the line that says so. The source must hold the same model: every weight the same in name and shape, the
    same activation and reconstruction loss (they add no weight, but its weights compute with them)."""
    where = f"init_from {params.init_from} (init_checkpoint {params.init_checkpoint})"
    if Path(params.init_from).resolve() == run.path.resolve():
        raise UserError(f"{where} is this run's own folder: name another run to start from")
    try:
        source = load_run(params.init_from, params.init_checkpoint)
    except UserError as error:
        raise UserError(f"{where}: {error}") from None
    for name in ("activation", "reconstruction_loss"):
        if getattr(source.params, name) != getattr(params, name):
            raise UserError(f"{where} was trained with {name} {getattr(source.params, name)!r}, this run has "
                            f"{getattr(params, name)!r}; start from a run of the same model, or pass its {name}")
    ours, theirs = ([(weight.path, tuple(weight.shape)) for weight in m.weights] for m in (model, source))
    if ours != theirs:
        first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        raise UserError(f"{where} holds another model: its weight {first} is {_weight(theirs, first)}, this run's "
                        f"{_weight(ours, first)}; start from a run of the same model, changing only what adds no "
                        f"weights (objective, beta, schedules, learning rate)")
    model.set_weights(source.get_weights())
    step = "" if params.init_checkpoint == "final" else f", step {int(source.optimizer.iterations.numpy())}"
    return (f"starting from the weights of {params.init_from} ({params.init_checkpoint} checkpoint{step}); the "
            f"optimizer and the step start afresh")


def _weight(weights, index):
    """The name and shape of a model's `index`th weight, for a message."""
    return f"{weights[index][0]} {list(weights[index][1])}" if index < len(weights) else "missing (it has fewer)"


def _load_final(run):
    """model.keras, or one line saying why it cannot be read (Keras calls a truncated file "not found")."""
    if not run.model_keras.exists():
        raise UserError(f"{run.model_keras} not found: the run has not finished; use the latest checkpoint")
    if not zipfile.is_zipfile(run.model_keras):
        raise UserError(f"{run.model_keras} is truncated or corrupted (not a whole .keras zip file); restore it from a "
                        f"copy, or use the latest checkpoint (the training one)")
    try:
        return keras.saving.load_model(run.model_keras)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as error:
        reason = textwrap.shorten(str(error).strip() or type(error).__name__, 120, placeholder=" ...")
        raise UserError(f"{run.model_keras} cannot be read ({reason}); restore it from a copy, or use "
                        f"the latest checkpoint (the training one)") from None


def _schedule_position(run, params, step):
    """Where the schedules stood at the checkpoint of `step` (`Model.schedule_step`): the step, or under aggressive
    training the decoder's updates the checkpoint holds (None if it cannot be read)."""
    if not params.aggressive or not step:
        return step
    try:
        reader = tf.train.load_checkpoint(str(run.checkpoints / f"ckpt-{step}"))
        return int(reader.get_tensor("aggressive_decoder_updates/.ATTRIBUTES/VARIABLE_VALUE"))
    except (tf.errors.OpError, ValueError):
        return None


def missing_checkpoint(run, params, which):
    """Why a run has no `which` checkpoint, and what to use instead."""
    if which == "best" and not params.validation_step:
        return f"{run.path} has no best checkpoint: it never validates (validation_step=0); use the latest checkpoint"
    compared_from, last = comparable_from(params), max(checkpoint_steps(run.checkpoints), default=0)
    reached = _schedule_position(run, params, last)
    if which == "best" and 0 < last and reached is not None and reached < compared_from:
        final = " or the final one (model.keras)" if run.model_keras.exists() else ""
        unit = schedule_unit(params)
        return (f"{run.path} has no best checkpoint: validations are compared from {unit} {compared_from} on, where "
                f"its schedule's ramp ends, and it stopped at {unit} {reached}; use the latest checkpoint{final}")
    if run.model_keras.exists():
        return f"{run.path} finished without a {which} checkpoint; use the final one (model.keras)"
    return f"{run.path} has no {which} checkpoint yet: train it first"
