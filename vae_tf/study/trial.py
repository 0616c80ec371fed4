"""One run of a study, as its worker process carries it out: train (resuming), score, record `trial.json`.

`trial.json` in the run folder is the study's record of the run: its status (`finished` or `failed`, with the
reason), the values that set it apart, its training time and test log-likelihood. A run folder without one has
not finished (or was killed): the next start of the study resumes it from its checkpoints.
"""

import contextlib
import os
import platform
import re
import sys
import time
from pathlib import Path

from vae_tf.errors import TrainingDiverged, UserError
from vae_tf.runs import TRIAL_JSON, TRIAL_LOG, RunDir, read_trial, replace_atomically, write_json

_TF_LOG = r"^[EWI]\d{4} \d\d:\d\d:[\d.]+ +\d+ "  # TensorFlow's C++ log prefix: level, date, time, thread
# Lines TensorFlow logs that read like errors and are not, left out of trial.log so that a real error stands out.
# Each is named in full: a line that merely looks like them stays.
HARMLESS = tuple(re.compile(_TF_LOG + pattern) for pattern in (
    # tf.data's graphs name an attribute newer than the op definitions of the TensorFlow that runs them; TensorFlow
    # ignores it, as the line itself says ("Unknown attributes will be ignored")
    r"node_def_util\.cc:\d+\] NodeDef mentions attribute use_unbounded_threadpool which is not in the op definition",
    # an iterator reaching the end of its data set, logged as it stops
    r"local_rendezvous\.cc:\d+\] Local rendezvous is aborting with status: OUT_OF_RANGE: End of sequence",
))


def record_failure(run_dir, values, reason):
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(run_dir) / TRIAL_JSON, {"status": "failed", "reason": reason, "values": values,
                                            "host": platform.node(), "ended": time.time()})


def harmless(line):
    """Whether a line of output (bytes) is one HARMLESS names."""
    text = line.decode(errors="replace")
    return any(pattern.match(text) for pattern in HARMLESS)


def drop_harmless(path):
    """Rewrite the log at `path` without its harmless lines (in one step: a reader never sees half a log)."""
    lines = Path(path).read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if not harmless(line)]
    if len(kept) < len(lines):
        replace_atomically(path, lambda temporary: Path(temporary).write_bytes(b"".join(kept)))


@contextlib.contextmanager
def _output_to(path):
    """Everything this process prints, TensorFlow's C++ logs included, appended to `path` (file descriptors 1, 2),
    less the lines known to be harmless. They are taken out once the block ends without an error, after the fact:
    filtered as they came, through a pipe, the last lines of a crashing process would be lost with it."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    drop_harmless(path)


def run_trial(preset, overrides, values, metrics, quick_metrics, likelihood_images, likelihood_samples, threads,
              node=None):
    """Train one run (resuming it if it exists), score it, and write its trial.json; returns that record.

    A failure the run itself causes (bad parameters, a diverged loss) is recorded here as `failed` with its one-line
    reason; anything else (a full disk, a bug) propagates to the runner, which records it alike.
    """
    import vae_tf
    vae_tf.import_tensorflow()
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)  # the run's share of the machine, not all of it
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from vae_tf.analysis import evaluation_images, likelihood_summary, score_run
    from vae_tf.checkpoints import load_run, train_seconds
    from vae_tf.params import load_params
    from vae_tf.training import train

    run = RunDir(Path(overrides["output_dir"]) / overrides["run_name"])
    run.path.mkdir(parents=True, exist_ok=True)
    record = {"status": "finished", "values": values, "host": platform.node(), "node": node,
              "niceness": os.nice(0)}
    with _output_to(run.path / TRIAL_LOG):
        try:
            params = load_params(None, preset, overrides)
            train(params, progress=False)
        except (UserError, TrainingDiverged) as error:
            record_failure(run.path, values, str(error))
            return read_trial(run.path)
        record["train_seconds"] = train_seconds(run)
        if metrics:
            score_run(run.path, quick=quick_metrics, progress=False, names=metrics)
        if likelihood_images:
            images = evaluation_images(params, likelihood_images)[0]
            record.update(likelihood_summary(load_run(run.path), images, likelihood_images, likelihood_samples))
    record["ended"] = time.time()
    write_json(run.path / TRIAL_JSON, record)
    return record
