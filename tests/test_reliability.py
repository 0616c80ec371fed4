"""Crash safety, determinism, nan_policy and bad input that must leave every file as it was."""

import csv
import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf.checkpoints import train_seconds
from vae_tf.cli import train_main
from vae_tf.runs import RunDir

from conftest import ROOT, snapshot_of, tiny_args, train_cli


def rows(path, drop=("wall_time",)):
    with open(path, newline="") as file:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(file)]


def test_a_resumed_run_is_identical_to_an_uninterrupted_one_and_another_seed_is_not(tiny):
    """Same params and seed, one run stopped on a validation step and resumed: log and validations equal the
    uninterrupted run's to the bit, the KL weight's ramp continues across the stop, and another seed differs."""
    annealed = dict(kl_schedule="linear", kl_start_step=2, kl_end_step=12, kl_start_value=0.0, kl_end_value=1.0)
    vae_tf.train(tiny(run_name="split", num_steps=3, **annealed), progress=False)
    resumed = vae_tf.train(tiny(run_name="split", num_steps=10, **annealed), progress=False)
    straight = vae_tf.train(tiny(run_name="straight", num_steps=10, **annealed), progress=False)
    log = rows(resumed / "log.csv")
    assert [int(r["step"]) for r in log] == list(range(10))
    assert [float(r["kl_weight"]) for r in log] == pytest.approx([min(max(s - 2, 0) / 10, 1.0) for s in range(10)],
                                                                 abs=1e-6)
    assert log == rows(straight / "log.csv")
    for name in ("validation.csv", "latents.csv"):  # latents.csv: what the collapse warning reads back on a resume
        assert rows(resumed / name) == rows(straight / name)
    other_seed = vae_tf.train(tiny(run_name="seed1", num_steps=10, seed=1, **annealed), progress=False)
    assert rows(other_seed / "log.csv") != log


def logged_steps(path):
    return path.read_text().count("\n") - 1 if path.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize("model, kills", [
    ({}, (3, 12, 22)),  # the VAE, killed three times: kills land inside saves and between them
    # Every other model, flow and prior, killed once (the moments of a kill are the same code for every model): batch
    # norm's moving statistics, the upper layers, the flows' and the priors' weights, the VampPrior's pseudo-inputs.
    (dict(model="ladder", upper_latent_sizes=[3], upper_layer_units=16, prior="vamp", prior_components=4, beta=1.0),
     (20,)),
    (dict(model="hierarchical", upper_latent_sizes=[3], upper_layer_units=16, prior="mog", prior_components=4,
          beta=1.0), (20,)),
    (dict(flow="iaf", flow_length=2, prior="mog", prior_components=4, beta=1.0), (20,)),
    (dict(flow="planar", flow_length=3, beta=1.0), (20,)),
], ids=["vae", "ladder_and_vampprior", "hierarchical_and_mixture_prior", "iaf_and_mixture_prior", "planar"])
def test_sigkill_at_any_moment_then_rerun_gives_the_uninterrupted_log(tmp_path, monkeypatch, model, kills):
    """Kill -9 a real train.py at several points of a run that checkpoints every step (so kills land inside
    saves too); each rerun resumes from the last good checkpoint, and the finished log, snapshots and
    validations equal an uninterrupted run's. The rerun and the uninterrupted run train in this process (a fresh
    process is what the kills need, not what they check)."""
    args = [f"--output_dir={tmp_path}", *tiny_args(num_steps=40, checkpoint_step=1, plot_step=10, log_step=[],
                                                   validation_step=10, **model)]
    log = tmp_path / "killed" / "log.csv"
    for threshold in kills:
        process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--run_name=killed", *args], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None and logged_steps(log) < threshold:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL  # it was still running: training, not refused or crashed
        assert logged_steps(log) < 40  # killed before the end
    monkeypatch.chdir(ROOT)
    assert train_main(["--run_name=killed", *args]) == 0
    assert train_main(["--run_name=straight", *args, "--checkpoint_step=40"]) == 0  # and saving changes no figure
    killed_log = rows(log)
    assert [int(r["step"]) for r in killed_log] == list(range(40))
    assert killed_log == rows(tmp_path / "straight" / "log.csv")
    for name in ("validation.csv", "latents.csv"):
        assert rows(tmp_path / "killed" / name) == rows(tmp_path / "straight" / name)
    assert sorted(p.name for p in (tmp_path / "killed" / "images").glob("*.png")) == \
        sorted(p.name for p in (tmp_path / "straight" / "images").glob("*.png"))


@pytest.mark.slow
def test_a_kill_while_tensorflow_writes_the_index_resumes_from_the_checkpoint_before(tmp_path):
    """TensorFlow writes a checkpoint's index in place. A real SIGKILL lands just after the save of step 5 wrote half
    its index (the state a kill inside the write leaves): the rerun resumes from step 4's checkpoint."""
    script = tmp_path / "killed_in_save.py"
    script.write_text(textwrap.dedent(f"""
        import os, runpy, signal, sys
        from pathlib import Path
        from vae_tf import checkpoints
        build = checkpoints.Checkpointer.__init__
        def killed_in_save(self, *args, **kwargs):
            build(self, *args, **kwargs)
            write = self.write
            def write_half_an_index(prefix):
                write(prefix)
                if prefix.numpy().decode().endswith("ckpt-5"):
                    index = Path(prefix.numpy().decode() + ".index")
                    index.write_bytes(index.read_bytes()[:index.stat().st_size // 2])
                    os.kill(os.getpid(), signal.SIGKILL)
            write_half_an_index.get_concrete_function = write.get_concrete_function  # the trainer traces it early
            self.write = write_half_an_index
        checkpoints.Checkpointer.__init__ = killed_in_save
        sys.argv = [{str(ROOT / "train.py")!r}, *sys.argv[1:]]
        runpy.run_path(sys.argv[0], run_name="__main__")
    """))
    args = [f"--output_dir={tmp_path}", "--run_name=killed",
            *tiny_args(num_steps=8, checkpoint_step=1, plot_step=0, log_step=[], validation_step=0)]
    killed = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert logged_steps(tmp_path / "killed" / "log.csv") == 5
    rerun = train_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert "resum" in rerun.stdout + rerun.stderr and "step 4" in rerun.stdout + rerun.stderr
    assert [int(r["step"]) for r in rows(tmp_path / "killed" / "log.csv")] == list(range(8))
    assert not list((tmp_path / "killed" / "checkpoints").glob("partial-*"))  # the half-written files are gone


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly(tmp_path):
    args = [f"--output_dir={tmp_path}", "--run_name=term",
            *tiny_args(num_steps=100000, checkpoint_step=100000, plot_step=0, log_step=[], validation_step=0)]
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "term" / "params.json").exists():
        time.sleep(0.2)
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "SIGTERM received" in stderr and "rerun the same command" in stderr
    saved = int(stderr.split("checkpoint at step ")[1].split()[0])
    assert saved > 0 and [int(r["step"]) for r in rows(tmp_path / "term" / "log.csv")] == list(range(saved))


@pytest.mark.slow
@pytest.mark.parametrize("signals", [1, 2])
def test_a_signal_while_the_trainer_compiles_is_honoured_and_a_second_one_stops_at_once(tmp_path, signals):
    """The trainer compiles its functions for seconds after the run folder exists: one SIGTERM then saves at the end
    of the first call; a second one ends the process as SIGTERM does (the run resumes from its last checkpoint)."""
    script = tmp_path / "signalled_train.py"
    script.write_text(textwrap.dedent(f"""
        import os, runpy, signal, sys, time
        from vae_tf import training
        build = training.TrainingLoop.__init__
        def signalled(self, *args, **kwargs):
            for _ in range({signals}):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.1)  # Python runs the handler of each signal before the next is sent
            build(self, *args, **kwargs)
        training.TrainingLoop.__init__ = signalled
        sys.argv = [{str(ROOT / "train.py")!r}, *sys.argv[1:]]
        runpy.run_path(sys.argv[0], run_name="__main__")
    """))
    result = subprocess.run([sys.executable, str(script), f"--output_dir={tmp_path}", "--run_name=term",
                             *tiny_args(num_steps=1000, checkpoint_step=1000, plot_step=0, log_step=[],
                                        validation_step=0)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # this tree's vae_tf, wherever pip put one
    if signals == 1:
        assert result.returncode == 130 and "SIGTERM received" in result.stderr, result.stderr
        saved = int(result.stderr.split("checkpoint at step ")[1].split()[0])
        assert 0 < saved < 1000 and [int(r["step"]) for r in rows(tmp_path / "term" / "log.csv")] == list(range(saved))
    else:
        assert result.returncode == -signal.SIGTERM, result.stderr
        assert not list((tmp_path / "term").glob("checkpoints/ckpt-*"))


def test_skip_batch_leaves_weights_and_optimizer_untouched(tiny):
    model = vae_tf.build_model(tiny(nan_policy="skip_batch"))
    good = tf.cast(tf.random.uniform((8, 16, 16, 1)) > 0.5, tf.float32)
    bad = tf.tensor_scatter_nd_update(good, [[0, 0, 0, 0]], [np.nan])
    model.train_step(good)
    state = lambda: [v.numpy().copy() for v in model.trainable_variables + model.optimizer.variables  # noqa: E731
                     if v.name != "iteration"]
    before = state()
    figures = model.train_step(bad)
    assert float(figures["skipped"]) == 1.0 and not np.isfinite(float(figures["loss"]))
    assert all(np.array_equal(a, b) for a, b in zip(before, state()))
    assert int(model.optimizer.iterations.numpy()) == 2
    assert float(model.train_step(good)["skipped"]) == 0.0
    # The Keras trackers (what fit / evaluate report) averaged the two good batches only.
    assert all(np.isfinite(float(tracker.result())) for tracker in model.trackers.values())
    assert int(model.trackers["loss"].count.numpy()) == 2


def test_skip_batch_gives_up_after_a_hundred_bad_batches_in_a_row(tmp_path):
    result = train_cli(f"--output_dir={tmp_path}", "--run_name=skip",
                       *tiny_args(learning_rate=1e30, nan_policy="skip_batch", num_steps=300, plot_step=0,
                                  log_step=[], validation_step=0, checkpoint_step=1000))
    assert result.returncode == 1
    assert "100 batches in a row had a non-finite loss" in result.stderr
    assert "update skipped (nan_policy=skip_batch)" in result.stdout


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """TINY trained to its end (checkpoints at steps 3 and 6): tests that damage a run damage a copy of it."""
    folder = tmp_path_factory.mktemp("finished")
    assert train_cli(f"--output_dir={folder}", "--run_name=tiny", *tiny_args()).returncode == 0
    return folder / "tiny"


def test_a_corrupt_checkpoint_is_one_line_and_changes_nothing(finished, tmp_path):
    shutil.copytree(finished, tmp_path / "c")
    index = tmp_path / "c" / "checkpoints" / "ckpt-6.index"
    index.write_bytes(b"\x00garbage" * 10)
    before = snapshot_of(tmp_path / "c")
    result = train_cli(f"--output_dir={tmp_path}", "--run_name=c", *tiny_args(num_steps=9))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "ckpt-6" in result.stderr and "cannot be read" in result.stderr and "move its files" in result.stderr
    assert snapshot_of(tmp_path / "c") == before
    with pytest.raises(vae_tf.UserError, match="cannot be read"):
        vae_tf.load_run(tmp_path / "c")
    # The training time an analysis reports comes from the newest checkpoint that can be read: step 3's.
    step_3 = tf.train.load_checkpoint(str(tmp_path / "c" / "checkpoints" / "ckpt-3"))
    assert train_seconds(RunDir(tmp_path / "c")) == step_3.get_tensor("train_seconds/.ATTRIBUTES/VARIABLE_VALUE") > 0
    # Following the advice resumes from the checkpoint before it, and the log stays whole.
    for path in (tmp_path / "c" / "checkpoints").glob("ckpt-6.*"):
        path.rename(tmp_path / path.name)
    resumed = train_cli(f"--output_dir={tmp_path}", "--run_name=c", *tiny_args(num_steps=9))
    assert resumed.returncode == 0, resumed.stderr
    assert [int(r["step"]) for r in rows(tmp_path / "c" / "log.csv")] == list(range(9))


def test_a_run_whose_checkpoints_are_gone_is_not_restarted_over_its_log(finished, tmp_path):
    shutil.copytree(finished, tmp_path / "g")
    for path in (tmp_path / "g" / "checkpoints").rglob("*"):
        if path.is_file():
            path.unlink()
    before = snapshot_of(tmp_path / "g")
    result = train_cli(f"--output_dir={tmp_path}", "--run_name=g", *tiny_args(num_steps=9))
    assert result.returncode == 2 and "6 logged steps but no checkpoint" in result.stderr
    assert snapshot_of(tmp_path / "g") == before
    # A checkpoint_step above the logged steps does not make the lost checkpoints look never written.
    assert train_main([f"--output_dir={tmp_path}", "--run_name=g", *tiny_args(num_steps=9, checkpoint_step=50)]) == 2
    assert snapshot_of(tmp_path / "g") == before


def test_a_finished_run_without_its_model_keras_writes_it_on_rerun(finished, tmp_path):
    """Killed after its last checkpoint but before the export (or stopped early): the rerun exports, trains nothing."""
    run = shutil.copytree(finished, tmp_path / "export")
    expected = vae_tf.load_run(run, "final").reconstruct(tf.zeros((2, 16, 16, 1))).numpy()
    (run / "model.keras").unlink()
    log = (run / "log.csv").read_text()
    assert train_cli(f"--output_dir={tmp_path}", "--run_name=export", *tiny_args()).returncode == 0
    np.testing.assert_array_equal(vae_tf.load_run(run, "final").reconstruct(tf.zeros((2, 16, 16, 1))).numpy(), expected)
    assert (run / "log.csv").read_text() == log


def test_a_full_disk_while_the_log_is_written_stops_training_at_once(tiny, monkeypatch):
    """log.csv's rows are written on the writer thread: a failure there ends the run within a call or two, not at the
    next checkpoint (here the last step)."""
    from vae_tf.runs import CsvLog
    attempts = []

    def no_space(self, rows):
        attempts.append(len(rows))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(CsvLog, "append_rows", no_space)
    with pytest.raises(vae_tf.UserError) as error:
        vae_tf.train(tiny(run_name="full_log", num_steps=10000, steps_per_call=10, checkpoint_step=10000, plot_step=0,
                          validation_step=0, log_step=[]), progress=False)
    assert "full_log (No space left on device)" in str(error.value)  # the run folder: the write named no file
    assert 1 <= len(attempts) < 100  # of the run's 1,000 calls of 10 steps, all of which would run to the checkpoint


def test_bad_strategy_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = train_cli(f"--output_dir={tmp_path}", "--strategy=multi_worker", *tiny_args())
    assert result.returncode == 2 and "needs the TF_CONFIG environment variable" in result.stderr
    result = train_cli(f"--output_dir={tmp_path}", "--strategy=mirored", *tiny_args())
    assert result.returncode == 2 and "did you mean 'mirrored'" in result.stderr
    assert snapshot_of(tmp_path) == {}
    # A TF_CONFIG TensorFlow rejects: in a process of its own, as the strategy it fails to build is the process's.
    env_config = {"TF_CONFIG": '{"cluster": {"worker": 5}, "task": {"type": "worker", "index": 0}}'}
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), f"--output_dir={tmp_path}",
                             "--strategy=multi_worker", *tiny_args()], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **env_config}, timeout=300)
    assert result.returncode == 2 and "TF_CONFIG cannot be used" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_two_processes_cannot_train_one_run_nor_load_run_a_params_json_of_another_version(tiny):
    import fcntl
    run = vae_tf.train(tiny(run_name="busy", num_steps=1), progress=False)
    with open(run / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a second process training this run would
        with pytest.raises(vae_tf.UserError, match="being trained by another process"):
            vae_tf.train(tiny(run_name="busy", num_steps=2), progress=False)
    assert len(rows(run / "log.csv")) == 1
    (run / "params.json").write_text('{"latent_size": 4, "warp_drive": true}')  # a params.json of another version
    with pytest.raises(vae_tf.UserError, match="warp_drive"):
        vae_tf.load_run(run)


def test_a_mistyped_run_folder_gets_a_suggestion(tmp_path):
    (tmp_path / "shapes2d_small").mkdir()
    with pytest.raises(vae_tf.UserError, match=r"not found \(did you mean '.*shapes2d_small'\?\)"):
        vae_tf.load_run(tmp_path / "shapes2d_smal")
