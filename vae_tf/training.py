"""`train(params)`: trains into a run folder, resuming whatever the folder already holds."""

import contextlib
import errno
import fcntl
import math
import os
import signal
import sys
import threading
import time

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from vae_tf import datasets, distribution, jobs
from vae_tf.checkpoints import Checkpointer, start_from
from vae_tf.errors import WRITE_FAILURES, TrainingDiverged, TrainingInterrupted, UserError, cannot_write
from vae_tf.models import build_model
from vae_tf.models.base import usable_step
from vae_tf.objectives import replica_rows
from vae_tf.params import LABELLED_MODELS, STRUCTURAL, check_image_size, names
from vae_tf.runs import (TRIAL_JSON, TRIAL_LOG, RunDir, check_columns, checkpoint_steps, log_columns, log_header,
                         record_params, replace_atomically, write_json)
from vae_tf.schedules import comparable_from, schedule_unit

MAX_SKIPPED_IN_A_ROW = 100
# TensorFlow reports a failed file write as an OpError without an errno; these words tell it from a failed computation.
_WRITE_FAILURES = {"no space left": errno.ENOSPC, "disk quota": errno.EDQUOT, "file too large": errno.EFBIG,
                   "read-only file system": errno.EROFS, "permission denied": errno.EACCES,
                   "operation not permitted": errno.EPERM, "input/output error": errno.EIO}
# How a per-step figure combines across replicas (the rest are averaged).
_REDUCTIONS = {"mean_min": tf.reduce_min, "std_min": tf.reduce_min,
               "mean_max": tf.reduce_max, "std_max": tf.reduce_max, "skipped": tf.reduce_max}


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
def _writes_to(run):
    """A failed write (read-only file system, disk full, no permission, a file where a folder should be) becomes one
    clear line; what was saved stays usable, and the same command resumes from the newest checkpoint on disk."""
    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        if isinstance(error, tf.errors.OpError):
            text = str(error).lower()
            number = next((n for words, n in _WRITE_FAILURES.items() if words in text), None)
            if number is None:
                raise
            error = OSError(number, os.strerror(number), str(run.path))
        elif error.errno not in WRITE_FAILURES:
            raise
        if error.filename is None:  # a write to a file already open names no path
            error = OSError(error.errno, error.strerror, str(run.path))
        resume = max(checkpoint_steps(run.checkpoints), default=0)
        raise UserError(cannot_write(error, retry=f"resume from step {resume}" if resume else "start again",
                                     elsewhere="pick another --output_dir")) from error


def _compiled_steps(model, strategy, stream, jit_compile, stop_on_nan):
    """A compiled function `(step, n) -> (figures [m, F], usable [m])` that runs up to n training steps from `step`
    without returning to the host: each step trains every replica on its slice of the step's batch from `stream` and
    combines the figures across replicas; `usable` says which steps had a finite loss and gradient
    (`models.base.usable_step`). It returns after the first unusable step when `stop_on_nan` (m < n), else after n steps.

    The next step's batch is drawn while the current step trains: it depends on no weight, so the two run side by
    side instead of one after the other (on a tiny model that hides the whole gather)."""
    one_step = tf.function(model.train_step, jit_compile=True, autograph=False) if jit_compile else model.train_step
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
        return strategy.experimental_distribute_values_from_function(lambda context: tf.nest.map_structure(
            lambda rows: replica_rows(rows, context.replica_id_in_sync_group, context.num_replicas_in_sync), batch))

    # Written as a tf.while_loop rather than converted by AutoGraph: conversion would transform the source of every
    # function the step calls, seconds of each new process's start, and the step needs no Python control flow.
    @tf.function(autograph=False)
    def steps(start, n):
        def step_once(i, batch, rows, usable, going):
            step = start + tf.cast(i, tf.int64)
            following = tf.cond(i + 1 < n, lambda: stream.batch(step + 1), lambda: batch)
            vector = strategy.experimental_local_results(strategy.run(replica_step, args=(per_replica(batch),)))[0]
            fine = usable_step(vector[loss_index], vector[norm_index], model.loss_scaled)
            # stop_on_nan: return after the first unusable step
            return i + 1, following, rows.write(i, vector), usable.write(i, fine), fine | (not stop_on_nan)

        rows = tf.TensorArray(tf.float32, size=n, element_shape=[len(model.step_figures)])
        usable = tf.TensorArray(tf.bool, size=n, element_shape=[])
        count, _, rows, usable, _ = tf.while_loop(lambda i, batch, rows, usable, going: (i < n) & going, step_once,
                                                  (tf.constant(0), stream.batch(start), rows, usable,
                                                   tf.constant(True)))
        return rows.gather(tf.range(count)), usable.gather(tf.range(count))

    return steps


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
    previous = _check_resumable(run, params) if run.params_json.exists() else _check_new_folder(run)
    check_image_size(params, datasets.image_shape_of(params)[0])
    if params.model in LABELLED_MODELS:
        datasets.class_names(params)  # a label the data set lacks, before loading it
    source = datasets.source_for(params)
    train_split, validation_split = source.split("train"), source.fixed_split("validation")
    # A semi-supervised run's labelled images: checked (a label the data lacks, too many asked) before any write.
    labelled = _labelled(run, params, train_split) if params.model in LABELLED_MODELS else None
    if params.prior == "vamp" and params.prior_components > train_split.num_examples:
        raise UserError(f"prior vamp learns {params.prior_components} pseudo-inputs, more than the "
                        f"{train_split.num_examples} training images; set prior_components to at most "
                        f"{train_split.num_examples}")
    # Data sets with known factors; every worker ends its calls at the MIG steps, so all make the same calls.
    ground_truth = source.ground_truth() if params.mig_step and hasattr(source, "ground_truth") else None
    with strategy.scope():
        model = build_model(params, dataset_size=train_split.num_examples)
    # A new run's weights from another run's: refused before anything is written when the models differ.
    started_from = (start_from(model, params, run) if params.init_from is not None and not run.has_checkpoint("latest")
                    else None)
    if chief:
        _describe_splits(params, train_split.num_examples, validation_split.num_examples)
    with _writes_to(run):
        if chief:
            run.images.mkdir(parents=True, exist_ok=True)
        with _exclusive(run, chief):
            return _train_locked(params, previous, run, strategy, chief, model, train_split, validation_split,
                                 ground_truth, progress, labelled, started_from)


def _check_new_folder(run):
    """A new run goes into a missing or empty folder (or one a run left before it wrote params.json), never among
    another folder's files (a study's results, a user's own): returns None, the new run's previous params."""
    # What train writes before params.json, and what a study puts there first (the log it trains into; its record of
    # an earlier failure, when retried).
    ours = {run.images.name, ".lock", TRIAL_LOG, TRIAL_JSON}
    if run.path.is_dir():
        foreign = sorted(p.name for p in run.path.iterdir() if p.name not in ours)
        if foreign:
            kind = "a study folder" if "study.json" in foreign else "a folder that is not a run (no params.json)"
            raise UserError(f"{run.path} is {kind} and holds {', '.join(foreign[:3])}"
                            f"{' ...' if len(foreign) > 3 else ''}; pick another --run_name or --output_dir")
    return None


def _labelled(run, params, train_split):
    """(positions, classes) of the labelled training images: those saved in the run folder's labelled.csv when it is
    resumed, else the seed's draw (`datasets.labelled_positions`), which the run saves when it starts."""
    if run.labelled_csv.exists():
        table = np.loadtxt(run.labelled_csv, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
        return table[:, 0], table[:, 1]
    positions = datasets.labelled_positions(train_split, params)
    return positions, np.asarray(train_split.labels[params.label_factor])[positions].astype(np.int64)


def _train_locked(params, previous, run, strategy, chief, model, train_split, validation_split, ground_truth, progress,
                  labelled, started_from):
    """The rest of `train`, while this process holds the run folder; `started_from`: what `start_from` said."""
    with strategy.scope():
        state = Checkpointer(model, run, chief)
    kept_columns = []  # the notes of logs begun without some of today's figures (`runs.CsvLog` keeps their columns)
    if chief:  # a log this run cannot resume is refused before anything is written
        for path, figures in ((run.log_csv, model.step_figures), (run.validation_csv, model.validation_figures)):
            header = log_header(path)
            check_columns(path, header, log_columns(figures))
            missing = [name for name in figures if header and name not in header]
            if missing and (path == run.log_csv or params.validation_step):
                kept_columns.append(f"note: {path} was begun without {', '.join(missing)}: it keeps its columns, "
                                    f"and TensorBoard alone logs those")
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
    compared_from = comparable_from(params)
    # Before the ramps end: a best and count saved by an older vae_tf or under another schedule.
    if int(model.schedule_step(step)) < compared_from:
        state.best_validation.assign(math.inf)
        state.checks_since_best.assign(0)
    stopped_early = params.validation_tolerance and int(state.checks_since_best.numpy()) >= params.validation_tolerance
    if step >= params.num_steps or stopped_early:
        why = (f"stopped early at step {step} after {int(state.checks_since_best.numpy())} validations without improvement; "
               f"raise --validation_tolerance (0 = never stop) to continue" if stopped_early else
               f"already trained for {step} steps; pass a larger --num_steps to extend it")
        print(f"run {run.path}: {why}")
        if chief and not run.model_keras.exists():  # killed (or stopped early) before its export was written
            replace_atomically(run.model_keras, model.save)
        return run.path
    if chief:
        print(model.describe(), *kept_columns, sep="\n")
        if params.validation_step and compared_from >= params.num_steps:
            print(f"note: validations are compared from {schedule_unit(params)} {compared_from} on, where the "
                  f"schedule's ramp ends, after num_steps {params.num_steps}: this run keeps no best checkpoint and "
                  f"does not stop early")
        elif params.validation_step and params.aggressive and int(model.schedule_step(step)) < compared_from:
            print(f"note: validations are compared from decoder update {compared_from} on, where the schedule's "
                  f"ramp ends; num_steps {params.num_steps} counts the encoder's inner updates too, so until the "
                  f"decoder has made that many this run keeps no best checkpoint and does not stop early")
    if chief and previous is not None:
        print(_resume_line(run, previous, params, step, logged))
    if chief and started_from:
        print(started_from)

    # A stop request while the loop compiles its functions (seconds) is honoured at the end of the first call.
    with _stop_requests() as stop_requested, contextlib.ExitStack() as files:
        loop = TrainingLoop(params, previous, run, strategy, chief, model, state, train_split, validation_split,
                            ground_truth, step, step if restored else None, files, labelled)
        loop.fit(progress, stop_requested)
    return run.path


def make_jobs(params, run, model, state, validation_split, ground_truth, step, saved_at, writer, background, chief,
              files):
    """The periodic jobs of a run, in the order they run at a step where several are due; `files` (an ExitStack)
    closes each one built, whatever happens after."""
    made = []

    def add(job):
        files.callback(job.close)
        made.append(job)

    if chief:
        add(jobs.LogRows(run, model.step_figures, step, writer, background, params.tensorboard_step))
    validation = jobs.validation_set(params, validation_split)
    add(jobs.Validate(params, model, validation, state, run, writer, background, step, chief))
    add(jobs.LatentActivity(params, model, validation, run, writer, background, step, chief))
    add(jobs.Snapshot(params, model, validation_split, run, writer, background, chief))
    if ground_truth is not None:
        add(jobs.ScoreMig(params, model, ground_truth, state, run, step, chief))
    logs = [job.log for job in made if job.log is not None]
    add(jobs.Checkpoint(params, state, background, logs, saved_at))
    return made


class TrainingLoop:
    """The training loop of one run: compiled calls of several steps, and between them the periodic jobs
    (`vae_tf.jobs`), the progress bar, the nan_policy, early stopping and stop requests, always at the same steps."""

    def __init__(self, params, previous, run, strategy, chief, model, state, train_split, validation_split,
                 ground_truth, step, saved_at, files, labelled=None):
        """`files`: an ExitStack that closes what this opens, whatever happens after; `labelled`: a semi-supervised
        run's (positions, classes) of its labelled training images."""
        self.params, self.run, self.chief, self.model, self.state = params, run, chief, model, state
        self.step, self.skipped_in_a_row = step, 0
        if labelled is None:
            stream = datasets.TrainingStream(train_split, params.batch_size, params.seed, params.binarize)
        else:
            stream = datasets.LabelledStream(train_split, *labelled, params.batch_size, params.seed, params.binarize)
            if chief and not run.labelled_csv.exists():
                replace_atomically(run.labelled_csv, lambda tmp: np.savetxt(
                    tmp, np.column_stack(labelled), fmt="%d", delimiter=",", header="position,class", comments=""))
        self.steps = _compiled_steps(model, strategy, stream, params.jit_compile, params.nan_policy == "stop")
        self.background = jobs.Background()  # its thread starts with the first write
        writer = None
        if chief:
            writer = tf.summary.create_file_writer(str(run.logs))
            files.callback(writer.close)
            with writer.as_default(step=step):  # the run's first line (which KL is a one-sample estimate), kept
                tf.summary.text("model", model.describe())
        self.jobs = make_jobs(params, run, model, state, validation_split, ground_truth, step, saved_at, writer,
                              self.background, chief, files)
        if chief:  # once the logs have been opened: a log this run cannot resume changes no parameter on record
            write_json(run.params_json, params.to_dict())
            record_params(run, previous, params, step)
        files.callback(self.background.close)  # first on exit: its pending writes land before the files close
        self.checkpoint = self.jobs[-1]
        # Compiled now rather than at the first checkpoint, so the pace of training is steady from the start.
        state.write.get_concrete_function(tf.TensorSpec([], tf.string))

    @property
    def saved_at(self):
        return self.checkpoint.saved_at

    def fit(self, progress, stop_requested):
        params = self.params
        for job in self.jobs:
            job.start(self.step)
        sizes = _CallSizes(params.steps_per_call, cluster=not self.chief or params.strategy == "multi_worker")
        bar = tqdm(total=params.num_steps, initial=self.step, unit="step", disable=not (progress and self.chief),
                   file=sys.stdout, dynamic_ncols=True, desc=params.run_name,
                   mininterval=0.2 if sys.stdout.isatty() else 30)
        with bar:
            while self.step < params.num_steps:
                n = min(sizes.size(), self.next_host_step() - self.step)
                started = time.time()
                rows, usable = self.steps(tf.constant(self.step, tf.int64), tf.constant(n, tf.int32))
                rows, usable = rows.numpy(), usable.numpy()
                ended = time.time()
                sizes.timed(len(rows), ended - started)
                self.state.train_seconds.assign_add(ended - started)
                # tf.timestamp is barred under op determinism: the call's time is spread evenly over its steps
                self.record(rows, usable, started + (ended - started) * np.arange(1, len(rows) + 1) / len(rows), bar)
                self.background.finish(before=-math.inf)  # waits for none, raises a write that failed
                if self.after_call(stop_requested, bar):
                    break
        self.finish(interrupted=False)
        if self.chief:
            replace_atomically(self.run.model_keras, self.model.save)
            print(f"run saved in {self.run.path}; draw its figures with `python analyze.py {self.run.path}`, "
                  f"load it with vae_tf.load_run({str(self.run.path)!r})")

    def next_host_step(self):
        """The first step after the current one at which a job has work, or training ends."""
        wanted = (job.next_step(self.step) for job in self.jobs)
        return min([self.params.num_steps, *(at for at in wanted if at is not None)])

    def record(self, rows, usable, times, bar):
        """Hand the rows of one call, one per step, to the jobs, and stop at a diverged step as the nan_policy says."""
        params, names = self.params, self.model.step_figures
        kept, error = len(rows), None
        for offset, finite in enumerate(usable.tolist()):
            if finite:
                self.skipped_in_a_row = 0
                continue
            step, figures = self.step + offset, dict(zip(names, rows[offset].tolist()))
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
                kept = offset  # the rows before the one that stops training
                break
            bar.write(f"step {step}: non-finite loss, update skipped (nan_policy=skip_batch)")
        for job in self.jobs:  # the log's rows are written before any later checkpoint
            job.after_call(self.step, rows[:kept], times[:kept])
        self.step += kept
        if error:
            raise error
        figures = dict(zip(names, rows[kept - 1].tolist()))
        bar.update(kept)
        bar.set_postfix(loss=f"{figures['loss']:.4g}", rec=f"{figures['reconstruction_loss']:.4g}",
                        kl=f"{figures['kl_loss']:.3g}", w=f"{figures['kl_weight']:.3g}", refresh=False)

    def after_call(self, stop_requested, bar):
        """Run the jobs due at the step a call ended on; True when training stops early."""
        params, step = self.params, self.step
        for job in self.jobs:
            if job.due(step):
                job.run(step)
            if job.notice:
                bar.write(job.notice)
                job.notice = None
        stop = stop_requested[0] if stop_requested else None  # read once: a signal may land any time
        if stop:
            self.finish(interrupted=True)
            raise TrainingInterrupted(f"{stop} received: saved a checkpoint at step {step} "
                                      f"in {self.run.path}; rerun the same command to resume")
        if params.validation_tolerance and int(self.state.checks_since_best.numpy()) >= params.validation_tolerance:
            bar.write(f"early stop at step {step}: {params.validation_tolerance} validations without improvement")
            return True
        return False

    def finish(self, interrupted):
        """Each job completes its work for the step training stops at; then every background write lands."""
        for job in self.jobs:
            job.finish(self.step, interrupted)
        self.background.finish()
