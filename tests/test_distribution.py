"""tf.distribute: mirrored replicas on logical CPU devices, and two local workers over 127.0.0.1.

Run as a script (`python tests/test_distribution.py FOLDER`), this file trains the mirrored tests' runs."""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vae_tf

from conftest import ROOT, TINY, run_script, tiny_args, train_cli

ARGS = tiny_args(num_steps=6, plot_step=3, log_step=[], validation_step=3, checkpoint_step=3)

# Trained on one device and on two mirrored replicas. IWAE slices its extra samples' noise as the step slices its own;
# the others estimate a term from the whole minibatch, which the replicas gather. The penalties keep their shipped
# weights (params.py): a gradient through the gather wrong by the factor 1/replicas moved the weights by more than 1e-3
# in these 6 steps, against the tolerance of 1e-5. The joint run is JointVAE (Dupont 2018, eq. 7) with the
# categoricals' marginal KL: its capacities C, near the KLs of these first steps, make |KL − C| change sign between
# the replicas' halves of a batch, where a mean over the replicas of their own |KL − C| is not the batch's. Its
# independence term (linear HSIC: squared covariances over the global batch) is weighted 1e4 to move the weights.
MIRRORED = {
    "iwae": dict(objective="iwae", beta=1.0, iwae_samples=3),
    "beta_tcvae": dict(objective="beta_tcvae"),
    "factor_vae": dict(objective="factor_vae"),
    "dip_vae_i": dict(objective="dip_vae_i"),
    "dip_vae_ii": dict(objective="dip_vae_ii"),
    "info_vae": dict(objective="info_vae"),
    "joint": dict(objective="beta_vae", kl_schedule="capacity", beta=5.0, kl_start_value=0.04, kl_end_value=0.04,
                  categorical_sizes=[3], categorical_gamma=5.0, categorical_capacity=0.0015, categorical_end_step=1,
                  categorical_marginal_weight=2.0, categorical_independence=1e4),
    # Clipped by the norm of the gradient summed over the replicas (each replica's half has about half the norm).
    "clipped": dict(objective="beta_vae", max_grad_norm=0.5),
}
MIRRORED_RUN = dict(num_steps=6, plot_step=0, log_step=[], validation_step=0, checkpoint_step=6, cpu_devices=2)
# Per-replica figures: each replica's own gradient norm, not the global gradient's.
PER_REPLICA = {"step", "wall_time", "grad_norm"}


def column(path, name):
    with open(path, newline="") as file:
        return np.array([float(row[name]) for row in csv.DictReader(file)])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_mirrored_runs(folder):
    """Each MIRRORED case trained on one device (`<name>_default`) and on two replicas (`<name>_mirrored`)."""
    for name, overrides in MIRRORED.items():
        for strategy in ("default", "mirrored"):
            params = vae_tf.load_params(ROOT / "params.py", overrides={
                **TINY, **MIRRORED_RUN, **overrides, "strategy": strategy, "output_dir": str(folder),
                "run_name": f"{name}_{strategy}"})
            vae_tf.train(params, progress=False)  # several in one process: make_strategy's workaround of #62790


@pytest.fixture(scope="module")
def mirrored_runs(tmp_path_factory):
    """The folder of `train_mirrored_runs`, trained in one fresh process: replicas need logical CPU devices set
    before TensorFlow starts, and one process for all the runs starts TensorFlow once rather than 14 times."""
    folder = tmp_path_factory.mktemp("mirrored")
    result = run_script(Path(__file__).relative_to(ROOT), folder)
    assert result.returncode == 0, result.stderr
    return folder


def assert_same_weights(trained, reference):
    for got, want in zip(trained.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MIRRORED))
def test_mirrored_over_two_cpu_devices_follows_the_single_device_trajectory(mirrored_runs, name):
    """Replicas split each global batch, draw the global batch's noise, and compute the batch statistics on the
    global batch gathered across them, with the gradient one device would take (`objectives.global_batch`); the only
    difference left is the order of floating-point sums, so every logged figure agrees to 1e-5 relative and so do
    the weights after 6 steps, FactorVAE's discriminator's included."""
    single, mirrored = mirrored_runs / f"{name}_default", mirrored_runs / f"{name}_mirrored"
    with open(single / "log.csv", newline="") as file:
        figures = [heading for heading in next(csv.reader(file)) if heading not in PER_REPLICA]
    for figure in figures:
        np.testing.assert_allclose(column(mirrored / "log.csv", figure), column(single / "log.csv", figure),
                                   rtol=1e-5, atol=1e-6, err_msg=figure)
    trained, reference = vae_tf.load_run(mirrored), vae_tf.load_run(single)
    assert int(trained.optimizer.iterations) == int(reference.optimizer.iterations) == 6
    assert_same_weights(trained, reference)
    if name == "factor_vae":
        assert_same_weights(trained.objective.discriminator, reference.objective.discriminator)


@pytest.mark.slow
def test_two_workers_train_together_and_the_checkpoint_resumes_in_one_process(tmp_path):
    """DIP-VAE-II, the shipped objective: its covariance penalty is a statistic of the batch, which the workers'
    replicas gather across the cluster."""
    dip = "--objective=dip_vae_ii"
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes = []
    for index in range(2):
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), f"--output_dir={tmp_path}", "--run_name=cluster",
             "--strategy=multi_worker", *ARGS, dip, "--mig_step=4"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    run = tmp_path / "cluster"
    assert [int(s) for s in column(run / "log.csv", "step")] == list(range(6))  # the chief alone wrote the log
    # The chief scored MIG at step 4 (a stop no other event has: every worker ended its call there) and at the end.
    assert [int(s) for s in column(run / "mig.csv", "step")] == [4, 6]
    assert (run / "checkpoints" / "ckpt-6.index").exists()
    # Each worker's replica trained on its own slice of every global batch: the single-device trajectory.
    alone = train_cli(f"--output_dir={tmp_path}", "--run_name=alone", *ARGS, dip)
    assert alone.returncode == 0, alone.stderr
    np.testing.assert_allclose(column(run / "log.csv", "loss"), column(tmp_path / "alone" / "log.csv", "loss"),
                               rtol=1e-5)
    assert_same_weights(vae_tf.load_run(run), vae_tf.load_run(tmp_path / "alone"))

    single = train_cli(f"--output_dir={tmp_path}", "--run_name=cluster",
                       *tiny_args(num_steps=9, plot_step=3, log_step=[], validation_step=3, checkpoint_step=3), dip)
    assert single.returncode == 0, single.stderr
    assert [int(s) for s in column(run / "log.csv", "step")] == list(range(9))
    assert vae_tf.load_run(run).optimizer.iterations.numpy() == 9


if __name__ == "__main__":
    train_mirrored_runs(sys.argv[1])
