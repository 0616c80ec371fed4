"""The figures drawn from a run's logs and snapshots, which need no checkpoint: graphs.png, mig.png, training.gif."""

import re

import imageio.v3 as iio

from vae_tf import figures
from vae_tf.errors import UserError
from vae_tf.figures import save_figure
from vae_tf.runs import read_log, replace_atomically

GIF_FRAME_MS = 400


def read_logs(run):
    if not run.log_csv.exists():
        raise UserError(f"{run.log_csv} not found: the run has not logged a step yet; train it first")
    log = read_log(run.log_csv)
    if not log.get("step"):
        raise UserError(f"{run.log_csv} has no rows yet: the run has not finished a step; train it first")
    validation = read_log(run.validation_csv) if run.validation_csv.exists() else {}
    return log, validation


def snapshots(run):
    """The run's snapshot files in step order; UserError when the snapshot folder is missing."""
    if not run.images.is_dir():
        raise UserError(f"{run.images} not found: this run has no snapshot folder")
    found = [(int(m.group(1)), path) for path in run.images.glob("image_*.png")
             if (m := re.fullmatch(r"image_(\d+)\.png", path.name))]
    return [path for _, path in sorted(found)]


def write_gif(frames, path):
    """Snapshot files -> an endlessly looping GIF (each snapshot already shows its step in its title)."""
    images = [iio.imread(frame)[..., :3] for frame in frames]
    replace_atomically(path, lambda temporary: iio.imwrite(temporary, images, extension=".gif",
                                                           duration=GIF_FRAME_MS, loop=0))


def read_mig(run):
    """The run's mig.csv columns, or {} when it scored none (mig_step 0, or a data set without known factors)."""
    mig = read_log(run.mig_csv) if run.mig_csv.exists() else {}
    return mig if mig.get("step") else {}


def draw_training_figures(run, params, log, validation, say):
    """graphs.png, mig.png and (a layered model's) layer_kl.png from the logs, training.gif from the snapshots: what
    needs no checkpoint."""
    if log is not None:
        save_figure(figures.graphs(log, validation, params.run_name, params.reconstruction_loss),
                    run.analysis / "graphs.png")
    else:
        say(f"note: {run.log_csv} not found (the run folder holds its checkpoint without its log); graphs.png "
            f"skipped")
    if log is not None and "kl_layer1" in log:  # a model of several stochastic layers
        save_figure(figures.layer_kl(log, f"{params.run_name}: KL of each layer"), run.analysis / "layer_kl.png")
    mig = read_mig(run)
    if mig:
        save_figure(figures.mig_curves({params.run_name: mig}, f"{params.run_name}: MIG while training"),
                    run.analysis / "mig.png")


def draw_training_gif(run, say):
    try:
        frames = snapshots(run)
        if frames:
            write_gif(frames, run.analysis / "training.gif")
        else:
            say(f"note: {run.images} has no snapshots yet; training.gif skipped")
    except UserError as problem:
        say(f"note: {problem}; training.gif skipped")
