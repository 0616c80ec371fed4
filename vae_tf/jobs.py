"""The host's work between compiled training calls, as periodic jobs (in the spirit of Keras callbacks).

The training loop (`vae_tf.training`) ends each compiled call at the earliest `next_step` of its jobs, then runs
every job `due` at that step, in the order of the list: log rows, validate, latent activity, snapshot, score MIG,
checkpoint. `after_call` receives every call's per-step figures (the log). When training stops — finished, stopped
early or interrupted — each job's `finish` completes its work for the last step. A new job is a subclass of `Job`
added to `training.make_jobs`; `docs/training-loop.md` shows one.

Every worker of a cluster builds the same jobs, so that all end their calls at the same steps (their collectives
would hang otherwise); jobs that write files act on the chief only.
"""

import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import imageio.v3 as iio
import numpy as np
import tensorflow as tf
from tensorboard.plugins.image import metadata as image_metadata

from vae_tf import aggressive, metrics
from vae_tf.baselines import model_representation
from vae_tf.runs import CsvLog, latent_history, log_columns, mig_columns, replace_atomically
from vae_tf.schedules import comparable_from
from vae_tf.snapshots import SnapshotFigure

SNAPSHOT_IMAGES = 16


class Background:
    """One writer thread: log rows, TensorBoard scalars and snapshots are written there, overlapping the next training
    call. A failed write raises in `finish`, at the latest after the training call that follows it."""

    def __init__(self):
        self.pool, self.pending = ThreadPoolExecutor(1, thread_name_prefix="vae_tf_writer"), []

    def submit(self, at, write, *args):
        """Write (on the thread) what concerns step `at`."""
        self.pending.append((at, self.pool.submit(write, *args)))

    def finish(self, before=math.inf):
        """Wait for the writes about steps before `before` and collect those already done, raising a failed one."""
        running = []
        for at, future in self.pending:
            if at < before or future.done():
                future.result()
            else:
                running.append((at, future))
        self.pending = running

    def close(self):
        self.pool.shutdown(wait=True)


class Job:
    """Work the loop does on the host every `every` steps (0: never); override the hooks it needs."""

    every = 0
    log = None  # the CsvLog a job writes, if any: flushed before each checkpoint, closed with the job
    notice = None  # a line for the progress bar, which the loop prints and clears after the job runs

    def next_step(self, step):
        """The first step after `step` at which this job runs, or None."""
        return (step // self.every + 1) * self.every if self.every > 0 else None

    def due(self, step):
        return self.every > 0 and step % self.every == 0

    def start(self, step):
        """Training (re)starts at `step`."""

    def after_call(self, first_step, rows, times):
        """A call trained steps first_step, first_step + 1, ...: their figures `rows` [m, F] and wall times [m]."""

    def run(self, step):
        """The job's work at a step where it is due."""

    def finish(self, step, interrupted):
        """Training stops at `step` (`interrupted`: by a signal, and the process should exit soon)."""

    def close(self):
        """Release files; called whatever happened, once the job was built."""
        if self.log is not None:
            self.log.close()


class LogRows(Job):
    """log.csv, one row per step, and TensorBoard's `train/<figure>` scalars every `every` steps, written on the
    background thread."""

    def __init__(self, run, step_figures, resume_step, writer, background, every):
        self.write_scalars = _scalar_writer(writer, step_figures, every)
        self.write_scalars.get_concrete_function()
        self.background = background
        self.log = CsvLog(run.log_csv, log_columns(step_figures), resume_step)  # last: close() needs a whole job

    def after_call(self, first_step, rows, times):
        lines = [[first_step + i, *row, wall] for i, (row, wall) in enumerate(zip(rows.tolist(), times.tolist()))]
        self.background.submit(first_step, self.log.append_rows, lines)
        self.background.submit(first_step, self.write_scalars, rows, first_step)


class Validate(Job):
    """The validation loss on fixed images every `validation_step` steps (validation.csv, TensorBoard), and the best
    checkpoint whenever it improves. Every worker validates the same images, so all take the same early-stopping
    decision. While a schedule ramps (`schedules.comparable_from`, at `Model.schedule_step`), the loss weighs its term
    by a weight still changing: those validations are logged but neither saved as the best nor counted towards
    `validation_tolerance` (Tomczak & Welling 2018's code does not count its warm-up's epochs either), or a warm-up's
    light first weights would win."""

    def __init__(self, params, model, validation, state, run, writer, background, resume_step, chief):
        self.every = params.validation_step
        self.compared_from, self.schedule_step = comparable_from(params), model.schedule_step
        self.state, self.writer, self.background = state, writer, background
        self.names = model.validation_figures  # the figures a validation averages
        self.validation = _compiled_validation(model, validation, params.batch_size)
        self.validation.get_concrete_function()  # compiled now: a validation that cannot run fails at once
        # A validation at the resumed step came before its checkpoint was saved and is not redone.
        self.log = CsvLog(run.validation_csv, log_columns(self.names), resume_step + 1) if chief else None

    def run(self, step):
        state = self.state
        figures = self.figures()
        if self.log is not None:
            self.log.append({"step": step, **figures, "wall_time": time.time()})
            self.background.submit(step, self._write_scalars, step, figures)
        if int(self.schedule_step(step)) < self.compared_from:
            return
        if figures["loss"] < float(state.best_validation.numpy()):
            state.best_validation.assign(figures["loss"])
            state.checks_since_best.assign(0)
            state.save(step, best=True)
        else:
            state.checks_since_best.assign_add(1)

    def figures(self):
        """{figure: its mean over the validation images} of the model now."""
        means, sizes = (tensor.numpy().astype(np.float64) for tensor in self.validation())
        totals = (means * sizes[:, None]).sum(axis=0)  # float64 sums of the batch means
        return {name: float(total / sizes.sum()) for name, total in zip(self.names, totals)}

    def _write_scalars(self, step, figures):
        with self.writer.as_default(step=step):
            for name, value in figures.items():
                tf.summary.scalar(f"validation/{name}", value)


def layer_columns(num_layers):
    """A layered model's per-layer figures: (`kl_z1`, `active_units_z1`, `kl_z2`, …)."""
    return tuple(f"{name}_z{l + 1}" for l in range(num_layers) for name in ("kl", "active_units"))


def latent_columns(latent_size, num_layers=0):
    """latents.csv's columns: the Gaussian code's total KL, I(x; z) and active units, then each dimension's KL and
    activity (1 active, 0 not), then a layered model's KL and active units per layer (`layer_columns`)."""
    return (("step", "kl", "mutual_information", "active_units") + tuple(f"kl_{d}" for d in range(latent_size))
            + tuple(f"active_{d}" for d in range(latent_size)) + layer_columns(num_layers) + ("wall_time",))


class LatentActivity(Job):
    """What the Gaussian code holds, on the validation images every `validation_step` steps (latents.csv,
    TensorBoard's `latents/`): each dimension's KL and whether it is active (Burda et al. 2016: the variance over the
    images of E[z_d|x] above 0.01; through a flow, of z_K), the total KL and I(x; z) (`latent_space.index_code_mi`;
    through a flow, q_0's). When the run has collapsed or is collapsing (`latent_space.training_warning`; through a
    flow, collapsed only), `notice` holds a one-line warning for the progress bar, once per state in a session of
    training."""

    def __init__(self, params, model, validation, run, writer, background, resume_step, chief):
        from vae_tf import latent_space
        self.every, self.writer, self.background, self.chief = params.validation_step, writer, background, chief
        self.latent_space, self.seed = latent_space, params.seed
        self.aggressive = model.aggressive
        self.images = validation.images
        self.batch_size = params.batch_size
        # A layered model gives every layer's posterior along its mean path and each dimension's KL to its prior.
        self.layered = getattr(model, "layered", False)
        self.layer_sizes = list(model.sizes) if self.layered else []  # TensorBoard gets each layer's KL and units too
        self.encode = tf.function(model.code_posterior if self.layered else  # else the Gaussian part's parameters
                                  lambda x: model.latent.split(model.encode(x))[0], autograph=False)
        self.gaussian = gaussian = model.latent.gaussian
        self.sampled_kl = None if gaussian.closed_form or self.layered else self._sampled_kl_of(gaussian)
        self.history, self.warned = [], set()  # the states already told (collapsed, collapsing), each once
        columns = latent_columns(model.latent.code_size if self.layered else params.latent_size, len(self.layer_sizes))
        if chief and self.every:
            self.log = CsvLog(run.latents_csv, columns, resume_step + 1)
            self.history = latent_history(run.latents_csv)  # the run's earlier validations, for the trend

    def run(self, step):
        if not self.chief:
            return
        encoded = [self.encode(self.images[i:i + self.batch_size]) for i in range(0, len(self.images), self.batch_size)]
        parameters = [np.concatenate([e[j].numpy() for e in encoded]).astype(np.float64)
                      for j in range(len(encoded[0]))]
        # A layered model's: (code, each layer's posterior mean, log std, KL) along its mean path.
        mean, log_std = parameters[1:3] if self.layered else parameters[:2]
        kl = parameters[3].mean(axis=0) if self.layered else self.latent_space.kl_per_dimension(mean, log_std)
        active = (self.latent_space.active_units(mean) if self.layered else
                  self.gaussian.active_units(parameters, self.seed))  # a flow's on z_K
        total = float(kl.sum()) if self.sampled_kl is None else self.sampled_kl(parameters)
        information = self.latent_space.index_code_mi(mean, log_std, self.seed)
        self.history.append((int(active.sum()), information, total))
        ends = np.cumsum([0, *self.layer_sizes])
        layers = dict(zip(layer_columns(len(self.layer_sizes)),
                          (values[ends[l]:ends[l + 1]].sum().item() for l in range(len(self.layer_sizes))
                           for values in (kl, active))))
        row = {"step": step, "kl": total, "mutual_information": information,
               "active_units": int(active.sum()), **{f"kl_{d}": float(k) for d, k in enumerate(kl)},
               **{f"active_{d}": int(a) for d, a in enumerate(active)}, **layers, "wall_time": time.time()}
        self.log.append(row)
        self.background.submit(step, self._write_scalars, step, row, tuple(layers))
        self.notice = "\n".join(self._notices(step)) or None

    def _notices(self, step):
        """The lines the latest validation gives the progress bar: a collapse warning, aggressive training's end."""
        state, sentence = self.latent_space.training_warning(self.history, self.gaussian.code_information)
        if state and state not in self.warned:
            self.warned.add(state)
            yield f"warning at step {step}: {sentence}"
        information = self.history[-1][1]
        if self.aggressive is not None and self.aggressive.check(information):
            yield (f"step {step}: aggressive inference training ends, I(x; z) on the validation images "
                   f"({information:.3g} nats) has fallen short of its best "
                   f"({float(self.aggressive.best_information.numpy()):.3g}) at {aggressive.PATIENCE} checks, one "
                   f"every {self.aggressive.check_every} decoder updates; both networks train together from here "
                   f"(He et al. 2019)")

    def _sampled_kl_of(self, gaussian):
        """For a learned prior or a flow: the Gaussian part's parameters [n, ...] -> the mean one-sample KL estimate
        (nats) at the same draws of each posterior every time."""
        estimate = tf.function(lambda parameters, noise: tf.reduce_mean(gaussian.kl(parameters, noise)),
                               autograph=False)

        def sampled_kl(parameters):
            noise = np.random.default_rng(self.seed).standard_normal(parameters[0].shape)
            return float(estimate([tf.constant(p, tf.float32) for p in parameters], tf.constant(noise, tf.float32)))

        return sampled_kl

    def _write_scalars(self, step, row, layers):
        with self.writer.as_default(step=step):
            for name in ("kl", "mutual_information", "active_units", *layers):
                tf.summary.scalar(f"latents/{name}", row[name])


class Snapshot(Job):
    """images/image_<step>.png (originals | reconstructions | generations) and its TensorBoard image, every
    `plot_step` steps and at each of `log_step`; also at the step training stops, so the GIF ends on the saved model."""

    def __init__(self, params, model, split, run, writer, background, chief):
        self.every, self.extra_steps, self.chief = params.plot_step, params.log_step, chief
        self.run_dir, self.writer, self.background = run, writer, background
        self.panels, self.codes = _compiled_snapshot(model, split), model.latent.prior_codes
        self.seed = params.seed
        self.panels.get_concrete_function(tf.TensorSpec([SNAPSHOT_IMAGES, model.latent.code_size], tf.float32))
        self.draw = SnapshotFigure()  # used on the background thread only
        self.last = None  # the last step drawn

    def next_step(self, step):
        later = [s for s in self.extra_steps if s > step] + [super().next_step(step) or math.inf]
        return min(later) if min(later) < math.inf else None

    def due(self, step):
        return super().due(step) or step in self.extra_steps

    def start(self, step):
        if self.due(step) and not self.run_dir.snapshot(step).exists():
            self.run(step)

    def run(self, step):
        """The model's images at `step`, computed now; drawing and writing them goes on in the background."""
        if not self.chief:
            return
        # The same draws each time, of the prior as it is now (a learned one moves).
        codes = self.codes(np.random.default_rng(self.seed), SNAPSHOT_IMAGES).astype(np.float32)
        panels = [images.numpy() for images in self.panels(tf.constant(codes))]
        self.background.submit(step, self._write, step, panels)
        self.last = step

    def finish(self, step, interrupted):
        if self.last != step:
            self.run(step)

    def _write(self, step, panels):
        pixels = self.draw(*panels, step)
        png = iio.imwrite("<bytes>", pixels, extension=".png")
        replace_atomically(self.run_dir.snapshot(step), lambda tmp: Path(tmp).write_bytes(png))
        # TensorBoard's image summary (width, height, PNG), of the PNG just encoded: tf.summary.image would encode
        # the pixels a second time.
        height, width = pixels.shape[:2]
        with self.writer.as_default(step=step):
            tf.summary.write("snapshot", tf.constant([str(width), str(height), png]),
                             metadata=image_metadata.create_summary_metadata(display_name=None, description=None))


class ScoreMig(Job):
    """MIG at the published protocol (vae_tf.metrics) every `mig_step` steps and at the last step, one row of mig.csv
    each: the score, each factor's gap and best latent, and the seconds spent training so far. The chief scores; the
    other workers end their calls at the same steps and wait."""

    def __init__(self, params, model, ground_truth, state, run, resume_step, chief):
        self.every, self.ground_truth, self.state, self.chief = params.mig_step, ground_truth, state, chief
        self.representation = model_representation(model) if chief else None
        # A score at the resumed step came before its checkpoint was saved and is not redone.
        self.log = CsvLog(run.mig_csv, mig_columns(ground_truth.factor_names), resume_step + 1) if chief else None
        self.last = None

    def run(self, step):
        if not self.chief:
            return
        scores = metrics.evaluate(self.ground_truth, self.representation, metrics.METRICS_SEED, names=["mig"])["mig"]
        names = self.ground_truth.factor_names
        self.log.append({"step": step, "train_seconds": float(self.state.train_seconds.numpy()),
                         "mig": scores["score"], **{f"mig_{n}": v for n, v in zip(names, scores["per_factor"])},
                         **{f"latent_{n}": d for n, d in zip(names, scores["top_dims"])}, "wall_time": time.time()})
        self.last = step

    def finish(self, step, interrupted):
        if not interrupted and self.last != step:
            self.run(step)  # the trained model's score, whatever step training ended on


class Checkpoint(Job):
    """The latest checkpoint every `checkpoint_step` steps and when training stops. The log rows, scalars and
    snapshots of earlier steps reach the disk before it, so a run resumed from it finds them; the snapshot of its own
    step may still be drawing, and a resumed run draws it again if it never landed."""

    def __init__(self, params, state, background, logs, saved_at):
        self.every, self.state, self.background, self.logs = params.checkpoint_step, state, background, logs
        self.saved_at = saved_at  # the step of the last checkpoint, None before the first

    def run(self, step):
        self.background.finish(before=step)
        for log in self.logs:
            log.flush()
        self.state.save(step)
        self.saved_at = step

    def finish(self, step, interrupted):
        if self.saved_at != step:
            self.run(step)


class ValidationSet(NamedTuple):
    """The images [n, H, W, C] the validation jobs read, and their labels {name: [n]} for a model that reads them."""
    images: tf.Tensor
    labels: dict


def validation_set(params, split):
    """The split's first `validation_size` images (none when `validation_step` is 0), drawn once for the two jobs
    that read them (Validate, LatentActivity)."""
    count = min(params.validation_size, split.num_examples) if params.validation_step else 0
    return ValidationSet(split.images(tf.range(count, dtype=tf.int64)),
                         {name: tf.constant(values[:count]) for name, values in split.labels.items()})


def _compiled_validation(model, validation, batch_size):
    """A compiled function `() -> (figures [batches, F], batch sizes [batches])`: the model's validation figures of the
    validation set, batch by batch, in one call (one host round trip)."""
    data = model.evaluation_data(*validation)
    batches = -(-int(validation.images.shape[0]) // batch_size)
    names = model.validation_figures

    def batch_figures(i):
        batch = tf.nest.map_structure(lambda t: t[i * batch_size:(i + 1) * batch_size], data)
        terms = model.loss_terms(batch, model.optimizer.iterations, stream=1)
        return tf.stack([tf.cast(terms[name], tf.float32) for name in names]), tf.shape(tf.nest.flatten(batch)[0])[0]

    @tf.function(autograph=False)  # no AutoGraph: it would convert the source of every function the loss calls
    def validate():
        return tf.map_fn(batch_figures, tf.range(batches), parallel_iterations=1,
                         fn_output_signature=(tf.TensorSpec([len(names)], tf.float32), tf.TensorSpec([], tf.int32)))

    return validate


def _compiled_snapshot(model, split):
    """A compiled function `codes -> (originals, reconstructions, generations)`, each [SNAPSHOT_IMAGES, H, W, C]: the
    first validation images, their reconstructions and the decoded `codes` [SNAPSHOT_IMAGES, code_size]."""
    originals = split.images(tf.range(min(SNAPSHOT_IMAGES, split.num_examples), dtype=tf.int64))
    return tf.function(lambda codes: (originals, model.reconstruct(originals), model.decode(codes)), autograph=False)


def _scalar_writer(writer, names, every):
    """A compiled function `(figures [m, F], first_step)` writing the rows of steps first_step, first_step + 1, ...
    that are multiples of `every` as TensorBoard scalars `train/<name>`: the training call's figures, written off the
    training thread."""

    @tf.function(input_signature=[tf.TensorSpec([None, len(names)], tf.float32), tf.TensorSpec([], tf.int64)])
    def write(rows, first_step):
        steps = first_step + tf.range(tf.shape(rows, out_type=tf.int64)[0])
        kept = tf.equal(steps % every, 0)
        rows, steps = tf.boolean_mask(rows, kept), tf.boolean_mask(steps, kept)
        with writer.as_default():
            for i in tf.range(tf.shape(rows)[0]):
                step, values = steps[i], tf.unstack(rows[i])  # once a row, not once a scalar
                with tf.name_scope("train/"):  # absolute: the loop's own scope would prefix the tags with "while/"
                    for name, value in zip(names, values):
                        tf.summary.scalar(name, value, step=step)

    return write
