"""The originals' curated files: a run's figures copied under their names into images/."""

import shutil
from pathlib import Path

import imageio.v3 as iio

from vae_tf.analysis.training_figures import snapshots
from vae_tf.errors import UserError
from vae_tf.runs import open_run, replace_atomically


def export(run_dir, images_dir="images", output=None):
    """Copy a run's figures (from <run>/analysis, or `output`) under the originals' curated names into `images_dir`;
    returns the files written."""
    run, _ = open_run(run_dir, analysis=output)
    name = run.name
    results, traversals = Path(images_dir) / "Training Results", Path(images_dir) / "latent_traversal"
    wanted = [(run.analysis / "training.gif", results / f"{name}.gif"),
              (run.analysis / "graphs.png", results / f"{name}_graphs.jpg"),
              (run.analysis / "latent_traversal.png", traversals / f"{name}.jpg")]
    try:
        wanted.append((snapshots(run)[-1], results / f"{name}.jpg"))
    except (UserError, IndexError):
        pass  # no snapshot: analyze already said so
    written = []
    for source, target in wanted:
        if not source.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == target.suffix:
            replace_atomically(target, lambda temporary: shutil.copyfile(source, temporary))
        else:
            pixels = iio.imread(source)[..., :3]
            replace_atomically(target, lambda temporary: iio.imwrite(temporary, pixels, extension=".jpg", quality=92))
        written.append(target)
    return written
