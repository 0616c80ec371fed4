import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import vae_tf
from vae_tf import jobs
from vae_tf.checkpoints import start_from
from vae_tf.models import build_model
from vae_tf.models.vae import step_figures
from vae_tf.runs import CsvLog, RunDir, log_columns, params_history, read_log

from conftest import ROOT, assert_train_refuses, run_script, snapshot_of, tiny_args, train_cli


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """TINY trained by train.py in a fresh process, as a user runs it: the run folder and the process's result.
    The tests that share it only read it."""
    folder = tmp_path_factory.mktemp("trained")
    result = run_script("train.py", f"--output_dir={folder}", "--run_name=tiny", *tiny_args())
    assert result.returncode == 0, result.stderr
    return folder / "tiny", result


def test_train_py_writes_every_file_of_the_run_folder(trained):
    run, result = trained
    params = json.loads((run / "params.json").read_text())
    assert params["num_steps"] == 6 and params["image_size"] == 16 and params["dataset"] == "shapes2d"
    rows = read_rows(run / "log.csv")
    assert list(rows[0]) == list(log_columns(step_figures("beta_vae")))
    assert [int(r["step"]) for r in rows] == list(range(6))
    assert all(float(r["std_min"]) <= float(r["std_avg"]) <= float(r["std_max"]) for r in rows)
    assert [int(r["step"]) for r in read_rows(run / "validation.csv")] == [3, 6]
    assert sorted(p.name for p in (run / "images").iterdir()) == [f"image_{s}.png" for s in (0, 1, 3, 6)]
    assert (run / "model.keras").stat().st_size > 0
    assert {p.name for p in (run / "checkpoints").glob("ckpt-*.index")} == {"ckpt-3.index", "ckpt-6.index"}
    assert list((run / "checkpoints" / "best").glob("ckpt-*.index"))
    # TensorBoard holds every step's figures, as log.csv does, and every snapshot.
    events = EventAccumulator(str(run / "logs"), size_guidance={"tensors": 0, "images": 0})
    events.Reload()
    for name in ("loss", "kl_loss", "grad_norm"):
        scalars = [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(f"train/{name}")]
        assert scalars == [(int(r["step"]), pytest.approx(float(r[name]), rel=1e-6)) for r in rows], name
    assert [e.step for e in events.Tensors("snapshot")] == [0, 1, 3, 6]
    assert events.SummaryMetadata("snapshot").plugin_data.plugin_name == "images"
    width, height, png = events.Tensors("snapshot")[-1].tensor_proto.string_val
    snapshot = iio.imread(run / "images" / "image_6.png")
    assert (int(height), int(width)) == snapshot.shape[:2]
    assert np.array_equal(tf.io.decode_png(png).numpy(), snapshot)  # TensorBoard shows the image the folder holds
    assert "run saved in" in result.stdout
    umask = os.umask(0)
    os.umask(umask)
    for written in (run / "params.json", run / "model.keras", run / "images" / "image_3.png"):
        assert written.stat().st_mode & 0o777 == 0o666 & ~umask, written  # the mode open() would give, not 0600


def test_tensorboard_step_thins_tensorboards_scalars_not_log_csv_across_a_resume(tiny):
    """tensorboard_step 3: TensorBoard holds the rows of steps 0, 3, 6 (each log.csv's row), and log.csv every step,
    through a resume at step 4 (between two of them) and training calls that hold steps it drops (0-2, 4-5, 6-7)."""
    quiet = dict(run_name="thinned", tensorboard_step=3, plot_step=0, log_step=[], validation_step=0)
    vae_tf.train(tiny(num_steps=4, **quiet), progress=False)
    run = vae_tf.train(tiny(num_steps=8, **quiet), progress=False)
    rows = read_rows(run / "log.csv")
    assert [int(r["step"]) for r in rows] == list(range(8))
    events = EventAccumulator(str(run / "logs"), size_guidance={"tensors": 0})
    events.Reload()
    for name in ("loss", "grad_norm"):
        scalars = [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(f"train/{name}")]
        assert scalars == [(step, pytest.approx(float(rows[step][name]), rel=1e-6)) for step in (0, 3, 6)], name


@pytest.mark.slow
def test_mig_csv_scores_the_model_every_mig_step_and_at_the_end_and_changes_no_training_figure(tiny):
    from vae_tf import metrics
    from vae_tf.baselines import model_representation
    from vae_tf.datasets import load_ground_truth
    from vae_tf.shapes2d import FACTOR_NAMES

    quiet = dict(plot_step=0, log_step=[], validation_step=0)
    run = vae_tf.train(tiny(run_name="mig", num_steps=7, mig_step=3, **quiet), progress=False)
    rows = read_rows(run / "mig.csv")
    assert [int(r["step"]) for r in rows] == [3, 6, 7]
    seconds = [float(r["train_seconds"]) for r in rows]
    assert 0 < seconds[0] < seconds[1] < seconds[2]
    # The last row is the saved model's MIG at the published protocol, recomputed here.
    expected = metrics.mig(load_ground_truth("shapes2d", 16), model_representation(vae_tf.load_run(run)),
                           metrics.METRICS_SEED, num_train=10000, num_bins=20)
    last = rows[-1]
    assert float(last["mig"]) == expected["score"]
    assert [float(last[f"mig_{name}"]) for name in FACTOR_NAMES] == expected["per_factor"]
    assert [int(last[f"latent_{name}"]) for name in FACTOR_NAMES] == expected["top_dims"]
    # Scoring between calls leaves training as it was: the same log as a run that never scores.
    plain = vae_tf.train(tiny(run_name="plain", num_steps=7, mig_step=0, **quiet), progress=False)
    assert not (plain / "mig.csv").exists()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]
    assert strip(read_rows(run / "log.csv")) == strip(read_rows(plain / "log.csv"))
    # Extending the run keeps the scores and the training time counts on from the checkpoint.
    run = vae_tf.train(tiny(run_name="mig", num_steps=9, mig_step=3, **quiet), progress=False)
    rows = read_rows(run / "mig.csv")
    assert [int(r["step"]) for r in rows] == [3, 6, 7, 9]
    assert float(rows[-1]["train_seconds"]) > seconds[-1]


def test_a_validation_is_the_image_weighted_mean_of_its_batches(tiny):
    """validation.csv's figures: the first validation_size images in batches of batch_size (the last one smaller),
    each batch's mean weighted by its images, the model at that step, the validation noise stream."""
    run = vae_tf.train(tiny(num_steps=3, validation_size=20, plot_step=0, log_step=[]), progress=False)
    model = vae_tf.load_run(run)  # the checkpoint at step 3, where the validation ran
    images = vae_tf.load_dataset("shapes2d", split="validation", image_size=16, shuffle=False).take(20).batch(8)
    terms = [(len(x), model.loss_terms(x, tf.constant(3, tf.int64), stream=1)) for x in images]
    assert [n for n, _ in terms] == [8, 8, 4]
    row = read_log(run / "validation.csv")
    for name in ("loss", "reconstruction_loss", "kl_loss"):
        expected = sum(n * float(t[name]) for n, t in terms) / 20
        assert row[name][-1] == pytest.approx(expected, rel=1e-5)


def test_snapshot_image_has_three_labelled_panels(trained):
    run, _ = trained
    image = iio.imread(run / "images" / "image_0.png")
    assert image.ndim == 3 and image.shape[1] > 2 * image.shape[0]  # three panels side by side
    assert image.std() > 10  # not blank


@pytest.mark.slow
def test_load_run_in_a_fresh_process_gives_identical_outputs(trained, tmp_path):
    run, _ = trained
    x = vae_tf.load_dataset("shapes2d", split="test", image_size=16, shuffle=False).batch(4).take(1).get_single_element()
    np.save(tmp_path / "x.npy", x.numpy())
    expected = {which: vae_tf.load_run(run, which).reconstruct(x).numpy() for which in ("latest", "best", "final")}
    script = (f"import numpy as np, vae_tf\n"
              f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
              f"for which in ('latest', 'best', 'final'):\n"
              f"    model = vae_tf.load_run({str(run)!r}, which)\n"
              f"    assert model.params.latent_size == 4\n"
              f"    np.save({str(tmp_path)!r} + f'/{{which}}.npy', model.reconstruct(x).numpy())\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for which, images in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{which}.npy"), images)
    latest = vae_tf.load_run(run).reconstruct(x).numpy()
    untrained = vae_tf.build_model(vae_tf.load_run(run).params).reconstruct(x).numpy()
    assert not np.array_equal(latest, untrained)


def test_load_run_errors(tmp_path):
    with pytest.raises(vae_tf.UserError, match="not found"):
        vae_tf.load_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(vae_tf.UserError, match="not a run folder"):
        vae_tf.load_run(tmp_path / "empty")


def test_a_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    result = train_cli(f"--output_dir={tmp_path}", "--run_name=nan",
                       *tiny_args(learning_rate=1e30, num_steps=20, checkpoint_step=1, plot_step=0, log_step=[]))
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "at step" in message and "keeping the checkpoint saved at step" in message and "learning_rate" in message
    step = int(message.split("at step ")[1].split()[0])
    kept = sorted(int(p.stem.split("-")[1]) for p in (tmp_path / "nan" / "checkpoints").glob("ckpt-*.index"))
    assert kept and kept[-1] == step  # the checkpoint after the last finite step
    assert not (tmp_path / "nan" / "model.keras").exists()


def test_early_stopping_after_validations_without_improvement(tiny, capsys, monkeypatch):
    real, penalties = jobs.Validate.figures, iter(range(0, 10 ** 12, 10 ** 9))

    def worse(self):  # each validation's loss 10^9 worse than the one before, on top of the model's own
        figures = real(self)
        return {**figures, "loss": figures["loss"] + next(penalties)}

    monkeypatch.setattr(jobs.Validate, "figures", worse)
    params = tiny(run_name="early", num_steps=50, validation_step=1, validation_tolerance=2, plot_step=0, log_step=[])
    run = vae_tf.train(params, progress=False)
    assert len(read_rows(run / "log.csv")) == 3  # best at step 1, then two worse validations
    assert sorted(p.name for p in (run / "checkpoints" / "best").glob("*.index")) == ["ckpt-1.index"]
    vae_tf.train(params, progress=False)
    assert "stopped early at step 3" in capsys.readouterr().out
    # Resumed under a KL ramp that ends at step 20, its best and count judged losses weighed otherwise: it trains on.
    ramped = dataclasses.replace(params, kl_schedule="linear", kl_start_step=0, kl_end_step=20, num_steps=6)
    assert len(read_rows(vae_tf.train(ramped, progress=False) / "log.csv")) == 6


def test_validations_while_the_kl_weight_ramps_are_neither_best_nor_counted(tiny):
    """A KL weight growing by 10^5 per step to step 10 makes each validation's loss worse than the one before; they
    are logged, but the best checkpoint and the count towards validation_tolerance start at step 10, when the weight
    stops changing (a warm-up's first, lightly weighted losses would otherwise win and stop the run)."""
    params = tiny(run_name="ramp", num_steps=12, validation_step=1, validation_tolerance=2, learning_rate=1e-9,
                  kl_schedule="linear", kl_start_step=0, kl_end_step=10, kl_end_value=1e6, plot_step=0, log_step=[])
    run = vae_tf.train(params, progress=False)
    validations = read_rows(run / "validation.csv")
    assert [int(r["step"]) for r in validations] == list(range(1, 13))  # not stopped at step 3
    assert all(float(a["loss"]) < float(b["loss"]) for a, b in zip(validations[:10], validations[1:10]))
    best = [int(p.name.split("-")[1].split(".")[0]) for p in (run / "checkpoints" / "best").glob("*.index")]
    assert best and min(best) >= 10
    with pytest.raises(vae_tf.UserError, match=r"compared from step 10 on, .* stopped at step 5; use the latest "
                                               r"checkpoint or the final one \(model.keras\)$"):
        vae_tf.load_run(vae_tf.train(tiny(run_name="short", num_steps=5, validation_step=1, kl_schedule="linear",
                                          kl_start_step=0, kl_end_step=10, plot_step=0, log_step=[]), progress=False),
                        checkpoint="best")


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_the_rerun_completes(tmp_path):
    args = [f"--output_dir={tmp_path}", "--run_name=int",
            *tiny_args(num_steps=100000, checkpoint_step=100000, plot_step=0, log_step=[], validation_step=0)]
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "int" / "log.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.stat().st_size > 2000):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "rerun the same command to resume" in stderr
    saved = int(stderr.split("checkpoint at step ")[1].split()[0])
    assert (tmp_path / "int" / "checkpoints" / f"ckpt-{saved}.index").exists()
    assert [int(r["step"]) for r in read_rows(log)] == list(range(saved))
    # plot_step=0 and no log_step: the only snapshot is the one of the model the interruption saved.
    assert [p.name for p in (tmp_path / "int" / "images").iterdir()] == [f"image_{saved}.png"]
    result = train_cli(*args[:2], *tiny_args(num_steps=saved + 5, checkpoint_step=100000,
                                                        plot_step=0, log_step=[], validation_step=0))
    assert result.returncode == 0, result.stderr
    assert [int(r["step"]) for r in read_rows(log)] == list(range(saved + 5))


def test_a_rerun_leaves_a_finished_run_refuses_another_model_and_resumes_with_new_values_and_their_history(
        tiny, capsys):
    run = vae_tf.train(tiny(run_name="history", num_steps=3, beta=4.0), progress=False)

    def mtimes():
        return {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}

    before, files = mtimes(), snapshot_of(run)
    capsys.readouterr()
    vae_tf.train(tiny(run_name="history", num_steps=3, beta=4.0), progress=False)
    out = capsys.readouterr().out
    assert "already trained for 3 steps" in out and "run saved" not in out and "resuming" not in out
    assert mtimes() == before
    result = train_cli(f"--output_dir={run.parent}", "--run_name=history", *tiny_args(beta=4.0, latent_size=6))
    assert result.returncode == 2
    assert "latent_size (4 -> 6)" in result.stderr and "new --run_name" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert mtimes() == before and snapshot_of(run) == files
    run = vae_tf.train(tiny(run_name="history", num_steps=5, beta=1.0), progress=False)
    out = capsys.readouterr().out
    assert f"resuming {run} from step 3; changed: beta 4.0 -> 1.0, num_steps 3 -> 5" in out
    assert "run saved in" in out
    history = params_history(run)
    assert [(step, p.beta, p.num_steps) for step, p in history] == [(0, 4.0, 3), (3, 1.0, 5)]
    assert vae_tf.load_run(run).params.beta == 1.0  # the values the run goes on with
    assert [float(r["kl_weight"]) for r in read_rows(run / "log.csv")] == [4.0] * 3 + [1.0] * 2


def test_a_log_begun_without_a_figure_keeps_its_columns_and_one_with_a_dropped_one_is_refused(tiny, capsys):
    """categorical_independence > 0 adds log.csv's column categorical_hsic (only then, so that older categorical runs
    resume with their columns). Turned on for a resume, rows one field longer than the header were appended (readers
    dropped them as malformed): the log keeps its own columns now, and TensorBoard alone gets the new figure. Turned
    off, the log would be rewritten without the column: one line, exit 2, nothing changed."""
    from vae_tf.cli import train_main

    def resume(name, independence):
        return train_main([f"--params={ROOT / 'params.py'}", f"--output_dir={tiny().output_dir}", f"--run_name={name}",
                           *tiny_args(categorical_sizes=[3], categorical_independence=independence, num_steps=9)])

    run = vae_tf.train(tiny(run_name="turned_on", categorical_sizes=[3]), progress=False)
    header = (run / "log.csv").read_text().splitlines()[0]
    capsys.readouterr()
    assert resume("turned_on", 1.0) == 0
    note = f"note: {run / 'log.csv'} was begun without categorical_hsic: it keeps its columns"
    assert note in capsys.readouterr().out
    lines = (run / "log.csv").read_text().splitlines()
    assert lines[0] == header and {len(line.split(",")) for line in lines} == {len(header.split(","))}
    assert read_log(run / "log.csv")["step"] == list(range(9))
    events = EventAccumulator(str(run / "logs"), size_guidance={"tensors": 0})
    events.Reload()
    assert [e.step for e in events.Tensors("train/categorical_hsic")] == list(range(6, 9))

    run = vae_tf.train(tiny(run_name="turned_off", categorical_sizes=[3], categorical_independence=1.0),
                       progress=False)
    before = snapshot_of(run)
    capsys.readouterr()
    assert resume("turned_off", 0.0) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has the columns categorical_hsic, which this run does not write" in err[0], err
    assert snapshot_of(run) == before


def test_a_log_the_old_csvlog_damaged_is_read_back_as_its_header_names_it(tmp_path):
    """Before 8b52e19 a resumed log lacking a column got rows of every column under its header: a resume reads those
    rows as the columns they were written in, keeps the header's, and drops the rows of steps it redoes."""
    columns = ("step", "loss", "new", "wall_time")
    path = tmp_path / "log.csv"
    path.write_text("step,loss,wall_time\n0,1.5,100.0\n1,2.5,7.0,101.0\n2,3.5,8.0,102.0\n")
    log = CsvLog(path, columns, resume_step=2)
    log.append_rows([[2, 4.5, 9.0, 103.0]])
    log.close()
    assert path.read_text().splitlines() == ["step,loss,wall_time", "0,1.5,100.0", "1,2.5,101.0", "2,4.5,103.0"]


def test_init_from_starts_a_new_run_at_another_runs_weights_leaves_that_run_as_it_was_and_is_read_once(
        trained, tiny, tmp_path, capsys):
    source = shutil.copytree(trained[0], tmp_path / "source")
    before = snapshot_of(source)
    fine_tune = tiny(run_name="fine_tuned", objective="iwae", kl_schedule="constant", beta=1.0,
                     init_from=str(source), num_steps=1, checkpoint_step=100, plot_step=0, log_step=[],
                     validation_step=0)
    # Killed before its first checkpoint (a diverging step), the run starts from the source's weights again.
    with pytest.raises(vae_tf.TrainingDiverged):
        vae_tf.train(dataclasses.replace(fine_tune, learning_rate=1e30, num_steps=20), progress=False)
    capsys.readouterr()
    run = vae_tf.train(dataclasses.replace(fine_tune, learning_rate=1e-9), progress=False)
    out = capsys.readouterr().out
    assert f"restarting {run} from step 0" in out
    assert f"starting from the weights of {source} (best checkpoint, step 6)" in out
    tuned, original = vae_tf.load_run(run), vae_tf.load_run(source, "best")
    assert int(tuned.optimizer.iterations.numpy()) == 1 and [r["step"] for r in read_rows(run / "log.csv")] == ["0"]
    # One Adam step of 1e-9 moves a weight by about 1e-9: the run began at the source's weights, which lie far from
    # the ones its seed draws.
    for ours, theirs in zip(tuned.get_weights(), original.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    seeded = build_model(fine_tune).get_weights()
    assert max(np.abs(a - b).max() for a, b in zip(seeded, original.get_weights())) > 1e-3
    assert snapshot_of(source) == before
    shutil.rmtree(source)  # a rerun resumes from the run's own checkpoint, without reading init_from
    vae_tf.train(dataclasses.replace(fine_tune, learning_rate=1e-9, num_steps=2), progress=False)
    out = capsys.readouterr().out
    assert f"resuming {run} from step 1" in out and "starting from" not in out
    # Where its weights came from is fixed for the run: params.json keeps it.
    with pytest.raises(vae_tf.UserError, match=r"different init_from \('.*source' -> None\)"):
        vae_tf.train(dataclasses.replace(fine_tune, init_from=None, num_steps=3), progress=False)


def test_init_from_copies_every_weight_batch_normalisations_statistics_included(tiny):
    source = tiny(run_name="ladder", model="ladder", upper_latent_sizes=[2], num_steps=3, plot_step=0, log_step=[],
                  validation_step=0)
    run = vae_tf.train(source, progress=False)
    fine_tune = dataclasses.replace(source, run_name="fine_tuned", init_from=str(run), init_checkpoint="latest",
                                    seed=1)
    model = build_model(fine_tune)
    statistics = [weight.numpy() for weight in model.non_trainable_weights]
    start_from(model, fine_tune, RunDir(Path(fine_tune.output_dir) / fine_tune.run_name))
    trained = vae_tf.load_run(run)
    assert statistics and len(model.weights) == len(trained.weights)
    for ours, theirs in zip(model.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(statistics, model.non_trainable_weights))


@pytest.mark.parametrize("overrides, message", [
    (dict(latent_size=5), "holds another model: its weight 6 is mean/kernel [32, 4], this run's mean/kernel [32, 5]; "
                          "start from a run of the same model"),
    (dict(prior="vamp"), "its weight 0 is conv0/kernel [4, 4, 1, 8], this run's prior/pseudo_inputs"),
    (dict(activation="elu"), "was trained with activation 'relu', this run has 'elu'"),
    (dict(init_from="nowhere"), "init_from nowhere (init_checkpoint best): run folder 'nowhere' not found"),
    (dict(init_from=None, init_checkpoint="latest"), "init_checkpoint picks a checkpoint of init_from's run: set "
                                                     "init_from too"),
    (dict(init_checkpoint="newest"), "init_checkpoint 'newest' is not one of latest, best, final"),
])
def test_init_from_refuses_another_model_or_a_missing_run_in_one_line_writing_nothing(trained, tmp_path, capsys,
                                                                                      overrides, message):
    assert_train_refuses(tmp_path / "out", capsys, {"init_from": trained[0], **overrides}, message)


def test_init_from_refuses_the_runs_own_folder(tmp_path, capsys):
    assert_train_refuses(tmp_path, capsys, {"init_from": tmp_path / "bad"}, "is this run's own folder")


def test_a_nan_before_the_first_checkpoint_says_nothing_was_saved(tiny):
    with pytest.raises(vae_tf.TrainingDiverged, match="before its first checkpoint, so nothing was saved"):
        vae_tf.train(tiny(run_name="early_nan", learning_rate=1e30, num_steps=20, checkpoint_step=100, plot_step=0,
                          log_step=[]), progress=False)


def test_the_last_snapshot_shows_the_saved_model(tiny):
    run = vae_tf.train(tiny(run_name="last", num_steps=5, plot_step=3, log_step=[]), progress=False)
    assert sorted(p.name for p in (run / "images").iterdir()) == ["image_0.png", "image_3.png", "image_5.png"]


def test_ctrl_c_while_tensorflow_loads_is_one_line(tmp_path):
    # A suite started in the background by a non-interactive shell inherits SIGINT ignored, and Python then never
    # raises KeyboardInterrupt: the child gets the default disposition a terminal's Ctrl-C meets.
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), f"--output_dir={tmp_path}"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Interrupted once TensorFlow's library is mapped into the process (it takes seconds more to import), not after
    # a fixed delay: on a loaded machine Python may not have reached the import by then.
    maps, deadline = Path(f"/proc/{process.pid}/maps"), time.monotonic() + 60
    while "tensorflow" not in maps.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip() == "interrupted while starting; nothing was written"
    assert not any(tmp_path.iterdir())


def test_falling_back_to_an_older_checkpoint_names_both_steps(trained, tiny, tmp_path, capsys):
    run = shutil.copytree(trained[0], tmp_path / "predictions" / "fallback")
    for path in (run / "checkpoints").glob("ckpt-6.*"):
        path.rename(tmp_path / path.name)  # the newest checkpoint's files moved away
    # Snapshots are written in the background: a crash can land between checkpoint 3 and its snapshot.
    (run / "images" / "image_3.png").unlink()
    capsys.readouterr()
    vae_tf.train(tiny(run_name="fallback", num_steps=6, checkpoint_step=3), progress=False)
    assert f"resuming {run} from step 3; log.csv went on to step 5, so steps 3 to 5 are redone" in capsys.readouterr().out
    assert [int(r["step"]) for r in read_rows(run / "log.csv")] == list(range(6))
    assert sorted(p.name for p in (run / "images").iterdir()) == ["image_0.png", "image_1.png", "image_3.png",
                                                                  "image_6.png"]


def test_checkpoints_keep_the_newest_of_each_kind_and_each_holds_its_own_step(tiny, tmp_path):
    from vae_tf.runs import RunDir, checkpoint_steps
    from vae_tf.checkpoints import Checkpointer
    run = RunDir(tmp_path / "ck")
    model = vae_tf.build_model(tiny())
    state = Checkpointer(model, run)
    run.checkpoints.mkdir(parents=True)
    (run.checkpoints / "checkpoint").write_text('model_checkpoint_path: "ckpt-0"\n')  # CheckpointManager's, stale
    weight = model.trainable_variables[0]
    for step in range(1, 7):
        weight.assign(tf.fill(weight.shape, float(step)))
        if step in (4, 5):
            state.save(step, best=True)  # as after a validation that improved: the best, then the latest
        state.save(step)
    assert sorted(checkpoint_steps(run.checkpoints)) == [4, 5, 6] and checkpoint_steps(run.best_checkpoints) == [5]
    assert not (run.checkpoints / "checkpoint").exists()
    for path in run.checkpoints.glob("ckpt-5.*"):  # the latest of step 5 is the best's files, not a second write
        assert os.path.samefile(path, run.best_checkpoints / path.name)
    for path in run.checkpoints.glob("ckpt-6.*"):
        path.unlink()
    # ckpt-4's best files were removed when ckpt-5 became the best: its latest links still hold it.
    for path in run.checkpoints.glob("ckpt-5.*"):
        path.unlink()
    for which, expected in (("latest", 4.0), ("best", 5.0)):
        fresh = vae_tf.build_model(tiny())
        assert Checkpointer(fresh, run).restore(which)
        np.testing.assert_array_equal(fresh.trainable_variables[0].numpy(), np.full(weight.shape, expected))
        assert int(fresh.optimizer.iterations.numpy()) == 0
