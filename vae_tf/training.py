"""`train(params)`: trains into a run folder, resuming whatever the folder already holds."""

import contextlib
import fcntl
import math
import os
import re
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tensorflow as tf
from tensorboard.plugins.image import metadata as image_metadata
from tqdm.auto import tqdm

from vae_tf import datasets, distribution, metrics
from vae_tf.baselines import model_representation
from vae_tf.errors import TrainingDiverged, TrainingInterrupted, UserError
from vae_tf.model import build_model, usable_step
from vae_tf.params import STRUCTURAL, check_image_size, names
from vae_tf.runs import (VALIDATION_COLUMNS, CsvLog, RunDir, checkpoint_steps, log_columns, mig_columns, record_params,
                         replace_atomically, write_json)
from vae_tf.snapshots import SnapshotFigure

SNAPSHOT_IMAGES = 16
VALIDATED = VALIDATION_COLUMNS[1:-1]  # the figures a validation averages
MAX_SKIPPED_IN_A_ROW = 100
# TensorFlow reports a failed file write as an OpError; these words tell it from a failed computation.
_WRITE_FAILURE = re.compile(r"no space left|permission denied|read-only file system|disk quota|file too large|"
                            r"input/output error|operation not permitted", re.I)
# How a per-step figure combines across replicas (the rest are averaged).
_REDUCTIONS = {"mean_min": tf.reduce_min, "std_min": tf.reduce_min,
               "mean_max": tf.reduce_max, "std_max": tf.reduce_max, "skipped": tf.reduce_max}


class Checkpointer:
    """The resumable state of a run (model, optimizer and its step, the objective's own state such as FactorVAE's
    discriminator, early-stopping record), saved as the newest few `latest` checkpoints and the `best` one.

    In a multi-worker run every worker must take part in a save; only the chief's lands in the run folder.
    """

    KEEP = {"latest": 3, "best": 1}  # checkpoints kept of each kind

    def __init__(self, model, run, chief=True):
        self.best_validation = tf.Variable(math.inf, dtype=tf.float64, trainable=False)
        self.checks_since_best = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)  # time in training calls so far
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                              best_validation=self.best_validation,
                                              checks_since_best=self.checks_since_best,
                                              train_seconds=self.train_seconds,
                                              **model.objective.checkpointables())
        # A non-chief worker saves into scratch space, removed with this object.
        self.scratch = None if chief else tempfile.TemporaryDirectory(prefix="vae_tf_worker_")
        root = Path(run.path if chief else self.scratch.name)
        self.folders = {"latest": root / "checkpoints", "best": root / "checkpoints" / "best"}
        # Written by a compiled function: the object graph is serialised once, when it is traced, rather than in
        # Python at every save (a save of the tiny benchmark model: about 4 ms, against 18-42 ms through CheckpointManager).
        # Every variable exists by then: build_model builds the optimizers.
        self.write = tf.function(lambda prefix: self.checkpoint.write(prefix))
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
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
            raise UserError(f"checkpoint {path} cannot be read ({reason}); move its files "
                            f"(ckpt-{numbers[0]}.*) out of {directory} to resume from the one before") from None
        return True

    def save(self, step, best=False):
        """Write checkpoint `ckpt-<step>` and remove the superseded ones, keeping the newest KEEP of its kind.

        A second save at the same step (the best after a validation, then the latest) saves the same state: its
        files are hard links to the first one's where the file system allows."""
        which = "best" if best else "latest"
        folder = self.folders[which]
        folder.mkdir(parents=True, exist_ok=True)
        if not self._link(step, folder):
            self.write(tf.constant(str(folder / f"ckpt-{step}")))
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
                os.link(file, folder / file.name)
                linked.append(folder / file.name)
        except OSError:
            for file in linked:
                file.unlink()
            return False
        return True


def _check_resumable(run, params):
    """The run's own params, after checking that `params` may resume it."""
    previous = run.read_params()
    changed = [name for name in STRUCTURAL if getattr(previous, name) != getattr(params, name)]
    if changed:
        listing = ", ".join(f"{n} ({getattr(previous, n)!r} -> {getattr(params, n)!r})" for n in changed)
        raise UserError(f"run {run.path} was trained with different {listing}; these change the model or the data, "
                        f"so it cannot resume with them: pick a new --run_name, or pass the run's own values")
    return previous


def _describe_splits(params, train, validation):
    """A folder's split sizes, and a warning where a batch or a validation asks for more images than a split has."""
    if params.dataset == "folder":
        print(f"folder {params.data_dir}: {train} training and {validation} validation images (as many test images "
              f"as validation ones are held out)")
    if params.batch_size > train:
        print(f"warning: batch_size {params.batch_size} is more than the {train} training images: every batch "
              f"repeats images; a smaller --batch_size trains on more distinct batches")
    if params.validation_step and params.validation_size > validation:
        print(f"warning: validation_size {params.validation_size} is more than the {validation} validation images: "
              f"each validation uses those {validation}")


def _resume_line(run, previous, params, step, logged):
    """What a rerun of an existing run does: from which step, what it redoes, which parameters it changes."""
    line = (f"resuming {run.path} from step {step}" if step else
            f"restarting {run.path} from step 0 (no checkpoint had been saved)")
    if logged > step:
        line += f"; log.csv went on to step {logged - 1}, so steps {step} to {logged - 1} are redone"
    changed = [f"{name} {getattr(previous, name)!r} -> {getattr(params, name)!r}" for name in names()
               if getattr(previous, name) != getattr(params, name)]
    return line + (f"; changed: {', '.join(changed)}" if changed else "")


def _kept(saved_at):
    return (f"keeping the checkpoint saved at step {saved_at} before it" if saved_at is not None else
            "before its first checkpoint, so nothing was saved")


@contextlib.contextmanager
def _exclusive(run, chief):
    """Hold a lock on the run folder while training, so that two processes never write one run."""
    if not chief:
        yield
        return
    with open(run.path / ".lock", "a") as lock:  # "a": the file is never rewritten
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"run {run.path} is being trained by another process; wait for it, or pick a new "
                            f"--run_name") from None
        yield


def _logged_steps(path):
    with open(path, "rb") as file:
        return max(sum(1 for _ in file) - 1, 0)


def _check_same_step_everywhere(strategy, step):
    """Every worker must resume from the same checkpoint (the chief's); else their collectives would hang."""
    mean = strategy.reduce(tf.distribute.ReduceOp.MEAN,
                           strategy.run(lambda: tf.constant(float(step))), axis=None)
    if float(mean) != float(step):
        raise UserError(f"this worker resumed at step {step} but the workers' mean is {float(mean):g}: every "
                        f"worker must see the chief's run folder; put output_dir on storage all workers share")


def _due(every, step):
    return every > 0 and step % every == 0


@contextlib.contextmanager
def _stop_requests():
    """Turn SIGINT/SIGTERM into a request that the loop honours between steps, where log and checkpoint agree.
    A second signal (the user insists, say during a long compilation) acts at once, as it would without vae_tf:
    the run resumes from its last checkpoint."""
    requested = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def restore():
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def request(number, frame):
        requested.append(signal.Signals(number).name)
        if len(requested) > 1:
            restore()
            signal.raise_signal(number)

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        restore()


@contextlib.contextmanager
def _writes_to(run, resume_step):
    """A failed write (disk full, no permission) becomes one clear line; what was saved stays usable."""
    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        if isinstance(error, tf.errors.OpError) and not _WRITE_FAILURE.search(str(error)):
            raise
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise UserError(f"cannot write to {run.path} ({reason}); free space or fix permissions, then rerun the "
                        f"same command to resume from step {resume_step()}") from None


def _replica_rows(batch, replica, replicas):
    """Replica `replica`'s equal slice of a global batch [B, ...] -> [B / replicas, ...]."""
    rows = tf.shape(batch)[0] // replicas
    return batch[replica * rows:(replica + 1) * rows]


def _compiled_steps(model, strategy, stream, jit_compile, stop_on_nan):
    """A compiled function `(step, n) -> (figures [m, F], usable [m])` that runs up to n training steps from `step`
    without returning to the host: each step trains every replica on its slice of the step's batch from `stream` and
    combines the figures across replicas; `usable` says which steps had a finite loss and gradient
    (`model.usable_step`). It returns after the first unusable step when `stop_on_nan` (m < n), else after n steps.

    The next step's batch is drawn while the current step trains: it depends on no weight, so the two run side by
    side instead of one after the other (on a tiny model that hides the whole gather)."""
    one_step = tf.function(model.train_step, jit_compile=True) if jit_compile else model.train_step
    loss_index, norm_index = model.step_figures.index("loss"), model.step_figures.index("grad_norm")

    def replica_step(images):
        context = tf.distribute.get_replica_context()
        figures = one_step(images)
        vector = tf.stack([figures[name] for name in model.step_figures])
        if strategy.num_replicas_in_sync == 1:
            return vector
        gathered = context.all_gather(vector[None], axis=0)  # [replicas, figures]
        return tf.stack([_REDUCTIONS.get(name, tf.reduce_mean)(gathered[:, i])
                         for i, name in enumerate(model.step_figures)])

    def per_replica(batch):
        """The global batch cut into each replica's slice where it was gathered, so that a device receives its own
        rows only, not the whole batch."""
        if strategy.num_replicas_in_sync == 1:
            return batch
        return strategy.experimental_distribute_values_from_function(
            lambda context: _replica_rows(batch, context.replica_id_in_sync_group, context.num_replicas_in_sync))

    @tf.function
    def steps(start, n):
        rows = tf.TensorArray(tf.float32, size=n, element_shape=[len(model.step_figures)])
        usable = tf.TensorArray(tf.bool, size=n, element_shape=[])
        count = tf.constant(0)
        batch = stream.batch(start)
        for i in tf.range(n):
            step = start + tf.cast(i, tf.int64)
            following = tf.cond(i + 1 < n, lambda: stream.batch(step + 1), lambda: batch)
            vector = strategy.experimental_local_results(strategy.run(replica_step, args=(per_replica(batch),)))[0]
            fine = usable_step(vector[loss_index], vector[norm_index], model.loss_scaled)
            rows, usable = rows.write(i, vector), usable.write(i, fine)
            count = i + 1
            batch = following
            if stop_on_nan:
                if not fine:
                    break
        return rows.gather(tf.range(count)), usable.gather(tf.range(count))

    return steps


def _compiled_validation(model, split, batch_size, count):
    """A compiled function `() -> (figures [batches, F], batch sizes [batches])`: the VALIDATED figures of the first
    `count` images of the split (drawn now and kept), batch by batch, in one call (one host round trip)."""
    images = split.images(tf.range(min(count, split.num_examples), dtype=tf.int64))
    batches = -(-int(images.shape[0]) // batch_size)

    @tf.function
    def validate():
        rows = tf.TensorArray(tf.float32, size=batches, element_shape=[len(VALIDATED)])
        sizes = tf.TensorArray(tf.int32, size=batches, element_shape=[])
        for i in tf.range(batches):
            x = images[i * batch_size:(i + 1) * batch_size]
            terms = model.loss_terms(x, model.optimizer.iterations, stream=1)
            rows = rows.write(i, tf.stack([tf.cast(terms[name], tf.float32) for name in VALIDATED]))
            sizes = sizes.write(i, tf.shape(x)[0])
        return rows.stack(), sizes.stack()

    return validate


def _compiled_snapshot(model, split, seed):
    """A compiled function `() -> (originals, reconstructions, generations)`, each [SNAPSHOT_IMAGES, H, W, C]: the
    first validation images, their reconstructions and decoded codes drawn once from the prior with the run's seed."""
    originals = split.images(tf.range(min(SNAPSHOT_IMAGES, split.num_examples), dtype=tf.int64))
    codes = tf.constant(model.latent.prior_codes(np.random.default_rng(seed), SNAPSHOT_IMAGES))
    return tf.function(lambda: (originals, model.reconstruct(originals), model.decode(codes)))


def _scalar_writer(writer, names):
    """A compiled function `(figures [m, F], first_step)` writing each row as TensorBoard scalars `train/<name>` at
    steps first_step, first_step + 1, ...: the training call's figures, written off the training thread."""

    @tf.function(input_signature=[tf.TensorSpec([None, len(names)], tf.float32), tf.TensorSpec([], tf.int64)])
    def write(rows, first_step):
        with writer.as_default():
            for i in tf.range(tf.shape(rows)[0]):
                step, values = first_step + tf.cast(i, tf.int64), tf.unstack(rows[i])  # once a row, not once a scalar
                with tf.name_scope("train/"):  # absolute: the loop's own scope would prefix the tags with "while/"
                    for name, value in zip(names, values):
                        tf.summary.scalar(name, value, step=step)

    return write


class _CallSizes:
    """Training steps per compiled call: `steps_per_call`, or (0) as many as take about TARGET_SECONDS, so the host
    round trip costs little however fast a step is, while the progress bar and signals still answer within a moment.
    Every worker of a cluster must run the same calls, so there the automatic size does not depend on timing."""

    TARGET_SECONDS = 0.25
    LARGEST = 1000
    CLUSTER = 100

    def __init__(self, steps_per_call, cluster):
        self.fixed = steps_per_call or (self.CLUSTER if cluster else 0)
        self.seconds_per_step = None
        self.calls = 0

    def size(self):
        if self.fixed:
            return self.fixed
        if self.seconds_per_step is None:  # the first call traces the function, the second is timed
            return 1 if self.calls == 0 else 10
        return int(min(max(self.TARGET_SECONDS / self.seconds_per_step, 1), self.LARGEST))

    def timed(self, steps, seconds):
        self.calls += 1
        if self.calls > 1 and steps:
            rate = seconds / steps
            self.seconds_per_step = rate if self.seconds_per_step is None else 0.7 * self.seconds_per_step + 0.3 * rate


def train(params, progress=True):
    """Train `params` into `<output_dir>/<run_name>/` and return that folder.

    An existing run folder is resumed from its latest checkpoint; raising `num_steps` extends it.
    Raises `UserError` for bad input, `TrainingDiverged` for a non-finite loss (nan_policy "stop"), and
    `TrainingInterrupted` after SIGINT/SIGTERM (having saved a checkpoint).
    """
    distribution.configure_devices(params)
    strategy = distribution.make_strategy(params)
    chief = distribution.is_chief(strategy)
    if params.batch_size % strategy.num_replicas_in_sync:
        raise UserError(f"batch_size {params.batch_size} does not split evenly over {strategy.num_replicas_in_sync} "
                        f"replicas; use a multiple of {strategy.num_replicas_in_sync}")
    warning = distribution.precision_warning(params.precision)
    if warning and chief:
        print(warning)
    run = RunDir(f"{params.output_dir}/{params.run_name}")
    previous = _check_resumable(run, params) if run.params_json.exists() else None
    check_image_size(params, datasets.image_shape_of(params)[0])
    source = datasets.source_for(params)
    train_split, validation_split = source.split("train"), source.fixed_split("validation")
    # Data sets with known factors; every worker ends its calls at the MIG steps, so all make the same calls.
    ground_truth = source.ground_truth() if params.mig_step and hasattr(source, "ground_truth") else None
    if chief:
        _describe_splits(params, train_split.num_examples, validation_split.num_examples)
        try:
            run.images.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot create the run folder {run.path} ({error.strerror}); "
                            f"choose another --output_dir") from None
    with _exclusive(run, chief):
        return _train_locked(params, previous, run, strategy, chief, train_split, validation_split, ground_truth,
                             progress)


def _train_locked(params, previous, run, strategy, chief, train_split, validation_split, ground_truth, progress):
    """The rest of `train`, while this process holds the run folder."""
    with strategy.scope():
        model = build_model(params, dataset_size=train_split.num_examples)
        state = Checkpointer(model, run, chief)
    logged = _logged_steps(run.log_csv) if chief and run.log_csv.exists() else 0
    restored = state.restore()
    # A run that logged past its first checkpoint had one: the run's own checkpoint_step says so, not a new one.
    if not restored and logged > (previous or params).checkpoint_step:
        raise UserError(f"run {run.path} has {logged} logged steps but no checkpoint in "
                        f"{run.checkpoints} to resume from; put the checkpoints back, or pick a new --run_name")
    model.optimizer.learning_rate.assign(params.learning_rate)  # the checkpoint holds the old one
    step = int(model.optimizer.iterations.numpy())
    if strategy.num_replicas_in_sync > 1:
        _check_same_step_everywhere(strategy, step)
    stopped_early = params.validation_tolerance and int(state.checks_since_best.numpy()) >= params.validation_tolerance
    if step >= params.num_steps or stopped_early:
        why = (f"stopped early at step {step} after {int(state.checks_since_best.numpy())} validations without improvement; "
               f"raise --validation_tolerance (0 = never stop) to continue" if stopped_early else
               f"already trained for {step} steps; pass a larger --num_steps to extend it")
        print(f"run {run.path}: {why}")
        if chief and not run.model_keras.exists():  # killed (or stopped early) before its export was written
            with _writes_to(run, lambda: step):
                replace_atomically(run.model_keras, model.save)
        return run.path
    if chief:
        print(model.latent.describe())
    if chief and previous is not None:
        print(_resume_line(run, previous, params, step, logged))

    saved_at, trainer = (step if restored else None), None
    # A stop request while the trainer compiles its functions (seconds) is honoured at the end of the first call.
    with _writes_to(run, lambda: (trainer.saved_at if trainer else saved_at) or 0), _stop_requests() as stop_requested:
        trainer = _Trainer(params, previous, run, strategy, chief, model, state, train_split, validation_split,
                           ground_truth, step, saved_at)
        try:
            trainer.fit(progress, stop_requested)
        finally:
            trainer.close()
    return run.path


class _Trainer:
    """The training loop of one run: compiled calls of several steps, and between them the host's work (the log,
    the progress bar, validations, snapshots, checkpoints, stop requests), always at the same steps."""

    def __init__(self, params, previous, run, strategy, chief, model, state, train_split, validation_split,
                 ground_truth, step, saved_at):
        self.params, self.run, self.strategy, self.chief = params, run, strategy, chief
        self.model, self.state, self.ground_truth = model, state, ground_truth
        self.step, self.saved_at = step, saved_at
        self.stream = datasets.TrainingStream(train_split, params.batch_size, params.seed, params.binarize)
        # Validation images are drawn once and kept; a validation is one compiled call.
        self.validation = _compiled_validation(model, validation_split, params.batch_size,
                                               params.validation_size if params.validation_step else 0)
        self.snapshot_panels = _compiled_snapshot(model, validation_split, params.seed)
        self.draw_snapshot = SnapshotFigure()  # used on the background thread only
        self.skipped_in_a_row = 0
        # log.csv's rows, TensorBoard's scalars and the snapshots are written on a thread of their own, overlapping
        # the next training call.
        self.background, self.pending = ThreadPoolExecutor(1, thread_name_prefix="vae_tf_writer"), []
        self.scores_mig = chief and ground_truth is not None  # the chief scores, the other workers wait
        self.representation = model_representation(model) if self.scores_mig else None
        # The files last, once nothing above can fail: `close` is called only after a complete __init__.
        self.logs, self.writer = [], None
        if chief:
            write_json(run.params_json, params.to_dict())
            record_params(run, previous, params, step)
            self.log = CsvLog(run.log_csv, log_columns(model.step_figures), step)
            # A validation or MIG score at the resumed step came before its checkpoint was saved and is not redone.
            self.validation_log = CsvLog(run.validation_csv, VALIDATION_COLUMNS, step + 1)
            self.logs = [self.log, self.validation_log]
            if self.scores_mig:
                self.mig_log = CsvLog(run.mig_csv, mig_columns(ground_truth.factor_names), step + 1)
                self.logs.append(self.mig_log)
            self.writer = tf.summary.create_file_writer(str(run.logs))
            self.write_scalars = _scalar_writer(self.writer, model.step_figures)
        self.steps = _compiled_steps(model, strategy, self.stream, params.jit_compile, params.nan_policy == "stop")
        # The host work is compiled now rather than at its first step (500 by default), so the pace of training is
        # steady from the start and a validation that cannot run fails at once.
        self.validation.get_concrete_function()
        self.snapshot_panels.get_concrete_function()
        if chief:
            self.write_scalars.get_concrete_function()
        state.write.get_concrete_function(tf.TensorSpec([], tf.string))

    def close(self):
        self.background.shutdown(wait=True)
        for log in self.logs:
            log.close()
        if self.writer is not None:
            self.writer.close()

    def fit(self, progress, stop_requested):
        params, step = self.params, self.step
        if self.wants_snapshot(step) and not self.run.snapshot(step).exists():
            self.snapshot(step)
        sizes = _CallSizes(params.steps_per_call, cluster=not self.chief or params.strategy == "multi_worker")
        bar = tqdm(total=params.num_steps, initial=step, unit="step", disable=not (progress and self.chief),
                   file=sys.stdout, dynamic_ncols=True, desc=params.run_name,
                   mininterval=0.2 if sys.stdout.isatty() else 30)
        with bar:
            while self.step < params.num_steps:
                n = min(sizes.size(), self.next_host_step() - self.step)
                started = time.time()
                rows, usable = self.steps(tf.constant(self.step, tf.int64), tf.constant(n, tf.int32))
                rows, usable = rows.numpy(), usable.numpy()
                ended = time.time()
                if self.chief:
                    self.pending.append((self.step, self.background.submit(self.write_scalars, rows, self.step)))
                sizes.timed(len(rows), ended - started)
                self.state.train_seconds.assign_add(ended - started)
                # tf.timestamp is barred under op determinism: the call's time is spread evenly over its steps
                self.record(rows, usable, started + (ended - started) * np.arange(1, len(rows) + 1) / len(rows),
                            bar)
                self.finish_background(before=-math.inf)  # waits for none, raises a write that failed
                if self.after_call(stop_requested, bar):
                    break
        if self.scores_mig and not _due(params.mig_step, self.step):
            self.score_mig(self.step)  # the trained model's score, whatever step training ended on
        if self.saved_at != self.step:
            self.save(self.step)
        if self.chief:
            if not self.wants_snapshot(self.step):  # the GIF and the exported image end on the saved model
                self.snapshot(self.step)
            self.finish_background()
            replace_atomically(self.run.model_keras, self.model.save)
            print(f"run saved in {self.run.path}; draw its figures with `python analyze.py {self.run.path}`, "
                  f"load it with vae_tf.load_run({str(self.run.path)!r})")

    def next_host_step(self):
        """The first step after the current one at which the host has work, or training ends."""
        params, step = self.params, self.step
        stops = [params.num_steps] + [s for s in params.log_step if s > step]
        every = (params.validation_step, params.checkpoint_step, params.plot_step,
                 params.mig_step if self.ground_truth is not None else 0)
        stops += [(step // each + 1) * each for each in every if each > 0]
        return min(stops)

    def record(self, rows, usable, times, bar):
        """Log the rows of one call, one per step, and stop at a diverged step as the nan_policy says."""
        params, names = self.params, self.model.step_figures
        values, error = rows.tolist(), None
        for offset, finite in enumerate(usable.tolist()):
            if finite:
                self.skipped_in_a_row = 0
                continue
            step, figures = self.step + offset, dict(zip(names, values[offset]))
            self.skipped_in_a_row += 1
            if params.nan_policy == "stop":
                error = TrainingDiverged(
                    f"the loss became {figures['loss']} at step {step} (gradient norm {figures['grad_norm']});"
                    f" training stopped, {_kept(self.saved_at)}; try a lower learning_rate (now "
                    f"{params.learning_rate:g}) or --nan_policy=skip_batch")
            elif self.skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
                error = TrainingDiverged(f"{MAX_SKIPPED_IN_A_ROW} batches in a row had a non-finite loss "
                                         f"(up to step {step}); training stopped; try a lower learning_rate")
            if error:
                values = values[:offset]  # the rows before the one that stops training
                break
            bar.write(f"step {step}: non-finite loss, update skipped (nan_policy=skip_batch)")
        if self.chief:  # formatted and written on the background thread, in order, before any later checkpoint
            lines = [[self.step + i, *row, wall] for i, (row, wall) in enumerate(zip(values, times.tolist()))]
            self.pending.append((self.step, self.background.submit(self.log.append_rows, lines)))
        self.step += len(values)
        if error:
            raise error
        figures = dict(zip(names, values[-1]))
        bar.update(len(values))
        bar.set_postfix(loss=f"{figures['loss']:.4g}", rec=f"{figures['reconstruction_loss']:.4g}",
                        kl=f"{figures['kl_loss']:.3g}", w=f"{figures['kl_weight']:.3g}", refresh=False)

    def after_call(self, stop_requested, bar):
        """The host's work at the step a call ended on; True when training stops early."""
        params, step = self.params, self.step
        if _due(params.validation_step, step):
            self.validate(step)
        if self.wants_snapshot(step):
            self.snapshot(step)
        if self.scores_mig and _due(params.mig_step, step):
            self.score_mig(step)
        stop = stop_requested[0] if stop_requested else None  # read once: a signal may land any time
        if _due(params.checkpoint_step, step) or stop:
            self.save(step)
        if stop:
            if not self.wants_snapshot(step) and self.chief:  # the snapshot of the model just saved
                self.snapshot(step)
            raise TrainingInterrupted(f"{stop} received: saved a checkpoint at step {step} "
                                      f"in {self.run.path}; rerun the same command to resume")
        if params.validation_tolerance and int(self.state.checks_since_best.numpy()) >= params.validation_tolerance:
            bar.write(f"early stop at step {step}: {params.validation_tolerance} validations without improvement")
            return True
        return False

    def wants_snapshot(self, at):
        params = self.params
        return self.chief and ((params.plot_step and at % params.plot_step == 0) or at in params.log_step)

    def snapshot(self, at):
        """The model's images at step `at`, computed now; drawing and writing them goes on in the background."""
        panels = [images.numpy() for images in self.snapshot_panels()]
        self.pending.append((at, self.background.submit(self._write_snapshot, at, panels)))

    def _write_snapshot(self, at, panels):
        pixels = self.draw_snapshot(*panels, at)
        png = iio.imwrite("<bytes>", pixels, extension=".png")
        replace_atomically(self.run.snapshot(at), lambda tmp: Path(tmp).write_bytes(png))
        # TensorBoard's image summary (width, height, PNG), of the PNG just encoded: tf.summary.image would encode
        # the pixels a second time.
        height, width = pixels.shape[:2]
        with self.writer.as_default(step=at):
            tf.summary.write("snapshot", tf.constant([str(width), str(height), png]),
                             metadata=image_metadata.create_summary_metadata(display_name=None, description=None))

    def _write_validation_scalars(self, at, figures):
        with self.writer.as_default(step=at):
            for name, value in figures.items():
                tf.summary.scalar(f"validation/{name}", value)

    def finish_background(self, before=math.inf):
        """Wait for the background writes about steps before `before` and collect those already finished, so that a
        failed one (a full disk) raises here, at the latest after the training call that follows it."""
        running = []
        for at, future in self.pending:
            if at < before or future.done():
                future.result()
            else:
                running.append((at, future))
        self.pending = running

    def validate(self, at):
        """Every worker validates the same images, so all take the same early-stopping decision."""
        state = self.state
        means, sizes = (tensor.numpy().astype(np.float64) for tensor in self.validation())
        totals = (means * sizes[:, None]).sum(axis=0)  # float64 sums of the batch means
        figures = {name: float(total / sizes.sum()) for name, total in zip(VALIDATED, totals)}
        if self.chief:
            self.validation_log.append({"step": at, **figures, "wall_time": time.time()})
            self.pending.append((at, self.background.submit(self._write_validation_scalars, at, figures)))
        if figures["loss"] < float(state.best_validation.numpy()):
            state.best_validation.assign(figures["loss"])
            state.checks_since_best.assign(0)
            state.save(at, best=True)
        else:
            state.checks_since_best.assign_add(1)

    def score_mig(self, at):
        """MIG of the model at step `at` (published protocol, vae_tf.metrics), one row of mig.csv: the score, each
        factor's gap and best latent, and the seconds spent training so far."""
        scores = metrics.evaluate(self.ground_truth, self.representation, metrics.METRICS_SEED,
                                  names=["mig"])["mig"]
        names = self.ground_truth.factor_names
        self.mig_log.append({"step": at, "train_seconds": float(self.state.train_seconds.numpy()),
                             "mig": scores["score"], **{f"mig_{n}": v for n, v in zip(names, scores["per_factor"])},
                             **{f"latent_{n}": d for n, d in zip(names, scores["top_dims"])}, "wall_time": time.time()})

    def save(self, at):
        # The log rows, scalars and snapshots of earlier steps are on disk before the checkpoint; the snapshot of this
        # step may still be drawing, and a run resumed from this checkpoint draws it again if it never landed.
        self.finish_background(before=at)
        for log in self.logs:
            log.flush()
        self.state.save(at)
        self.saved_at = at
