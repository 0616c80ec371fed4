"""Running a study on Ray: each run one Ray task in a fresh worker process, as many at once as resources allow.

Ray core tasks rather than Ray Tune: every run is already a resumable run folder, so a study needs Ray only to
place runs on CPUs, GPUs and machines; its restart logic is the run folders' own (`trial.json`, checkpoints).
"""

import fcntl
import os
import time
from pathlib import Path

from tqdm.auto import tqdm

from vae_tf.errors import UserError
from vae_tf.runs import STUDY_JSON, read_json, read_trial, write_json
from vae_tf.study import results
from vae_tf.study.spec import load_study
from vae_tf.study.trial import record_failure, run_trial

RAY_RESOURCES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}  # a study's names -> the cluster's
FORCE = "--force to the same command"  # how a refused study rebuilds results.csv (it trains nothing twice)


def study_folder(name, output_dir=None):
    return Path(output_dir) if output_dir else Path("predictions") / name


def _check_owner(folder, name):
    """Refuse a folder that another study file wrote, or that holds files no study wrote (reading only)."""
    if (folder / STUDY_JSON).exists():
        owner = read_json(folder / STUDY_JSON).get("study")
        if owner != name:
            raise UserError(f"{folder} holds study {owner!r}, not {name!r}: pass another --output_dir (runs of "
                            f"different studies are never mixed)")
    elif folder.exists() and any(folder.iterdir()):
        raise UserError(f"{folder} already holds files that no study wrote: pass another --output_dir")


def _claim(folder, name, path, select_by):
    """The folder's study.json: its owner, its file, and the metric that picks the best runs (for --aggregate)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"study": name, "file": str(path), "select_by": select_by}
    earlier = read_json(folder / STUDY_JSON)
    if {key: earlier.get(key) for key in record} != record:
        write_json(folder / STUDY_JSON, {"created": time.time(), **earlier, **record})


def _checked_params(study, trial):
    """The trial's Params, or the one-line reason they are invalid."""
    from vae_tf.params import load_params
    try:
        return load_params(None, study.preset, trial.overrides), None
    except UserError as error:
        return None, str(error)


def _connect(address, study):
    """Start Ray locally (address None) or join the cluster at `address` (or RAY_ADDRESS)."""
    import ray
    address = address or os.environ.get("RAY_ADDRESS") or "local"  # "local": never join a cluster by accident
    if address == "local":
        # Ray starts its workers at niceness 15, so beside any other job a local study's runs waited (the smoke
        # study took 7 min beside one training run instead of about 2). The runs are the job the user started: they
        # get this process's priority (the raylet ray.init starts reads the variable), and `nice study.py` lowers it.
        os.environ.setdefault("RAY_worker_niceness", "0")
    try:
        _reachable(address)
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=True)
    except ray.exceptions.AuthenticationError:
        raise UserError(f"the Ray cluster at {address!r} asks for a token (Ray 2.60's `ray start` turns token "
                        f"authentication on): set RAY_AUTH_MODE=token here with the cluster's ~/.ray/auth_token, or "
                        f"start the cluster with RAY_AUTH_MODE=disabled") from None
    except (ConnectionError, ValueError, RuntimeError, TimeoutError, ray.exceptions.RayError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise UserError(f"cannot reach the Ray cluster at {address!r} ({reason}); start one with `ray start --head` "
                        f"or leave out --address (and RAY_ADDRESS) to run on this machine") from None
    available = ray.cluster_resources()
    for key, amount in study.resources.items():
        if amount > available.get(RAY_RESOURCES[key], 0):
            ray.shutdown()
            raise UserError(f"each run asks for {key}={amount:g} but the Ray cluster has "
                            f"{available.get(RAY_RESOURCES[key], 0):g} in all: lower the study's resources")
    return ray


def _reachable(address, seconds=10):
    """A ConnectionError at once when nothing listens at a host:port address (ray.init would retry for minutes)."""
    import socket
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # "local", "auto": Ray itself answers at once
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as error:
        raise ConnectionError(f"nothing answers at {host}:{port}: {error.strerror or error}") from None


class _Progress:
    """One live line: runs done, running, failed and left, and the time left at the pace of the runs so far.

    The four always add up to the study's runs: `left` is what the others leave of the total, never counted apart
    (counted apart, an ended run stayed `running` until the next wait and was counted twice)."""

    def __init__(self, name, total, done, failed, enabled):
        self.name, self.total, self.done, self.failed, self.running = name, total, done, failed, 0
        self.bar = tqdm(total=total, initial=done + failed, disable=not enabled,
                        bar_format="{desc} [{elapsed} elapsed, {remaining} left]")
        self.show()

    @property
    def left(self):
        return self.total - self.done - self.failed - self.running

    def line(self):
        return f"{self.name}: {self.done} done, {self.running} running, {self.failed} failed, {self.left} left"

    def show(self):
        self.bar.set_description_str(self.line())

    def started(self, slots):
        """Every run not ended is submitted; at most `slots` of them run at once."""
        self.running = min(self.total - self.done - self.failed, slots)
        self.show()

    def ended(self, name, record):
        if record["status"] == "failed":
            self.failed += 1
            self.bar.write(f"{name} failed: {record['reason']}")
        else:
            self.done += 1
        # a waiting run takes the freed slot; once none waits, one fewer runs
        self.running = min(self.running, self.total - self.done - self.failed)
        self.bar.update(1)
        self.show()

    def close(self):
        self.bar.close()


def _submit(ray, study, folder, trials):
    """Start each trial as a Ray task in a worker process of its own (max_calls=1: no TensorFlow state carries
    from one run to the next); returns {task reference: trial}."""
    threads = max(1, int(study.resources.get("num_cpus", 1)))
    remote = ray.remote(max_calls=1, **study.resources)(_on_ray_node)
    return {remote.remote(study.preset, {**trial.overrides, "run_name": trial.name, "output_dir": str(folder.resolve())},
                          trial.values, list(study.metrics), study.quick_metrics, study.likelihood_images,
                          study.likelihood_samples, threads): trial
            for trial in trials}


def _on_ray_node(*args):
    """run_trial in a Ray worker, its record naming the Ray node that trained it."""
    import ray
    return run_trial(*args, node=ray.get_runtime_context().get_node_id())


def _outcome(ray, reference, folder, trial):
    """The trial's record; a task that died (its worker killed, a bug) is failed with the error's last line."""
    try:
        return ray.get(reference)
    except ray.exceptions.RayError as error:
        lines = [line for line in str(error).strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else type(error).__name__
        record_failure(folder / trial.name, trial.values, reason)
        return read_trial(folder / trial.name)


def _pending(folder, trials, invalid, retry_failed):
    """The trials to train now, and the records of those that have ended."""
    records = {trial.name: read_trial(folder / trial.name) for trial in trials}
    pending = [trial for trial in trials if trial.name not in invalid and (
        records[trial.name] is None or (retry_failed and records[trial.name]["status"] == "failed"))]
    ended = [record for name, record in records.items() if record and name not in {t.name for t in pending}]
    return pending, ended


def run_study(path, output_dir=None, address=None, retry_failed=False, progress=True, force=False):
    """Train every run of the study file `path` not yet finished (resuming unfinished ones), score them, then write
    results.csv, study_summary.json, study.md and the figures; returns the study folder.

    Everything is checked before anything is written: the study, each run's parameters (a run with invalid ones is
    recorded as failed, untrained), the folder's owner, that results.csv would keep every run it lists (unless
    `force`) and the Ray cluster."""
    name, study = load_study(path)
    trials = study.trials()
    if study.metrics:
        from vae_tf.metrics import METRICS
        unknown = [metric for metric in study.metrics if metric not in METRICS]
        if unknown:
            raise UserError(f"unknown metric(s) {', '.join(unknown)} in the study; choose from {', '.join(METRICS)}")
    invalid = {}
    for trial in trials:
        params, reason = _checked_params(study, trial)
        if reason:
            invalid[trial.name] = reason
        elif study.metrics:
            from vae_tf.datasets import check_ground_truth
            check_ground_truth(params.dataset)
    folder = study_folder(name, output_dir)
    _check_owner(folder, name)
    if not force:  # the study's own runs all get a folder again (retrained), so only the others can be dropped
        results.refuse_dropping(folder, results.found_runs(folder) + [trial.name for trial in trials], FORCE)
    ray = _connect(address, study) if _pending(folder, trials, invalid, retry_failed)[0] else None
    select_by = study.select_by or (study.metrics[0] if study.metrics else None)
    try:
        _claim(folder, name, path, select_by)
        with open(folder / ".lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"study {folder} is being run by another process; wait for it") from None
            for trial in trials:
                if trial.name in invalid and read_trial(folder / trial.name) is None:
                    record_failure(folder / trial.name, trial.values, invalid[trial.name])
            pending, ended = _pending(folder, trials, invalid, retry_failed)
            line = _Progress(name, len(trials), sum(r["status"] == "finished" for r in ended),
                             sum(r["status"] == "failed" for r in ended), progress)
            try:
                if pending:
                    _run_pending(ray, study, folder, pending, line)
            finally:
                line.close()
            results.aggregate(folder, force, FORCE)  # checks again: a run's folder may go while the study runs
    finally:
        if ray is not None:
            ray.shutdown()  # on Ctrl-C too: the workers stop, and their runs resume from checkpoints next time
    return folder


def _run_pending(ray, study, folder, pending, line):
    running = _submit(ray, study, folder, pending)
    line.started(_slots(ray, study))
    while running:
        ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
        for reference in ready:
            trial = running.pop(reference)
            line.ended(trial.name, _outcome(ray, reference, folder, trial))


def _slots(ray, study):
    """How many runs the cluster runs at once: each resource's total over each run's share, the least of them."""
    total = ray.cluster_resources()
    counts = [total.get(RAY_RESOURCES[key], 0) / amount for key, amount in study.resources.items() if amount > 0]
    return int(min(counts)) if counts else 1
