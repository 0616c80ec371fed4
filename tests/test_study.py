"""Studies: the grid, the runner on Ray (restarts, SIGKILL, failures, two Ray nodes), the results and bad input."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_script, snapshot_of
from vae_tf.cli import analyze_main, study_main
from vae_tf.errors import UserError
from vae_tf.study import Choice, LogUniform, Study, Uniform
from vae_tf.study.results import rank_correlation, summarise, variance_shares
from vae_tf.study.spec import load_study

# A tiny model on 16x16 shapes2d: a run is a second or two of training after its worker imports TensorFlow.
TINY_BASE = dict(dataset="shapes2d", image_size=16, encoder_layers=[[8, 4, 2], [8, 4, 2], [32]],
                 decoder_layers=[[8, 1, 1]], latent_size=4, batch_size=16, plot_step=0, log_step=[],
                 validation_step=0, mig_step=0)


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def study_cli(capsys, *args):
    """study.py's entry point in this process: (exit code, stdout, stderr)."""
    code = study_main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def write_run(folder, name, steps):
    """A finished run folder as a study leaves it (params.json, trial.json, log.csv) whose losses at step s are s,
    2s and s/2."""
    run = Path(folder) / name
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"objective": "beta_vae", "seed": 0}))
    (run / "trial.json").write_text(json.dumps({"status": "finished", "values": {"seed": 0}}))
    (run / "log.csv").write_text("step,loss,reconstruction_loss,kl_loss,kl_weight,wall_time\n"
                                 + "".join(f"{s},{s},{2 * s},{s / 2},1.0,0.0\n" for s in range(steps)))
    return run


PROGRESS = re.compile(r"(\S+): (\d+) done, (\d+) running, (\d+) failed, (\d+) left")


def study_file(folder, name, **fields):
    """A study file `name`.py in `folder` assigning Study(**fields)."""
    path = Path(folder) / f"{name}.py"
    path.write_text("from vae_tf.study import Study\n\nstudy = Study(**" + repr(fields) + ")\n")
    return path


# --- what a study is -----------------------------------------------------------------------------------------

def test_a_grid_is_the_union_of_each_dicts_product_times_the_seeds():
    study = Study(grid=[{"objective": ["beta_vae"], "beta": [1.0, 4.0]}, {"objective": ["factor_vae"]}],
                  seeds=[0, 7])
    names = [trial.name for trial in study.trials()]
    assert names == ["objective=beta_vae-beta=1-seed=0", "objective=beta_vae-beta=1-seed=7",
                     "objective=beta_vae-beta=4-seed=0", "objective=beta_vae-beta=4-seed=7",
                     "objective=factor_vae-seed=0", "objective=factor_vae-seed=7"]
    assert study.trials()[2].overrides == {"objective": "beta_vae", "beta": 4.0, "seed": 0}


def test_random_axes_are_drawn_alike_at_every_start_and_shared_by_the_seeds():
    def make():
        return Study(grid={"objective": ["beta_vae"]}, random={"learning_rate": LogUniform(1e-4, 1e-2),
                                                              "beta": Uniform(1, 2), "latent_size": Choice((4, 8))},
                     samples=50, seeds=[0, 1])
    first, again = make().trials(), make().trials()
    assert [t.values for t in first] == [t.values for t in again]
    rates = np.array([t.values["learning_rate"] for t in first[::2]])
    assert all(first[2 * i].values["learning_rate"] == first[2 * i + 1].values["learning_rate"] for i in range(50))
    assert np.all((rates >= 1e-4) & (rates < 1e-2))
    # log-uniform: as many draws below 1e-3 as above it (binomial, 50 draws: 10 to 40 holds with p > 0.999)
    assert 10 <= np.sum(rates < 1e-3) <= 40
    assert {t.values["latent_size"] for t in first} == {4, 8}


@pytest.mark.parametrize("fields, message", [
    (dict(grid={}), "the study's grid is empty"),
    (dict(grid={"beta": []}), "the study's grid is empty"),
    (dict(grid=[]), "the study's grid is empty"),
    (dict(grid={"betta": [1.0]}), "unknown parameter 'betta'"),
    (dict(grid={"beta": [1.0]}, base={"lerning_rate": 1e-3}), "unknown parameter 'lerning_rate'"),
    (dict(grid={"seed": [1, 2]}), "the study sets seed itself"),
    (dict(grid={"beta": 4.0}), "grid axis beta must be a list of values"),
    (dict(grid={"beta": [1.0, 1.0]}), "the study names run beta=1-seed=0 twice"),
    (dict(grid={"beta": [1.0]}, seeds=[0, 0]), "seeds must be distinct integers"),
    (dict(grid={"beta": [1.0]}, resources={"cpus": 1}), "unknown resources ['cpus']"),
])
def test_a_wrong_study_is_one_clear_error(fields, message):
    with pytest.raises(UserError, match=None) as caught:
        Study(**fields).trials()
    assert message in str(caught.value)


def test_a_study_file_must_assign_a_study(tmp_path):
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(UserError, match="must assign study = Study"):
        load_study(tmp_path / "empty.py")
    (tmp_path / "broken.py").write_text("study = Study(\n")
    with pytest.raises(UserError, match="broken.py failed to run \\(SyntaxError"):
        load_study(tmp_path / "broken.py")


# --- the results' maths --------------------------------------------------------------------------------------

def test_variance_shares_of_a_balanced_design_are_the_squared_effects():
    # Two objectives (effect ±a), two configurations in each (±b), two seeds in each (±c): in a balanced design the
    # sums of squares are n·a², n·b², n·c², so the shares are a², b², c² over their sum.
    a, b, c = 3.0, 2.0, 1.0
    scores, objectives, configurations = [], [], []
    for objective, sign_a in (("A", 1), ("B", -1)):
        for configuration, sign_b in (("1", 1), ("2", -1)):
            for sign_c in (1, -1):
                scores.append(10 + sign_a * a + sign_b * b + sign_c * c)
                objectives.append(objective)
                configurations.append(objective + configuration)
    shares = variance_shares(scores, objectives, configurations)
    total = a ** 2 + b ** 2 + c ** 2
    assert shares == pytest.approx({"objective": a ** 2 / total, "hyper_parameters": b ** 2 / total,
                                    "seed": c ** 2 / total})
    assert variance_shares([1.0, 1.0], ["A", "B"], ["A1", "B1"]) == {"objective": 0.0, "hyper_parameters": 0.0,
                                                                     "seed": 0.0}


def test_rank_correlation_sees_order_not_scale():
    x = np.arange(1.0, 9.0)
    rows = [{"a": v, "b": np.exp(v), "c": -v ** 3, "d": float(v % 2)} for v in x]
    matrix = rank_correlation(rows, ["a", "b", "c"])
    assert matrix == pytest.approx(np.array([[1, 1, -1], [1, 1, -1], [-1, -1, 1]]))
    # d against a: ranks of 1,0,1,0,... (ties averaged) against 1..8, by the definition (Pearson of ranks)
    ranks_a, ranks_d = x, np.array([6.5, 2.5, 6.5, 2.5, 6.5, 2.5, 6.5, 2.5])
    expected = np.corrcoef(ranks_a, ranks_d)[0, 1]
    assert rank_correlation(rows, ["a", "d"])[0, 1] == pytest.approx(expected)
    assert rank_correlation(rows[:2], ["a", "b"]) is None  # two runs rank nothing


def test_the_best_run_is_the_highest_score_or_the_lowest_dependence():
    rows = [{"run": f"r{i}", "status": "finished", "objective": "beta_vae", "beta": beta, "seed": 0, "mig": mig,
             "gaussian_total_correlation": tc} for i, (beta, mig, tc) in enumerate([(1.0, 0.2, 3.0), (4.0, 0.5, 9.0),
                                                                                   (8.0, 0.4, 1.0)])]
    columns = ["mig", "gaussian_total_correlation"]
    assert summarise(rows, ["beta", "seed"], columns, 0, "mig")["best"]["beta_vae"]["run"] == "r1"
    assert summarise(rows, ["beta", "seed"], columns, 0, "gaussian_total_correlation")["best"]["beta_vae"]["run"] == "r2"


def test_the_progress_line_counts_every_run_once_as_runs_start_fail_and_finish(capsys):
    from vae_tf.study.runner import _Progress

    def counts(line):
        return [int(n) for n in PROGRESS.fullmatch(line.line()).groups()[1:]]
    line = _Progress("smoke", 4, 0, 0, enabled=False)
    seen = [counts(line)]
    line.started(2)  # two slots: two run, two wait
    seen.append(counts(line))
    for status in ("finished", "failed", "finished", "finished"):
        line.ended("r", {"status": status, "reason": "the loss became nan"})
        seen.append(counts(line))
    # done, running, failed, left: a waiting run takes each freed slot until none waits
    assert seen == [[0, 0, 0, 4], [0, 2, 0, 2], [1, 2, 0, 1], [1, 2, 1, 0], [2, 1, 1, 0], [3, 0, 1, 0]]
    assert capsys.readouterr().out == "r failed: the loss became nan\n"
    resumed = _Progress("smoke", 4, 1, 1, enabled=False)  # a restart: two runs ended before it, more slots than runs
    resumed.started(8)
    assert counts(resumed) == [1, 2, 1, 0]


def test_results_report_the_final_losses_as_analyze_compare_does(tmp_path, capsys):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "study.json").write_text(json.dumps({"study": "study"}))
    write_run(folder, "long", 150)
    write_run(folder, "short", 40)
    assert study_cli(capsys, "--aggregate", folder)[0] == 0
    rows = {row["run"]: row for row in read_rows(folder / "results.csv")}
    # the mean of the last 100 logged steps (50..149), not the last step's loss (149)
    assert [float(rows["long"][name]) for name in ("steps", "loss", "reconstruction_loss", "kl_loss")] == \
        [150, 99.5, 199.0, 49.75]
    assert float(rows["short"]["loss"]) == 19.5  # fewer than 100 steps: all of them


def test_trial_log_keeps_what_training_printed_but_the_lines_known_to_be_harmless(tmp_path):
    from vae_tf.study.trial import _output_to
    # as TensorFlow 2.21 logs them in every run (the first one shortened in its middle)
    harmless = [b"E0000 00:00:1795570713.781933    3760 node_def_util.cc:682] NodeDef mentions attribute "
                b"use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset; signature=...> This "
                b"may be expected if your graph generating binary is newer  than this binary. Unknown attributes will "
                b"be ignored. NodeDef: {{node ParallelMapDatasetV2/_10}}\n",
                b"I0000 00:00:1795570713.901211    3811 local_rendezvous.cc:405] Local rendezvous is aborting with "
                b"status: OUT_OF_RANGE: End of sequence\n"]
    kept = [b"resuming from step 300\n",  # an earlier attempt's output
            b"E0000 00:00:1795570714.002345    3760 cuda_dnn.cc:522] Loaded runtime CuDNN library: 8.1.0 but source "
            b"was compiled with: 8.9.4\n",  # a real error in the same format stays
            b"note: NodeDef mentions attribute use_unbounded_threadpool which is not in the op definition\n"]
    path = tmp_path / "trial.log"
    path.write_bytes(kept[0])
    with _output_to(path):  # what the worker's C++ and Python write, straight to its file descriptors
        os.write(2, harmless[0])
        os.write(2, kept[1])
        os.write(1, harmless[1])
        os.write(1, kept[2])
    assert path.read_bytes() == b"".join(kept)


# --- the runner, for real -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """studies/smoke.py run as a newcomer would, into a temporary study folder."""
    folder = tmp_path_factory.mktemp("study") / "smoke"
    result = run_script("study.py", "studies/smoke.py", f"--output_dir={folder}", timeout=600)
    return folder, result


@pytest.mark.slow
def test_the_smoke_study_trains_scores_and_aggregates_its_runs(smoke):
    folder, result = smoke
    assert result.returncode == 0, result.stderr
    rows = read_rows(folder / "results.csv")
    assert sorted(row["run"] for row in rows) == sorted(t.name for t in load_study(ROOT / "studies/smoke.py")[1].trials())
    for row in rows:
        assert row["status"] == "finished" and row["steps"] == "40"
        assert 0 <= float(row["mig"]) <= 1 and 0 <= float(row["sap"]) <= 1
        assert float(row["train_seconds"]) > 0
        assert float(row["test_log_likelihood"]) < 0  # log p(x) of 16x16 binary-ish images: nats below zero
        run = folder / row["run"]
        params = json.loads((run / "params.json").read_text())
        assert (params["objective"], params["beta"], params["seed"]) == (row["objective"], float(row["beta"]), 0)
        # the row's losses are the mean of the last 100 logged steps, as analyze.py --compare reports them
        logged = read_rows(run / "log.csv")[-100:]
        for name in ("loss", "reconstruction_loss", "kl_loss"):
            assert float(row[name]) == pytest.approx(np.mean([float(step[name]) for step in logged]))
        assert "use_unbounded_threadpool" not in (run / "trial.log").read_text()
        # at the priority of the command that started the study, not Ray's niceness 15 for its workers
        assert json.loads((run / "trial.json").read_text())["niceness"] == os.nice(0)
        assert json.loads((run / "analysis" / "metrics.json").read_text())["metrics"]["mig"]["score"] == \
            pytest.approx(float(row["mig"]))
    summary = json.loads((folder / "study_summary.json").read_text())
    assert (summary["finished"], summary["failed"], summary["unfinished"]) == (4, 0, 0)
    assert set(summary["best"]) == {"beta_vae", "beta_tcvae"}
    for name in ("study_metrics.png", "study_rank_correlation.png", "study_reconstruction.png", "study.md"):
        assert (folder / name).stat().st_size > 0
    assert "runs ended" not in result.stdout  # one live line of counts, ending in the totals
    assert "smoke: 4 done, 0 running, 0 failed, 0 left" in result.stderr.replace("\r", "\n")
    shown = [[int(n) for n in counts[1:]] for counts in PROGRESS.findall(result.stderr)]
    assert shown and all(sum(counts) == 4 for counts in shown)


@pytest.mark.slow
def test_a_finished_study_started_again_trains_nothing_and_rebuilds_its_results(smoke):
    folder, first = smoke
    assert first.returncode == 0, first.stderr
    runs = {p.name: snapshot_of(p) for p in folder.iterdir() if p.is_dir()}
    (folder / "results.csv").unlink()
    again = run_script("study.py", "studies/smoke.py", f"--output_dir={folder}")
    assert again.returncode == 0, again.stderr
    assert {p.name: snapshot_of(p) for p in folder.iterdir() if p.is_dir()} == runs
    assert len(read_rows(folder / "results.csv")) == 4
    # re-aggregating from the folders alone, without the study file, gives the same table
    before = (folder / "results.csv").read_text()
    aggregated = run_script("study.py", f"--aggregate={folder}")
    assert aggregated.returncode == 0, aggregated.stderr
    assert (folder / "results.csv").read_text() == before


@pytest.mark.slow
def test_analyze_compare_takes_a_study_folder(smoke):
    folder, _ = smoke
    assert analyze_main([str(folder), "--compare"]) == 0
    table = (folder / "comparison.md").read_text()
    cells = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in table.splitlines()[2:]}
    for row in read_rows(folder / "results.csv"):  # the same runs, with the same final loss
        assert float(cells[row["run"]][2]) == pytest.approx(float(row["loss"]), abs=0.005)


@pytest.mark.slow
def test_a_study_killed_at_any_moment_resumes_without_training_anything_twice(tmp_path):
    """SIGKILL to the whole study (driver, Ray and its workers) while runs train; the restart skips the finished
    run, resumes the killed one from its checkpoint, records the failures and finishes."""
    path = study_file(tmp_path, "killed", base={**TINY_BASE, "num_steps": 3000, "checkpoint_step": 100},
                      grid=[{"learning_rate": [1e-3]}, {"learning_rate": [1e30], "num_steps": [60]},
                            {"beta": [-1.0]}], resources={"num_cpus": 1})
    folder = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, str(ROOT / "study.py"), str(path), f"--output_dir={folder}"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    long_run = folder / "learning_rate=0.001-seed=0"
    deadline = time.time() + 240
    while time.time() < deadline and not list((long_run / "checkpoints").glob("ckpt-*.index")):
        time.sleep(0.5)
    assert list((long_run / "checkpoints").glob("ckpt-*.index")), driver.communicate(timeout=60)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert not (long_run / "trial.json").exists()
    failed_nan = folder / "learning_rate=1e+30-num_steps=60-seed=0"
    kept = {p.name: snapshot_of(p) for p in folder.iterdir() if p.is_dir() and (p / "trial.json").exists()}

    result = run_script("study.py", path, f"--output_dir={folder}", timeout=600)
    assert result.returncode == 0, result.stderr
    for name, files in kept.items():  # runs that had ended before the kill are untouched
        assert snapshot_of(folder / name) == files
    log = (long_run / "trial.log").read_text()
    assert "resuming" in log and "from step" in log
    steps = [int(row["step"]) for row in read_rows(long_run / "log.csv")]
    assert steps == list(range(3000))  # every step once: redone ones replace the lost ones
    rows = {row["run"]: row for row in read_rows(folder / "results.csv")}
    assert rows[long_run.name]["status"] == "finished"
    assert rows[failed_nan.name]["status"] == "failed" and "the loss became" in rows[failed_nan.name]["reason"]
    bad = rows["beta=-1-seed=0"]
    assert bad["status"] == "failed" and "beta" in bad["reason"]
    assert not (folder / "beta=-1-seed=0" / "params.json").exists()  # refused before any training


def _wait_for_cpus(ray, address, env, cpus, seconds=120):
    """Until `ray status` shows the cluster at `address` with `cpus` CPUs in all."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        status = subprocess.run([ray, "status", f"--address={address}"], env=env, capture_output=True, text=True)
        if f"/{cpus:.1f} CPU" in status.stdout:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {address} never had {cpus} CPUs: {status.stdout}{status.stderr}")


@pytest.mark.slow
def test_a_study_runs_on_a_cluster_of_two_ray_nodes(tmp_path):
    """`ray start --head` and `ray start --address` (two nodes of one CPU on this machine), then --address."""
    ray = str(Path(sys.executable).parent / "ray")
    address = f"127.0.0.1:{46379 + os.getpid() % 1000}"
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    # Ray 2.60's `ray start` turns token authentication on unless RAY_AUTH_MODE=disabled (older Rays ignore it)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    nodes = []
    try:
        nodes.append(subprocess.Popen([ray, "start", "--head", f"--port={address.split(':')[1]}", f"--temp-dir={temp}",
                                       *common], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        _wait_for_cpus(ray, address, env, 1)
        nodes.append(subprocess.Popen([ray, "start", f"--address={address}", *common], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        _wait_for_cpus(ray, address, env, 2)
        # Two trials that train at once, one per CPU: the scheduler must place them on both nodes.
        path = study_file(tmp_path, "two", base={**TINY_BASE, "num_steps": 20}, grid={"beta": [1.0, 4.0]})
        folder = tmp_path / "two_nodes"
        result = subprocess.run([sys.executable, str(ROOT / "study.py"), str(path), f"--output_dir={folder}",
                                 f"--address={address}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        records = [json.loads((p / "trial.json").read_text()) for p in folder.iterdir() if p.is_dir()]
        assert [r["status"] for r in records] == ["finished"] * 2
        assert len({r["node"] for r in records}) == 2  # one CPU each: both nodes trained runs
    finally:
        for node in nodes:
            os.killpg(node.pid, signal.SIGTERM)
        for node in nodes:
            node.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


# --- bad input ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, message", [
    (dict(grid={"betta": [1.0]}), "unknown parameter 'betta'"),
    (dict(grid={}), "the study's grid is empty"),
])
def test_bad_study_files_are_one_line_and_touch_nothing(tmp_path, fields, message):
    path = study_file(tmp_path, "bad", **fields)
    result = run_script("study.py", path, f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_folder_of_another_study_is_refused_untouched(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "study.json").write_text(json.dumps({"study": "other"}))
    (folder / "run").mkdir()
    before = snapshot_of(folder)
    result = run_script("study.py", study_file(tmp_path, "mine", grid={"beta": [1.0]}), f"--output_dir={folder}")
    assert result.returncode == 2
    assert "holds study 'other', not 'mine'" in result.stderr and result.stderr.count("\n") == 1
    assert snapshot_of(folder) == before


SHIPPED = ROOT / "predictions" / "shapes2d_objectives"  # results.csv, the summary and study.md; no run folders


def shipped_copy(tmp_path):
    return Path(shutil.copytree(SHIPPED, tmp_path / SHIPPED.name))


def test_aggregating_a_study_whose_run_folders_are_gone_is_refused_untouched(tmp_path, capsys):
    folder = shipped_copy(tmp_path)
    before = snapshot_of(folder)
    listed = len(read_rows(SHIPPED / "results.csv"))
    code, out, err = study_cli(capsys, "--aggregate", folder)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert f"results.csv holds {listed} runs that rebuilding it would drop" in err and "add --force" in err
    assert snapshot_of(folder) == before
    result = run_script("study.py", "--aggregate", folder)  # as a user types it, in a fresh process
    assert (result.returncode, result.stdout, result.stderr) == (2, "", err)
    assert snapshot_of(folder) == before


def test_force_rebuilds_a_study_without_the_runs_whose_folders_are_gone(tmp_path, capsys):
    folder = shipped_copy(tmp_path)
    write_run(folder, "kept", 10)
    code, out, err = study_cli(capsys, "--aggregate", folder, "--force")
    assert (code, err) == (0, "") and "1 finished, 0 failed, 0 unfinished" in out
    assert [row["run"] for row in read_rows(folder / "results.csv")] == ["kept"]
    assert json.loads((folder / "study_summary.json").read_text())["runs"] == 1
    assert (folder / "study.json").read_bytes() == (SHIPPED / "study.json").read_bytes()


def test_a_rebuild_that_keeps_every_listed_run_needs_no_force(tmp_path, capsys):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "study.json").write_text(json.dumps({"study": "study"}))
    write_run(folder, "first", 10)
    assert study_cli(capsys, "--aggregate", folder)[0] == 0
    write_run(folder, "second", 10)  # a run added: the table grows
    assert study_cli(capsys, "--aggregate", folder)[0] == 0
    assert [row["run"] for row in read_rows(folder / "results.csv")] == ["first", "second"]
    (folder / "second").rename(tmp_path / "second")  # moved away: the table would shrink
    before = snapshot_of(folder)
    code, out, err = study_cli(capsys, "--aggregate", folder)
    assert (code, out) == (2, "") and err.count("\n") == 1 and "would drop (second)" in err
    assert snapshot_of(folder) == before
    (tmp_path / "second").rename(folder / "second")
    (folder / "second" / "trial.json").write_text("{ garbage")  # its record unreadable: it would lose its row
    before = snapshot_of(folder)
    code, out, err = study_cli(capsys, "--aggregate", folder)
    assert (code, out) == (2, "") and "would drop (second)" in err and "trial.json" in err
    assert snapshot_of(folder) == before


def _missing(path):
    return path


def _empty(path):
    path.mkdir()


def _a_file(path):
    path.write_text("run,status\n")


def _a_run_folder(path):
    (path.parent / "study.json").write_text(json.dumps({"study": "study"}))
    write_run(path.parent, path.name, 10)


@pytest.mark.parametrize("make, message", [
    (_missing, "not found: --aggregate takes a folder a study wrote (one holding study.json)"),
    (_empty, "is an empty folder, not a study folder: --aggregate takes a folder a study wrote"),
    (_a_file, "is a file, not a study folder: --aggregate takes a folder a study wrote"),
    (_a_run_folder, "is a run folder, not a study folder: --aggregate its study folder, "),
])
def test_aggregating_anything_but_a_study_folder_is_one_line_and_writes_nothing(tmp_path, capsys, make, message):
    path = tmp_path / "study" / "target"
    path.parent.mkdir()
    make(path)
    before = snapshot_of(tmp_path)
    code, out, err = study_cli(capsys, "--aggregate", path)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert snapshot_of(tmp_path) == before and path.exists() == (make is not _missing)


def test_a_study_started_again_refuses_before_training_to_drop_a_run_whose_folder_is_gone(tmp_path, capsys):
    path = study_file(tmp_path, "mine", base=TINY_BASE, grid={"beta": [1.0]})
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "study.json").write_text(json.dumps({"study": "mine"}))
    # beta=4 was in the study once; beta=1 still is, so its lost folder is trained again rather than dropped
    (folder / "results.csv").write_text("run,status\nbeta=1-seed=0,finished\nbeta=4-seed=0,finished\n")
    before = snapshot_of(folder)
    code, out, err = study_cli(capsys, path, f"--output_dir={folder}")
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert "would drop (beta=4-seed=0)" in err and "add --force to the same command" in err
    assert snapshot_of(folder) == before
    # --force gets past it, to the Ray cluster (one where nothing answers: still nothing written)
    code, out, err = study_cli(capsys, path, f"--output_dir={folder}", "--force", "--address=127.0.0.1:9")
    assert code == 2 and "cannot reach the Ray cluster" in err
    assert snapshot_of(folder) == before


def test_an_unreachable_ray_address_is_one_line(tmp_path):
    path = study_file(tmp_path, "far", base=TINY_BASE, grid={"beta": [1.0]})
    result = run_script("study.py", path, f"--output_dir={tmp_path / 'out'}", "--address=127.0.0.1:9")
    assert result.returncode == 2, result.stderr
    assert "cannot reach the Ray cluster at '127.0.0.1:9'" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
