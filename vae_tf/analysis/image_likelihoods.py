"""analysis/likelihood.csv: each test image's importance-sampled log p(x) and ELBO (`vae_tf.likelihood`), written a
block of images at a time, with analysis/likelihood.json saying which weights, samples and images they belong to.

The likelihood table's estimate, K = 5,000 samples on 10,000 images, takes tens of minutes on a CPU: an analysis
interrupted in it keeps the blocks it wrote, and the next analysis of the same weights estimates only the rest (each
image's draws are its own, `log_likelihood`'s `first_index`, so the figures are those of one uninterrupted call).
The figures per image also let two runs be compared image by image (`compare.paired_differences`): the error of their
paired difference leaves out the spread of the images, which both runs share.
"""

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vae_tf.errors import UserError
from vae_tf.runs import read_json, read_log, replace_atomically, write_json

BLOCK = 100  # images estimated between two writes: an interrupted estimate loses one block at most
COLUMNS = ("image", "log_likelihood", "elbo")


def estimate_likelihoods(model, images, samples, folder, progress=False):
    """(log p(x) [n], ELBO [n], float64 nats) of `images` [n, H, W, C], K = `samples` importance samples, kept in
    folder/likelihood.csv. Rows an earlier call wrote for the same weights (a hash of them: a run still training, or
    another run analysed into the same --output folder, has others), samples and images are read back, not estimated
    again."""
    from vae_tf.likelihood import ELBO_SAMPLES, elbo, log_likelihood

    folder = Path(folder)
    table, identity_file = folder / "likelihood.csv", folder / "likelihood.json"
    images = np.ascontiguousarray(images, np.float32)
    identity = {"weights_sha256": _sha256(model.get_weights()), "samples": samples, "elbo_samples": ELBO_SAMPLES,
                "images": len(images), "images_sha256": _sha256([images])}
    done = _rows_written(table)[:len(images)] if read_json(identity_file) == identity else []
    # The rows first, the identity after: a kill between the two leaves no rows under an identity not theirs.
    replace_atomically(table, lambda path: _write(path, done, "w"))  # whole rows only: a cut last line is gone
    write_json(identity_file, identity)
    bar = tqdm(total=len(images), initial=len(done), desc=f"log p(x), K = {samples}", unit="image",
               disable=not progress, leave=False)
    with bar:
        for start in range(len(done), len(images), BLOCK):
            block = images[start:start + BLOCK]
            rows = list(zip(range(start, start + len(block)), log_likelihood(model, block, samples, first_index=start),
                            elbo(model, block, ELBO_SAMPLES, first_index=start)))
            _write(table, rows, "a")
            done += rows
            bar.update(len(block))
    return tuple(np.array([row[column] for row in done], np.float64) for column in (1, 2))


def finished_log_likelihoods(folder):
    """((likelihood.json's `images_sha256`, `samples`): what was estimated, each image's log p(x) [n]) of an analysis
    folder whose estimate finished; None without one."""
    folder = Path(folder)
    identity, rows = read_json(folder / "likelihood.json"), _rows_written(folder / "likelihood.csv")
    if not identity or len(rows) != identity.get("images"):
        return None
    return (identity.get("images_sha256"), identity.get("samples")), np.array([row[1] for row in rows], np.float64)


def _rows_written(table):
    """likelihood.csv's rows [(image, log p(x), ELBO)], up to the first that is not the next image's (an unreadable
    file has none: it is estimated again)."""
    try:
        written = read_log(table) if table.exists() else {}
    except UserError:
        written = {}
    rows = list(zip(*(written.get(column, []) for column in COLUMNS)))
    count = next((i for i, row in enumerate(rows) if row[0] != i), len(rows))
    return [(int(image), log_p, bound) for image, log_p, bound in rows[:count]]


def _sha256(arrays):
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _write(path, rows, mode):
    """Write (mode "w", with the header) or append rows to `path`, on disk when it returns."""
    with open(path, mode, newline="") as file:
        writer = csv.writer(file)
        if mode == "w":
            writer.writerow(COLUMNS)
        writer.writerows((image, repr(float(log_p)), repr(float(bound))) for image, log_p, bound in rows)
        file.flush()
        os.fsync(file.fileno())
