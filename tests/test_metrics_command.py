"""`python -m vae_tf.metrics`: the files it reads, its tables, its one-line errors, the chance levels in its help, and
its one write, --json, which never destroys an input, a file of another kind or a folder (nothing is written when it
refuses)."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from vae_tf import metrics
from vae_tf.metrics import command

from conftest import ROOT, factor_grid, snapshot_of

CODES = np.random.RandomState(0).randn(60, 3)
FACTORS = np.random.RandomState(1).randint(3, size=(60, 2))


def run_command(*argv):
    """The command in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = command.main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def run_as_a_user(*argv, cwd):
    """The command in a fresh process, as a user types it."""
    return subprocess.run([sys.executable, "-m", "vae_tf.metrics", *map(str, argv)], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)


def test_the_command_reads_npy_npz_and_csv_files(tmp_path):
    factors = np.random.RandomState(0).randint(4, size=(300, 2))
    codes = factors + 0.2 * np.random.RandomState(1).randn(300, 2)
    expected = f"{metrics.mig_from_arrays(codes, factors)['score']:.3f}"
    np.save(tmp_path / "codes.npy", codes)
    np.save(tmp_path / "factors.npy", factors)
    np.savez(tmp_path / "run.npz", codes=codes, factors=factors)
    np.savetxt(tmp_path / "codes.csv", codes, delimiter=",", header="z0,z1", comments="")
    np.savetxt(tmp_path / "factors.csv", factors, delimiter=",")  # no header
    for files in (("codes.npy", "factors.npy"), ("run.npz", "run.npz"), ("codes.csv", "factors.csv")):
        code, out, err = run_command(*(tmp_path / name for name in files), "--names=mig,irs")
        assert code == 0 and not err
        assert out.splitlines()[0] == "| representation | mig | irs |" and out.splitlines()[2].split(" | ")[1] == expected
    code, out, _ = run_command(tmp_path / "codes.npy", "--json", tmp_path / "scores.json")
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert code == 0 and list(saved["metrics"]) == ["gaussian_total_correlation", "gaussian_wasserstein_correlation",
                                                    "code_mutual_information"]  # no factors: the codes alone
    code, out, _ = run_command("--udr", tmp_path / "codes.npy", tmp_path / "codes.csv", "--correlation=spearman")
    udr = f"| {metrics.udr_from_arrays([codes, codes], correlation='spearman')['model_scores'][0]:.3f} |"
    assert code == 0 and out.splitlines()[0] == "| run | UDR (spearman) |" and out.count(udr) == 2


def test_the_command_reports_bad_input_in_one_line(tmp_path):
    np.save(tmp_path / "codes.npy", CODES)
    np.save(tmp_path / "short.npy", FACTORS[:10])
    np.save(tmp_path / "factors.npy", FACTORS)
    np.save(tmp_path / "transposed.npy", CODES.T)
    np.savez(tmp_path / "two.npz", a=CODES, b=FACTORS)
    (tmp_path / "text.csv").write_text("z0,z1\n1,2\n3,oops\n")
    (tmp_path / "random.npy").write_bytes(np.random.RandomState(0).bytes(400))
    (tmp_path / "text.npy").write_text("0.5,1.5\n2.5,3.5\n")
    (tmp_path / "random.npz").write_bytes(np.random.RandomState(1).bytes(400))
    objects = np.array([CODES, "notes"], dtype=object)
    np.save(tmp_path / "objects.npy", objects, allow_pickle=True)
    np.savez(tmp_path / "objects.npz", codes=objects)
    np.savez_compressed(tmp_path / "damaged.npz", codes=CODES)
    damaged = bytearray((tmp_path / "damaged.npz").read_bytes())
    damaged[60:80] = bytes(20)  # inside the compressed array
    (tmp_path / "damaged.npz").write_bytes(damaged)
    cases = {("codes.npy", "short.npy"): "codes have 60 rows but factors have 10",
             ("codes.npy", "missing.npy"): "missing.npy: no such file",
             ("codes.npy", "two.npz"): "holds the arrays a, b; name the factors array 'factors'",
             ("text.csv",): "text.csv (could not convert",
             ("codes.npy", "codes.txt.gz"): "save the factors as .npy, .npz or .csv",
             ("codes.npy", "--udr"): "at least 2 codes arrays",
             ("codes.npy", "--names=factor_vae"): "factor_vae needs a sampler",
             ("codes.npy", "--correlation=lasso"): "add --udr",
             ("random.npy",): "random.npy is not a NumPy .npy file (it does not begin with NumPy's header); save the "
                              "codes with numpy.save, or as .csv",
             ("codes.npy", "text.npy"): "text.npy is not a NumPy .npy file",
             ("random.npz",): "random.npz is not a NumPy .npz file (it is not a zip archive)",
             ("objects.npy",): "objects.npy holds Python objects (an array of dtype object), not numbers; save the "
                               "codes as a numeric array",
             ("codes.npy", "objects.npz"): "objects.npz's codes holds Python objects",
             ("damaged.npz",): "damaged.npz (Error -3 while decompressing data",
             ("transposed.npy", "factors.npy"): "codes have 3 rows but factors have 60: row i of both must describe "
                                                "the same observation; codes of shape [3, 60] look transposed: "
                                                "transpose them to [60, 3] (codes.T)"}
    for argv, message in cases.items():
        code, out, err = run_command(*(tmp_path / a if not a.startswith("-") else a for a in argv))
        assert code == 2 and not out and err.startswith("error: ") and message in err and err.count("\n") == 1, \
            (argv, err)
        assert "pickled" not in err, (argv, err)  # NumPy's word for any file without its header
    # As a user runs it: the same line, no traceback.
    result = run_as_a_user("codes.npy", "short.npy", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr == "error: codes have 60 rows but factors have 10: row i of " \
                                                       "both must describe the same observation\n"


def dead_at(position, codes):
    """`codes` with a constant (dead) dimension inserted at `position` (0, 1 or -1, the last)."""
    insert = codes.shape[1] if position == -1 else position
    return np.insert(codes, insert, 0.25, axis=1)


def test_the_command_ranks_runs_with_a_dead_dimension_anywhere(tmp_path):
    # ±1 codes in every combination: uncorrelated dimensions, so matching runs score 1 − α = 0.9 (Lasso) or exactly
    # 1 (rank correlations), the dead dimensions left out.
    live = factor_grid(2, 2, 2, repeat=10) * 2.0 - 1
    for position in (0, 1, -1):
        np.save(tmp_path / "first.npy", dead_at(position, live))
        np.save(tmp_path / "second.npy", dead_at(position, live[:, [1, 2, 0]] * [2.0, -1.0, 1.0]))
        for correlation, score in (("spearman", "1.000"), ("lasso", "0.900")):
            code, out, err = run_command("--udr", tmp_path / "first.npy", tmp_path / "second.npy",
                                         f"--correlation={correlation}")
            assert code == 0 and not err, (position, correlation, err)
            assert [row.split(" | ")[-1] for row in out.splitlines()[2:]] == [f"{score} |"] * 2, (position, out)


def test_the_help_lists_every_array_metric_with_its_chance_level():
    result = run_as_a_user("--help", cwd=ROOT)
    listed = dict(re.findall(r"^  (\w+) +(\d+\.\d\d)\b", result.stdout, re.M))
    assert result.returncode == 0 and listed == {name: f"{metrics.SUITE[name].chance:.2f}"
                                                 for name in metrics.ARRAY_METRICS}


# --- --json never destroys a file ---------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working folder of inputs and other files, the command run in it with relative paths as a user would:
    codes.npy and factors.npy (scoreable either of them alone, so a mistaken command would have scored and written),
    run.npz (both), three runs' codes a.npy, b.npy, c.npy, a table, another program's JSON and a folder out/."""
    factors = np.random.RandomState(0).randint(4, size=(200, 2))
    codes = factors + 0.3 * np.random.RandomState(1).randn(200, 2)
    np.save(tmp_path / "codes.npy", codes)
    np.save(tmp_path / "factors.npy", factors)
    np.save(tmp_path / "other.npy", codes[:10])
    np.savez(tmp_path / "run.npz", codes=codes, factors=factors)
    for run, name in enumerate("abc"):
        np.save(tmp_path / f"{name}.npy", codes + 0.1 * np.random.RandomState(run).randn(200, 2))
    np.savetxt(tmp_path / "table.csv", codes, delimiter=",")
    (tmp_path / "settings.json").write_text(json.dumps({"files": ["x"], "learning_rate": 0.001}))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("kept\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


FOREIGN = "exists and is not a metrics JSON; pick another path, or add --force to replace it"
FOLDER = "is a folder; name a metrics JSON file to write"
READ = "is one of the files this command reads; writing there would destroy it: pick another path for --json"


@pytest.mark.parametrize("argv, message", [
    (["--json", "codes.npy", "factors.npy"], f"--json codes.npy {FOREIGN}"),  # codes.npy taken as --json's value
    (["codes.npy", "--json", "factors.npy"], f"--json factors.npy {FOREIGN}"),
    (["codes.npy", "factors.npy", "--json", "other.npy"], f"--json other.npy {FOREIGN}"),
    (["codes.npy", "factors.npy", "--json=table.csv"], f"--json table.csv {FOREIGN}"),
    (["codes.npy", "factors.npy", "--json=settings.json"], f"--json settings.json {FOREIGN}"),  # another's JSON
    (["codes.npy", "factors.npy", "--json", "out"], f"--json out {FOLDER}"),
    (["codes.npy", "factors.npy", "--json", "out", "--force"], f"--json out {FOLDER}"),
    (["run.npz", "run.npz", "--json", "run.npz"], f"--json run.npz {READ}"),
    (["--json", "run.npz", "run.npz"], f"--json run.npz {READ}"),
    (["run.npz", "run.npz", "--json=./run.npz", "--force"], f"--json ./run.npz {READ}"),
    (["--udr", "a.npy", "--json", "b.npy", "c.npy"], f"--json b.npy {FOREIGN}"),
    (["--udr", "a.npy", "b.npy", "--json", "b.npy", "--force"], f"--json b.npy {READ}"),
    (["codes.npy", "--json", "missing/scores.json"], "--json missing/scores.json: there is no folder missing; create "
                                                     "it or pick another path"),
    (["codes.npy", "--force"], "--force lets --json replace a file: add --json PATH"),
])
def test_a_mistaken_json_path_is_refused_and_nothing_is_written(folder, argv, message):
    before = snapshot_of(folder)
    code, out, err = run_command(*argv)
    assert (code, out, err) == (2, "", f"error: {message}\n")
    assert snapshot_of(folder) == before


def test_a_mistaken_json_path_is_refused_in_a_fresh_process(folder):
    before = snapshot_of(folder)
    result = run_as_a_user("--json", "codes.npy", "factors.npy", cwd=folder)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: --json codes.npy {FOREIGN}\n")
    assert snapshot_of(folder) == before


def test_a_json_the_command_wrote_is_replaced(folder):
    inputs = snapshot_of(folder)
    for argv, written in ((["codes.npy", "factors.npy", "--names=mig"], {"metrics": {"mig"}}),
                          (["codes.npy", "factors.npy", "--names=irs"], {"metrics": {"irs"}}),
                          (["--udr", "a.npy", "b.npy"], {"correlation": "lasso"}),  # UDR's over the scores'
                          (["--udr", "a.npy", "c.npy", "--correlation=spearman"], {"correlation": "spearman"}),
                          (["codes.npy", "--names=gaussian_total_correlation"],
                           {"metrics": {"gaussian_total_correlation"}})):
        code, _, err = run_command(*argv, "--json=scores.json")
        saved = json.loads((folder / "scores.json").read_text())
        assert code == 0 and not err, (argv, err)
        assert {key: set(saved[key]) if key == "metrics" else saved[key] for key in written} == written, argv
    assert {path: data for path, data in snapshot_of(folder).items() if path.name != "scores.json"} == inputs


def test_force_replaces_a_file_of_another_kind(folder):
    before = snapshot_of(folder)
    code, out, err = run_command("codes.npy", "factors.npy", "--names=mig", "--json=table.csv", "--force")
    saved = json.loads((folder / "table.csv").read_text())
    expected = metrics.mig_from_arrays(np.load(folder / "codes.npy"), np.load(folder / "factors.npy"))
    assert code == 0 and not err and saved["metrics"]["mig"] == expected
    assert {path: data for path, data in snapshot_of(folder).items() if path.name != "table.csv"} == \
        {path: data for path, data in before.items() if path.name != "table.csv"}
