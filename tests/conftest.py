"""Shared helpers: tiny real configurations and a way to run the real entry points."""

import contextlib
import csv
import errno
import io
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import vae_tf

ROOT = Path(__file__).resolve().parent.parent

# A few-step β-VAE on 16×16 shapes2d: every code path of training, in seconds (the objectives have their own tests).
TINY = dict(objective="beta_vae", image_size=16, encoder_layers=[[8, 4, 2], [8, 4, 2], [32]], decoder_layers=[[8, 1, 1]],
            latent_size=4, batch_size=8, num_steps=6, plot_step=3, log_step=[1], validation_step=3, validation_size=16,
            checkpoint_step=3, mig_step=0)  # scoring MIG renders 10,000 images: only the tests of it turn it on


@pytest.fixture
def tiny(tmp_path):
    """Params for a tiny run writing under tmp_path; call it with overrides."""
    def make(**overrides):
        return vae_tf.load_params(ROOT / "params.py",
                                  overrides={"output_dir": str(tmp_path / "predictions"), **TINY, **overrides})
    return make


@pytest.fixture(autouse=True)
def compiled_once(monkeypatch):
    """Every run a test trains in this process traces its training call, its validation and its snapshot once: the
    steps of every call (however many), run as one graph, with no Python code per step. A second trace
    would mean a Python value in a signature: seconds of tracing again, or Python running at run time."""
    from vae_tf import jobs, training
    made = []

    def recorded(make):
        def wrapper(*args, **kwargs):
            function = make(*args, **kwargs)
            made.append((make.__name__, function))
            return function
        return wrapper

    monkeypatch.setattr(training, "_compiled_steps", recorded(training._compiled_steps))
    for name in ("_compiled_validation", "_compiled_snapshot"):
        monkeypatch.setattr(jobs, name, recorded(getattr(jobs, name)))
    yield
    traces = [(name, function.experimental_get_tracing_count()) for name, function in made]
    assert all(count <= 1 for _, count in traces), f"traced more than once: {traces}"


def snapshot_of(folder):
    """Every file under a folder (by its path inside it) with its bytes, to prove nothing changed."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def mount(*args):
    """Run `mount`; False where this user or this container may not."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", *map(str, args)], capture_output=True).returncode == 0


@contextlib.contextmanager
def read_only_view(folder, view, monkeypatch):
    """`view` shows `folder` read-only: a read-only bind mount, or (where mounting is not allowed) writes under `view`
    that fail with EROFS as the mount's would."""
    view.mkdir()
    if mount("--bind", folder, view):
        try:
            if mount("-o", "remount,bind,ro", view):
                yield "a read-only bind mount"
                return
        finally:
            subprocess.run(["umount", str(view)], check=True)
    warnings.warn("no bind mount here (not root, or the container forbids it): read-only writes are simulated")
    os.rmdir(view)
    os.symlink(folder, view)
    import builtins
    import pathlib
    import tempfile

    def refuse(path):
        if str(path).startswith(str(view)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    real_open, real_mkdir, real_mkstemp = builtins.open, pathlib.Path.mkdir, tempfile.mkstemp
    monkeypatch.setattr(builtins, "open", lambda path, mode="r", *a, **k: (
        refuse(path) if set(mode) & set("wax+") else None) or real_open(path, mode, *a, **k))
    monkeypatch.setattr(pathlib.Path, "mkdir", lambda self, *a, **k: refuse(self) or real_mkdir(self, *a, **k))
    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, dir=None, **k: refuse(dir) or real_mkstemp(*a, dir=dir, **k))
    yield "simulated"


def np_log_normal(z, mean, log_std):
    """log N(z; mean, exp(log_std)²) elementwise, in NumPy: the tests' independent Gaussian density."""
    return -0.5 * np.log(2 * np.pi) - log_std - 0.5 * ((z - mean) / np.exp(log_std)) ** 2


def np_logsumexp(a, axis):
    top = a.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.exp(a - top).sum(axis=axis))


def bernoulli_log_likelihood(images, logits):
    """log p(x|z) of binary images [n, ...] under Bernoulli logits [G, P] at G points, written out in NumPy -> [G, n]."""
    x, logits = images.reshape(len(images), -1).astype(np.float64)[None], logits[:, None].astype(np.float64)
    return -(np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))).sum(-1)


def tiny_args(**overrides):
    """TINY as train.py command-line arguments."""
    return [f"--{name}={value}" for name, value in {**TINY, **overrides}.items()]


def assert_train_refuses(tmp_path, capsys, overrides, message):
    """train.py with TINY and `overrides` exits 2 with one line holding `message`, and writes nothing (no file, no
    folder)."""
    from vae_tf.cli import train_main
    assert train_main([f"--output_dir={tmp_path}", "--run_name=bad", *tiny_args(**overrides)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert list(Path(tmp_path).rglob("*")) == []


def run_script(script, *args, cwd=ROOT, timeout=300):
    """Run one of the project's scripts in a fresh process, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def train_cli(*args):
    """train.py's entry point in this process, with its exit code and output as `run_script` gives them: the same
    code path without a new process's seconds of importing TensorFlow. Tests of what only a process shows (signals,
    devices, the environment) use run_script."""
    from vae_tf.cli import train_main
    out, err, started_in = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(ROOT)  # as run_script: --params defaults to params.py in the working folder
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = train_main([str(arg) for arg in args])
    finally:
        os.chdir(started_in)
    return subprocess.CompletedProcess(["train.py", *args], code, out.getvalue(), err.getvalue())


def assert_resumed_as_straight(resumed, straight, rtol=1e-5, atol=1e-6):
    """A resumed run's log.csv, validation.csv and latents.csv hold the uninterrupted run's rows, every column but
    wall_time, to float32 rounding: two fresh runs of a batch-estimated objective in one process were seen to differ
    by one ulp at step 0, while a resume that lost the data position, the noise, a schedule or any state differs by
    far more. (Separate processes log to the bit: tests/test_reliability.py.)"""
    assert (Path(straight) / "log.csv").exists(), straight
    for name in ("log.csv", "validation.csv", "latents.csv"):
        assert (Path(resumed) / name).exists() == (Path(straight) / name).exists(), name
        if not (Path(straight) / name).exists():
            continue
        want, got = (_columns(Path(run) / name) for run in (straight, resumed))
        assert list(got) == list(want), name
        for column in want:
            np.testing.assert_allclose(got[column], want[column], rtol=rtol, atol=atol, err_msg=f"{name}: {column}")


def _columns(path):
    """A CSV file's columns but wall_time, as float arrays (an empty cell is NaN)."""
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    return {column: np.array([float(row[column] or "nan") for row in rows])
            for column in (rows[0] if rows else {}) if column != "wall_time"}


# --- metrics -----------------------------------------------------------------------------------------------

class FactorIndices:
    """A ground truth (docs/datasets.md) of independent uniform factors of the given sizes whose observations are the
    factor indices themselves (float [n, k]): the identity on it is a perfect code."""

    def __init__(self, *sizes):
        self.factors_num_values = list(sizes)
        self.num_factors = len(sizes)
        self.observation_shape = (len(sizes),)

    def sample_factors(self, num, random_state):
        return np.stack([random_state.randint(n, size=num) for n in self.factors_num_values], axis=1)

    def sample_observations_from_factors(self, factors, random_state):
        return np.asarray(factors, dtype=np.float64)


def factor_grid(*sizes, repeat=1):
    """Every combination of factor values 0 .. size−1, `repeat` times in order: factors exactly uniform and
    independent."""
    combinations = np.stack(np.meshgrid(*map(np.arange, sizes), indexing="ij"), axis=-1).reshape(-1, len(sizes))
    return np.tile(combinations, (repeat, 1))


def plug_in_entropy(*columns):
    """Entropy (nats) of the joint empirical distribution of integer columns, from their counts alone."""
    _, counts = np.unique(np.column_stack(columns), axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))
