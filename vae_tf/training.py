"""`train(params)`: trains into a run folder, resuming whatever the folder already holds."""

import contextlib
import math
import signal
import sys
import threading
import time

import imageio.v3 as iio
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from vae_tf import datasets
from vae_tf.errors import TrainingDiverged, TrainingInterrupted, UserError
from vae_tf.model import STEP_FIGURES, build_model
from vae_tf.params import STRUCTURAL, check_image_size
from vae_tf.runs import LOG_COLUMNS, VALIDATION_COLUMNS, CsvLog, RunDir, replace_atomically, write_json
from vae_tf.snapshots import snapshot_figure

SNAPSHOT_IMAGES = 16


class Checkpointer:
    """The resumable state of a run (model, optimizer and its step, early-stopping record) and its two managers."""

    def __init__(self, model, run):
        self.best_validation = tf.Variable(math.inf, dtype=tf.float64, trainable=False)
        self.checks_since_best = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                              best_validation=self.best_validation,
                                              checks_since_best=self.checks_since_best)
        self.latest = tf.train.CheckpointManager(self.checkpoint, run.checkpoints, max_to_keep=3)
        self.best = tf.train.CheckpointManager(self.checkpoint, run.best_checkpoints, max_to_keep=1)

    def restore(self, which="latest"):
        """Restore the latest or best checkpoint; False when there is none."""
        path = (self.latest if which == "latest" else self.best).latest_checkpoint
        if path is None:
            return False
        try:
            self.checkpoint.restore(path).expect_partial()
        except (tf.errors.OpError, ValueError, AssertionError) as error:
            raise UserError(f"checkpoint {path} cannot be read ({type(error).__name__}); move it out of "
                            f"{self.latest.directory} to resume from an earlier one") from None
        return True

    def save(self, step, best=False):
        (self.best if best else self.latest).save(checkpoint_number=step)


def _check_resumable(run, params):
    previous = run.read_params()
    changed = [name for name in STRUCTURAL if getattr(previous, name) != getattr(params, name)]
    if changed:
        listing = ", ".join(f"{n} ({getattr(previous, n)!r} -> {getattr(params, n)!r})" for n in changed)
        raise UserError(f"run {run.path} was trained with different {listing}; these change the model or the data, "
                        f"so it cannot resume with them: pick a new --run_name, or pass the run's own values")


def _snapshot_steps(params):
    return lambda step: (params.plot_step and step % params.plot_step == 0) or step in params.log_step


def _due(every, step):
    return every > 0 and step % every == 0


@contextlib.contextmanager
def _stop_requests():
    """Turn SIGINT/SIGTERM into a request that the loop honours between steps, where log and checkpoint agree."""
    requested = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = {sig: signal.signal(sig, lambda number, frame: requested.append(signal.Signals(number).name))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train(params, progress=True):
    """Train `params` into `<output_dir>/<run_name>/` and return that folder.

    An existing run folder is resumed from its latest checkpoint; raising `num_steps` extends it.
    Raises `UserError` for bad input, `TrainingDiverged` for a non-finite loss, and
    `TrainingInterrupted` after SIGINT/SIGTERM (having saved a checkpoint).
    """
    run = RunDir(f"{params.output_dir}/{params.run_name}")
    if run.params_json.exists():
        _check_resumable(run, params)
    check_image_size(params, datasets.image_shape_of(params)[0])
    source = datasets.source_for(params)
    train_split, validation_split = source.split("train"), source.split("validation")
    model = build_model(params)
    try:
        run.images.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot write the run folder {run.path}: {error.strerror}; choose another --output_dir") from None
    state = Checkpointer(model, run)
    state.restore()
    step = int(model.optimizer.iterations)
    stopped_early = params.validation_tolerance and int(state.checks_since_best) >= params.validation_tolerance
    if step >= params.num_steps or stopped_early:
        why = (f"stopped early at step {step} after {int(state.checks_since_best)} validations without improvement; "
               f"raise --validation_tolerance (0 = never stop) to continue" if stopped_early else
               f"already trained for {step} steps; pass a larger --num_steps to extend it")
        print(f"run {run.path}: {why}")
        return run.path
    write_json(run.params_json, params.to_dict())

    log = CsvLog(run.log_csv, LOG_COLUMNS, step)
    validation_log = CsvLog(run.validation_csv, VALIDATION_COLUMNS, step)
    writer = tf.summary.create_file_writer(str(run.logs))

    @tf.function
    def train_step(x):
        """One update; its figures go to TensorBoard in-graph and come back as one vector (one host copy)."""
        figures = model.train_step(x)
        with writer.as_default(step=model.optimizer.iterations - 1):
            for name, value in figures.items():
                tf.summary.scalar(f"train/{name}", value)
        return tf.stack([figures[name] for name in STEP_FIGURES])

    evaluate_batch = tf.function(lambda x: model.loss_terms(x, model.optimizer.iterations, stream=1))
    fixed_images = next(iter(datasets.evaluation_batches(validation_split, SNAPSHOT_IMAGES, SNAPSHOT_IMAGES)))
    fixed_noise = np.random.default_rng(params.seed).standard_normal((SNAPSHOT_IMAGES, params.latent_size))
    wants_snapshot = _snapshot_steps(params)

    def snapshot(at):
        pixels = snapshot_figure(fixed_images, model.reconstruct(fixed_images), model.decode(fixed_noise), at)
        replace_atomically(run.snapshot(at), lambda tmp: iio.imwrite(tmp, pixels, extension=".png"))
        with writer.as_default(step=at):
            tf.summary.image("snapshot", pixels[None])

    def validate(at):
        totals, count = {}, 0
        for x in datasets.evaluation_batches(validation_split, params.batch_size, params.validation_size):
            n = int(x.shape[0])
            for name, value in evaluate_batch(x).items():
                totals[name] = totals.get(name, 0.0) + float(value) * n
            count += n
        figures = {name: totals[name] / count for name in ("loss", "reconstruction_loss", "kl_loss")}
        validation_log.append({"step": at, **figures, "wall_time": time.time()})
        with writer.as_default(step=at):
            for name, value in figures.items():
                tf.summary.scalar(f"validation/{name}", value)
        if figures["loss"] < float(state.best_validation):
            state.best_validation.assign(figures["loss"])
            state.checks_since_best.assign(0)
            state.save(at, best=True)
        else:
            state.checks_since_best.assign_add(1)
        return figures["loss"]

    def save(at):
        log.flush()
        validation_log.flush()
        state.save(at)

    if step == 0 and wants_snapshot(0):
        snapshot(0)
    batches = iter(datasets.training_batches(train_split, params.batch_size, params.seed, step))
    bar = tqdm(total=params.num_steps, initial=step, unit="step", disable=not progress, file=sys.stdout,
               dynamic_ncols=True, desc=params.run_name, mininterval=0.2 if sys.stdout.isatty() else 30)
    saved_at = step
    with _stop_requests() as stop_requested:
        try:
            while step < params.num_steps:
                figures = dict(zip(STEP_FIGURES, train_step(next(batches)).numpy().tolist()))
                if not (math.isfinite(figures["loss"]) and math.isfinite(figures["grad_norm"])):
                    raise TrainingDiverged(
                        f"the loss became {figures['loss']} at step {step} (gradient norm {figures['grad_norm']}); "
                        f"training stopped, keeping the checkpoint saved at step {saved_at} before it; "
                        f"try a lower learning_rate (now {params.learning_rate:g})")
                log.append({"step": step, **figures, "wall_time": time.time()})
                step += 1
                bar.update(1)
                if step % 10 == 0 or step == params.num_steps:
                    bar.set_postfix(loss=f"{figures['loss']:.4g}", rec=f"{figures['reconstruction_loss']:.4g}",
                                    kl=f"{figures['kl_loss']:.3g}", w=f"{figures['kl_weight']:.3g}", refresh=False)
                if _due(params.validation_step, step):
                    validate(step)
                if wants_snapshot(step):
                    snapshot(step)
                if _due(params.checkpoint_step, step) or stop_requested:
                    save(step)
                    saved_at = step
                if stop_requested:
                    raise TrainingInterrupted(f"{stop_requested[0]} received: saved a checkpoint at step {step} "
                                              f"in {run.path}; rerun the same command to resume")
                if params.validation_tolerance and int(state.checks_since_best) >= params.validation_tolerance:
                    bar.write(f"early stop at step {step}: {params.validation_tolerance} validations "
                              f"without improvement")
                    break
            if saved_at != step:
                save(step)
            replace_atomically(run.model_keras, model.save)
        finally:
            bar.close()
            log.close()
            validation_log.close()
            writer.close()
    return run.path
