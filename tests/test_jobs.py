"""The training loop's periodic jobs, each on its own: a tiny built model, a run folder, no training loop."""

import csv
import dataclasses

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf import datasets, jobs
from vae_tf.checkpoints import Checkpointer
from vae_tf.runs import RunDir, checkpoint_steps


@pytest.fixture
def parts(tiny, tmp_path):
    """A tiny untrained model with its checkpoint state, run folder, validation split and a background writer."""
    params = tiny(validation_size=20, batch_size=8)
    model = vae_tf.build_model(params)
    run = RunDir(tmp_path / "run")
    run.images.mkdir(parents=True)
    writer = tf.summary.create_file_writer(str(run.logs))
    background = jobs.Background()
    split = datasets.source_for(params).fixed_split("validation")
    yield params, model, Checkpointer(model, run), run, split, writer, background
    background.close()
    writer.close()


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_each_job_names_the_steps_it_runs_at(parts):
    params, model, state, run, split, writer, background = parts
    snapshot = jobs.Snapshot(dataclasses.replace(params, plot_step=5, log_step=[1, 3]), model, split, run, writer, background, True)
    assert [snapshot.next_step(s) for s in (0, 1, 2, 3, 5, 7)] == [1, 3, 3, 5, 10, 10]
    assert [s for s in range(12) if snapshot.due(s)] == [0, 1, 3, 5, 10]
    off = dataclasses.replace(params, validation_step=0)
    never = jobs.Validate(off, model, jobs.validation_set(off, split), state, run, writer, background, 0, False)
    assert never.next_step(4) is None and not any(never.due(s) for s in range(10))


def test_validate_logs_the_mean_over_the_validation_images_and_keeps_the_best_checkpoint(parts):
    params, model, state, run, split, writer, background = parts
    every_5 = dataclasses.replace(params, validation_step=5)
    validation = jobs.validation_set(every_5, split)
    validate = jobs.Validate(every_5, model, validation, state, run, writer, background, 0, True)
    validate.run(5)
    background.finish()
    validate.log.flush()
    # Independently: each image's figures from the model, eagerly, batch by batch as the job batches them.
    images = split.images(tf.range(20, dtype=tf.int64))
    batches = [model.loss_terms(images[i:i + 8], model.optimizer.iterations, stream=1) for i in range(0, 20, 8)]
    sizes = np.array([8, 8, 4])
    expected = np.sum([float(b["loss"]) * n for b, n in zip(batches, sizes)]) / 20
    logged = rows(run.validation_csv)
    assert [int(r["step"]) for r in logged] == [5]
    np.testing.assert_allclose(float(logged[0]["loss"]), expected, rtol=1e-5)
    assert checkpoint_steps(run.best_checkpoints) == [5] and float(state.best_validation.numpy()) == float(logged[0]["loss"])
    state.best_validation.assign(-np.inf)  # nothing beats it: the next validation is no improvement
    validate.run(10)
    assert checkpoint_steps(run.best_checkpoints) == [5] and int(state.checks_since_best.numpy()) == 1
    validate.close()


def test_the_checkpoint_lands_after_the_log_rows_before_it_and_is_not_saved_twice(parts):
    params, model, state, run, split, writer, background = parts
    log = jobs.LogRows(run, model.step_figures, 0, writer, background, params.tensorboard_step)
    checkpoint = jobs.Checkpoint(dataclasses.replace(params, checkpoint_step=3), state, background, [log.log], None)
    figures = np.arange(3 * len(model.step_figures), dtype=np.float32).reshape(3, -1)
    log.after_call(0, figures, np.array([1.0, 2.0, 3.0]))
    checkpoint.run(3)
    # on disk before the checkpoint: the rows, flushed, whatever the writer thread was doing
    assert [int(r["step"]) for r in rows(run.log_csv)] == [0, 1, 2]
    assert float(rows(run.log_csv)[2][model.step_figures[0]]) == figures[2, 0]
    assert checkpoint_steps(run.checkpoints) == [3] and checkpoint.saved_at == 3
    written = (run.checkpoints / "ckpt-3.index").stat().st_mtime_ns
    checkpoint.finish(3, interrupted=False)  # training ends where it just saved: no second save
    assert (run.checkpoints / "ckpt-3.index").stat().st_mtime_ns == written
    checkpoint.finish(4, interrupted=True)
    assert sorted(checkpoint_steps(run.checkpoints)) == [3, 4]
    log.close()


def test_snapshot_draws_the_validation_images_their_reconstructions_and_samples(parts):
    params, model, state, run, split, writer, background = parts
    snapshot = jobs.Snapshot(dataclasses.replace(params, plot_step=4, log_step=[]), model, split, run, writer, background, True)
    snapshot.start(4)  # a run resumed at step 4, where a snapshot is due, lacks its image: drawn now
    background.finish()
    assert run.snapshot(4).exists()
    drawn = run.snapshot(4).stat().st_mtime_ns
    snapshot.start(4)  # already there: not drawn again
    snapshot.finish(4, interrupted=False)  # the last image is the one just drawn
    background.finish()
    assert run.snapshot(4).stat().st_mtime_ns == drawn
    pixels = iio.imread(run.snapshot(4))
    assert pixels.ndim == 3 and pixels.shape[0] > 3 * 16 and pixels.std() > 0
    worker = jobs.Snapshot(dataclasses.replace(params, plot_step=4, log_step=[]), model, split, run, writer, background, False)
    worker.run(8)  # a worker other than the chief ends its calls at step 8 too, and draws nothing
    background.finish()
    assert not run.snapshot(8).exists()
