"""tf.distribute: mirrored replicas on logical CPU devices, and two local workers over 127.0.0.1."""

import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np

import vae_tf

from conftest import ROOT, run_script, tiny_args

ARGS = tiny_args(num_steps=6, plot_step=3, log_step=[], validation_step=3, checkpoint_step=3)


def column(path, name):
    with open(path, newline="") as file:
        return np.array([float(row[name]) for row in csv.DictReader(file)])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_mirrored_over_two_cpu_devices_follows_the_single_device_trajectory(tmp_path):
    """Replicas split each global batch and draw the global batch's noise; the only difference left is
    the order of floating-point sums, so the losses agree to 1e-5 relative. IWAE's path holds the shared one
    (reconstruction, KL, the decomposition gathered over the replicas) and slices its extra samples' noise too."""
    iwae = ["--objective=iwae", "--beta=1", "--iwae_samples=3"]
    single = run_script("train.py", f"--output_dir={tmp_path}", "--run_name=single", *ARGS, *iwae)
    mirrored = run_script("train.py", f"--output_dir={tmp_path}", "--run_name=mirrored", "--strategy=mirrored",
                          "--cpu_devices=2", *ARGS, *iwae)
    assert single.returncode == 0 and mirrored.returncode == 0, mirrored.stderr
    for name in ("loss", "iwae_bound", "reconstruction_loss", "kl_loss", "total_correlation", "index_code_mi",
                 "mean_avg", "std_max"):
        np.testing.assert_allclose(column(tmp_path / "mirrored" / "log.csv", name),
                                   column(tmp_path / "single" / "log.csv", name), rtol=1e-5, atol=1e-6)


def test_two_workers_train_together_and_the_checkpoint_resumes_in_one_process(tmp_path):
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes = []
    for index in range(2):
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), f"--output_dir={tmp_path}", "--run_name=cluster",
             "--strategy=multi_worker", *ARGS, "--mig_step=4"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    run = tmp_path / "cluster"
    assert [int(s) for s in column(run / "log.csv", "step")] == list(range(6))  # the chief alone wrote the log
    # The chief scored MIG at step 4 (a stop no other event has: every worker ended its call there) and at the end.
    assert [int(s) for s in column(run / "mig.csv", "step")] == [4, 6]
    assert (run / "checkpoints" / "ckpt-6.index").exists()
    # Each worker's replica trained on its own slice of every global batch: the single-device trajectory.
    alone = run_script("train.py", f"--output_dir={tmp_path}", "--run_name=alone", *ARGS)
    assert alone.returncode == 0, alone.stderr
    np.testing.assert_allclose(column(run / "log.csv", "loss"), column(tmp_path / "alone" / "log.csv", "loss"),
                               rtol=1e-5)

    single = run_script("train.py", f"--output_dir={tmp_path}", "--run_name=cluster",
                        *tiny_args(num_steps=9, plot_step=3, log_step=[], validation_step=3, checkpoint_step=3))
    assert single.returncode == 0, single.stderr
    assert [int(s) for s in column(run / "log.csv", "step")] == list(range(9))
    assert vae_tf.load_run(run).optimizer.iterations.numpy() == 9
