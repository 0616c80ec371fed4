"""`analyze.py`: every figure of the originals, and more, from a saved run folder alone.

`analyze(run_dir)` writes `<run>/analysis/` (graphs, training GIF, traversals, interpolations, reconstructions,
samples, latent-space projections, KL per dimension, summary.json); `export` copies the originals' curated
files into `images/`; `compare` overlays several runs.
"""

import csv
import dataclasses
import json
import re
import shutil
from pathlib import Path

import imageio.v3 as iio
import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

from vae_tf import figures, latent_space
from vae_tf.errors import UserError
from vae_tf.runs import RunDir, final_figures, open_run, read_log, replace_atomically, write_json

COLUMNS = 10  # points along each traversal and interpolation
GIF_FRAME_MS = 400
BATCH = 250  # images encoded or decoded per call
MIN_IMAGES = 10  # the interpolation figure alone uses ten test images
LIKELIHOOD_IMAGES = 100  # test images whose log p(x) summary.json estimates
LIKELIHOOD_SAMPLES = 500  # importance samples per image for it (vae_tf.log_likelihood)
DECOMPOSITION = ("index_code_mi", "total_correlation", "dimension_wise_kl")  # the KL's parts (Chen et al. 2018)
# Encoded test images the decomposition takes as its data set: its estimate holds n × n × latent_size densities
# (2000² × 10 float64: 320 MB; all 10,000 of a --num_images=10000 analysis would need 8 GB).
DECOMPOSITION_IMAGES = 2000
UDR_IMAGES = 1000  # test images every run encodes for UDR (disentanglement_lib's udr num_data_points)


def run_name(run):
    """A run's name in exports and tables: its folder's (what the user sees and types), even for `.`."""
    return run.path.resolve().name


def save_figure(figure, path):
    replace_atomically(path, lambda temporary: figure.savefig(temporary))
    plt.close(figure)


def _read_logs(run):
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


def _read_mig(run):
    """The run's mig.csv columns, or {} when it scored none (mig_step 0, or a data set without known factors)."""
    mig = read_log(run.mig_csv) if run.mig_csv.exists() else {}
    return mig if mig.get("step") else {}


def evaluation_images(params, count):
    """The first `count` test images [n, H, W, C] of the run's data set, their labels name -> [n], and how many
    came from each split: a data set whose test split holds fewer than MIN_IMAGES (a small folder) is topped up
    from its validation, then its training images."""
    from vae_tf.datasets import evaluation_batches, source_for

    source, parts, labels, taken = source_for(params), [], {}, {}
    for name in ("test", "validation", "train"):
        if taken and sum(taken.values()) >= min(count, MIN_IMAGES):
            break
        split = source.fixed_split(name)
        images = np.concatenate([b.numpy() for b in evaluation_batches(split, BATCH, count - sum(taken.values()))])
        parts.append(images)
        taken[name] = len(images)
        for label, values in split.labels.items():
            labels.setdefault(label, []).append(np.asarray(values[:len(images)]))
    return np.concatenate(parts), {name: np.concatenate(values) for name, values in labels.items()}, taken


class Encoded:
    """Test images encoded: the Gaussian part's `mean` and `log_std` [n, latent_size] (float64), each categorical's
    `probabilities` q(c|x) [n, K], and `categories`, each categorical's most probable category [n]."""

    def __init__(self, model, images):
        chunks = [model.encode(images[i:i + BATCH]) for i in range(0, len(images), BATCH)]
        heads = [np.concatenate([chunk[h].numpy() for chunk in chunks]).astype(np.float64)
                 for h in range(len(model.latent.heads))]
        (self.mean, self.log_std), *categorical = model.latent.split(heads)
        exp = [np.exp(logits - logits.max(axis=1, keepdims=True)) for (logits,) in categorical]
        self.probabilities = [e / e.sum(axis=1, keepdims=True) for e in exp]  # softmax
        self.categories = [np.argmax(q, axis=1) for q in self.probabilities]
        self.sizes = [q.shape[1] for q in self.probabilities]

    def modal_categories(self):
        """Each categorical's most common category among the images, one-hot side by side [Σ K]."""
        return np.concatenate([np.eye(size)[np.bincount(categories, minlength=size).argmax()]
                               for size, categories in zip(self.sizes, self.categories)] or [np.zeros(0)])

    def with_categoricals(self, codes, categoricals=None):
        """Gaussian codes [..., latent_size] -> whole codes [..., code_size]: the categoricals set to `categoricals`
        (one-hot side by side [Σ K]; default their modal categories)."""
        categoricals = self.modal_categories() if categoricals is None else categoricals
        codes = np.asarray(codes)
        return np.concatenate([codes, np.broadcast_to(categoricals, codes.shape[:-1] + categoricals.shape)], axis=-1)

    def modes(self):
        """Each image's deterministic code [n, code_size]: its mean and its most probable categories."""
        one_hot = [np.eye(size)[categories] for size, categories in zip(self.sizes, self.categories)]
        return np.concatenate([self.mean, *one_hot], axis=1)


def _decode(model, codes):
    """codes [..., code_size] -> images [..., H, W, C]."""
    codes = np.asarray(codes, np.float32)
    images = model.decode(codes.reshape(-1, codes.shape[-1])).numpy()
    return images.reshape(codes.shape[:-1] + images.shape[1:])


def _projections(mean, seed, tsne=True):
    """2-D views of the codes: PCA, t-SNE (unless `tsne` is False: most of analyze.py's time on a CPU), and UMAP
    when umap-learn is installed."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if not np.any(np.ptp(mean, axis=0) > 0):  # a fully collapsed encoder; t-SNE would crash on it (sklearn 1.8)
        return {"every code identical": np.zeros((len(mean), 2))}
    if mean.shape[1] == 1:  # nothing to project: the code itself, against zero
        return {"z": np.column_stack([mean[:, 0], np.zeros(len(mean))])}
    views = {"PCA": PCA(2, random_state=seed).fit_transform(mean)}
    if tsne:
        views["t-SNE"] = TSNE(2, perplexity=min(30.0, (len(mean) - 1) / 3), random_state=seed,
                              init="pca").fit_transform(mean)
    try:
        import umap
    except ImportError:
        return views
    views["UMAP"] = umap.UMAP(random_state=seed).fit_transform(mean)
    return views


def _traversal(model, encoded):
    """The β-VAE project's traversal: rows z_i from max to min, then with +σ and +2σ added to every element
    (categoricals at their most common category)."""
    mean, log_std = encoded.mean, encoded.log_std
    dimension = latent_space.traversal_dimension(mean)
    high, low = latent_space.traversal_range(mean, log_std, dimension)
    values = np.linspace(high, low, COLUMNS)
    codes = np.zeros((COLUMNS, mean.shape[1]))
    codes[:, dimension] = values
    sigma = np.mean(np.exp(log_std), axis=0)
    rows = _decode(model, encoded.with_categoricals(np.stack([codes, codes + sigma, codes + 2 * sigma])))
    return figures.image_rows(rows, f"traversal of z{dimension} (largest |average mean|) from its max to its min",
                              [f"z{dimension}", "+σ", "+2σ"], [f"{v:.2f}" for v in values]), dimension


def _data_range(mean, dimension):
    """Codes [COLUMNS, latent_size]: Gaussian dimension `dimension` from the 2nd to the 98th percentile of its
    posterior means, the others at their average."""
    codes = np.tile(np.mean(mean, axis=0), (COLUMNS, 1))
    codes[:, dimension] = np.linspace(*np.percentile(mean[:, dimension], [2, 98]), COLUMNS)
    return codes


def _traversals_all(model, encoded, kl):
    """Every Gaussian dimension, by decreasing KL, from the 2nd to the 98th percentile of its posterior means
    (categoricals at their most common category)."""
    order = np.argsort(-kl)
    rows = np.stack([_data_range(encoded.mean, d) for d in order])
    return figures.image_rows(_decode(model, encoded.with_categoricals(rows)),
                              "each dimension traversed over its data range (2nd to 98th percentile), "
                              "others at their average", [f"z{d}\nKL {kl[d]:.2f}" for d in order])


def _categorical_traversals(model, encoded, kl, names):
    """A categorical's traversal: one row per category, along which the Gaussian dimension of largest KL runs over
    its data range (the other dimensions at their average, the other categoricals at their most common category)."""
    dimension = int(np.argmax(kl))
    traversed, modal, rows, labels = _data_range(encoded.mean, dimension), encoded.modal_categories(), [], []
    offsets = np.cumsum([0] + encoded.sizes)
    for index, size in enumerate(encoded.sizes):
        for category in range(size):
            categoricals = modal.copy()
            categoricals[offsets[index]:offsets[index + 1]] = np.eye(size)[category]
            rows.append(encoded.with_categoricals(traversed, categoricals))
            share = np.mean(encoded.categories[index] == category)
            labels.append(f"{names[index]} = {category}\n{share:.0%} of images")
    return figures.image_rows(_decode(model, np.stack(rows)),
                              f"each category (one row each), with z{dimension} (largest KL) traversed over its data "
                              f"range", labels)


def _interpolation(model, encoded, images):
    """The bilinear grid between the codes of test images 0-3, framed by those four originals above and below its
    corners, then straight lines between pairs of the next six (a categorical's one-hot codes blend linearly)."""
    mean = encoded.modes()
    grid = latent_space.interpolation_grid(mean[:4], COLUMNS)
    pairs = [latent_space.interpolate(mean[i], mean[i + 1], COLUMNS) for i in range(4, 10, 2)]
    decoded = _decode(model, np.concatenate([grid, np.stack(pairs)]))
    top, bottom = (np.full((COLUMNS,) + images.shape[1:], 0.5, np.float32) for _ in range(2))  # grey: no image
    top[0], top[-1], bottom[0], bottom[-1] = images[0], images[1], images[2], images[3]
    rows = np.concatenate([top[None], decoded[:COLUMNS], bottom[None], decoded[COLUMNS:]])
    labels = ["originals"] + [""] * COLUMNS + ["originals"] + [f"pair {p + 1}" for p in range(len(pairs))]
    return figures.image_rows(rows, "bilinear grid between four test encodings (the originals above and below its "
                                    "corners); straight lines between pairs", labels)


def _reconstruction_rows(model, images):
    count = min(2 * COLUMNS, len(images)) // 2 * 2
    originals = images[:count]
    reconstructions = model.reconstruct(originals).numpy()
    half = count // 2
    rows = np.stack([originals[:half], reconstructions[:half], originals[half:], reconstructions[half:]])
    return figures.image_rows(rows, "test images over their reconstructions (posterior mean)",
                              ["original", "reconstruction"] * 2)


def _test_losses(model, images, encoded):
    """Reconstruction loss of the posterior's mode and KL (Gaussian and categorical parts), averaged over the encoded
    test images."""
    import tensorflow as tf

    modes = encoded.modes()
    logits = tf.concat([model.decoder(modes[i:i + BATCH].astype(np.float32)) for i in range(0, len(modes), BATCH)], 0)
    reconstruction = model.reconstruction_fn(tf.constant(images), logits).numpy()
    kl = np.sum(latent_space.kl_per_dimension(encoded.mean, encoded.log_std))
    return float(np.mean(reconstruction)), float(kl + sum(map(latent_space.categorical_kl, encoded.probabilities)))


def _training_figures(run, params, log, validation, say):
    """graphs.png and mig.png from the logs, training.gif from the snapshots: what needs no checkpoint."""
    if log is not None:
        save_figure(figures.graphs(log, validation, params.run_name, params.reconstruction_loss),
                    run.analysis / "graphs.png")
    else:
        say(f"note: {run.log_csv} not found (the run folder holds its checkpoint without its log); graphs.png "
            f"skipped")
    mig = _read_mig(run)
    if mig:
        save_figure(figures.mig_curves({params.run_name: mig}, f"{params.run_name}: MIG while training"),
                    run.analysis / "mig.png")


def _training_gif(run, say):
    try:
        frames = snapshots(run)
        if frames:
            write_gif(frames, run.analysis / "training.gif")
        else:
            say(f"note: {run.images} has no snapshots yet; training.gif skipped")
    except UserError as problem:
        say(f"note: {problem}; training.gif skipped")


def _encoded_test_images(model, params, num_images, say):
    """The test images (topped up from other splits when the test split is small, with a note), their labels,
    the splits they came from and their `Encoded` posteriors."""
    images, labels, taken = evaluation_images(params, num_images)
    if len(images) < MIN_IMAGES:
        raise UserError(f"{params.dataset} has only {len(images)} images in all; the latent figures need at least "
                        f"{MIN_IMAGES}: add images to the data set")
    if len(taken) > 1:
        say(f"note: the test split of {params.dataset} has only {taken['test']} images, so the latent figures and "
            f"the test figures also use " + " and ".join(f"{n} {name}" for name, n in list(taken.items())[1:])
            + " images (training images flatter the reconstructions)")
    return images, labels, taken, Encoded(model, images)


def _model_figures(run, params, model, images, encoded, kl, active, categoricals):
    """The figures drawn from the model's codes and decodings; returns the dimension latent_traversal.png shows."""
    traversal, dimension = _traversal(model, encoded)
    save_figure(traversal, run.analysis / "latent_traversal.png")
    save_figure(_traversals_all(model, encoded, kl), run.analysis / "latent_traversals_all.png")
    names = [part.name for part in model.latent.categoricals]
    if names:
        save_figure(_categorical_traversals(model, encoded, kl, names), run.analysis / "categorical_traversals.png")
    save_figure(_interpolation(model, encoded, images), run.analysis / "interpolation.png")
    save_figure(_reconstruction_rows(model, images), run.analysis / "reconstructions.png")
    prior = "N(0, I)" + "".join(f" × uniform {n}" for n in names)
    save_figure(figures.image_rows(model.sample(4 * COLUMNS).numpy().reshape((4, COLUMNS) + images.shape[1:]),
                                   f"decoded samples from the prior {prior}"), run.analysis / "samples.png")
    kls = np.concatenate([kl, [c["kl"] for c in categoricals]])
    actives = np.concatenate([active, [c["active"] for c in categoricals]])
    save_figure(figures.kl_per_dimension(kls, actives, f"{params.run_name}: {int(actives.sum())} of {len(kls)} "
                                                       f"latents active", [f"z{d}" for d in range(len(kl))] + names),
                run.analysis / "kl_per_dimension.png")
    return dimension


def _latent_space_figure(run, params, encoded, labels, tsne, names):
    """The Gaussian means in 2-D, coloured by each label and by each categorical's category."""
    from vae_tf.shapes2d import factor_labels
    value_labels = factor_labels() if params.dataset in ("shapes2d", "dsprites") else {}  # the same factor grid
    colours = {**labels, **{f"category of {name}": c for name, c in zip(names, encoded.categories)}}
    save_figure(figures.latent_space(_projections(encoded.mean, params.seed, tsne), colours,
                                     f"{params.run_name}: test posterior means in 2-D", value_labels),
                run.analysis / "latent_space.png")


def _categorical_summary(model, encoded, labels):
    """Per categorical: its size, KL, whether it is active, how its images spread over its categories, how often its
    category agrees with each labelled factor (each category mapped to its majority value) and the mutual information
    between its category and each factor (nats)."""
    return [{"name": part.name, "size": part.size, "kl": latent_space.categorical_kl(probabilities),
             "active": latent_space.categorical_active(probabilities),
             "category_shares": (np.bincount(categories, minlength=part.size) / len(categories)).tolist(),
             "agreement": {name: latent_space.majority_agreement(categories, values) for name, values in labels.items()},
             "information": {name: latent_space.category_information(categories, values)
                             for name, values in labels.items()}}
            for part, probabilities, categories in zip(model.latent.categoricals, encoded.probabilities,
                                                       encoded.categories)]


def _summary(params, checkpoint, model, log, validation, images, encoded, categoricals, kl, active, taken, num_images,
             dimension, likelihood=(LIKELIHOOD_IMAGES, LIKELIHOOD_SAMPLES)):
    """summary.json's content: the final training figures and the test set's losses, likelihood, decomposition
    and active units."""
    reconstruction, total_kl = _test_losses(model, images, encoded)
    collapse = latent_space.collapse_sentence(int(active.sum()) + sum(c["active"] for c in categoricals), total_kl)
    likelihood = likelihood_summary(model, images, *likelihood)
    decomposition = _test_decomposition(encoded.mean, encoded.log_std, params.seed)
    return {
        "run": params.run_name, "checkpoint": checkpoint,
        "checkpoint_step": int(model.optimizer.iterations.numpy()) if model.optimizer else None,
        "final_training": final_figures(log, validation) if log is not None else None,
        "test": {"images": len(images), "requested_images": num_images, "images_by_split": taken,
                 "reconstruction_loss": reconstruction, "kl_loss": total_kl,
                 "decomposition_images": min(len(images), DECOMPOSITION_IMAGES),
                 **decomposition},
        **likelihood,
        "kl_per_dimension": kl.tolist(),
        "active_units": int(active.sum()), "active_dimensions": np.flatnonzero(active).tolist(),
        "traversal_dimension": dimension, "collapsed": collapse is not None, "collapse": collapse,
        **({"categoricals": categoricals} if categoricals else {}),
    }


def analyze(run_dir, checkpoint="latest", num_images=latent_space.TEST_IMAGES, progress=True, note=print, tsne=True,
            likelihood=(LIKELIHOOD_IMAGES, LIKELIHOOD_SAMPLES)):
    """Write every figure of a run into `<run>/analysis/`; returns the summary (None when only graphs could be drawn).

    User problems (not a run, no log) raise UserError; a missing checkpoint or snapshot folder gets a
    one-line `note` and the figures that need it are skipped.
    """
    from vae_tf.checkpoints import load_run

    run, params = open_run(run_dir, checkpoint)
    if num_images < MIN_IMAGES:
        raise UserError(f"num_images must be at least {MIN_IMAGES} (the interpolation figure alone uses ten), "
                        f"got {num_images}")
    has_checkpoint = run.has_checkpoint(checkpoint)
    # A run shipped as its checkpoint alone (no log.csv) still gets every figure drawn from the model.
    log, validation = _read_logs(run) if run.log_csv.exists() or not has_checkpoint else (None, {})
    run.analysis.mkdir(exist_ok=True)
    run.analysis_incomplete.write_text("analyze.py was interrupted here: the files in this folder may mix this "
                                       "analysis with an older one; rerun it to finish\n")
    stages = ["graphs", "training.gif"] + (["encoding", "figures", "latent space"] if has_checkpoint else [])
    bar = tqdm(stages, desc=f"analyze {params.run_name}", unit="stage", disable=not progress, leave=False)
    say = note if not progress else _beside_bars(note)

    def stage(name):
        bar.set_postfix_str(name)
        bar.update()

    try:  # closed however this ends, so an error line never lands on the bar's line
        bar.set_postfix_str("graphs")
        _training_figures(run, params, log, validation, say)
        stage("training.gif")
        _training_gif(run, say)
        if not has_checkpoint:
            bar.update()
            advice = ("it never validates (validation_step=0), so use --checkpoint=latest"
                      if checkpoint == "best" and not params.validation_step else
                      "train it further or pick another with --checkpoint")
            say(f"note: {run.path} has no {checkpoint} checkpoint yet, so only the graphs were drawn; {advice}")
            run.analysis_incomplete.unlink()
            return None
        stage("encoding")
        model = load_run(run.path, checkpoint)
        images, labels, taken, encoded = _encoded_test_images(model, params, num_images, say)
        kl = latent_space.kl_per_dimension(encoded.mean, encoded.log_std)
        active = latent_space.active_units(encoded.mean)
        stage("figures")
        categoricals = _categorical_summary(model, encoded, labels)
        dimension = _model_figures(run, params, model, images, encoded, kl, active, categoricals)
        stage("latent space (t-SNE)" if tsne else "latent space")
        _latent_space_figure(run, params, encoded, labels, tsne, [part.name for part in model.latent.categoricals])
        bar.update()
        summary = _summary(params, checkpoint, model, log, validation, images, encoded, categoricals, kl, active,
                           taken, num_images, dimension, likelihood)
        write_json(run.analysis / "summary.json", {**summary, "stamp": run.checkpoint_stamp(checkpoint)})
        run.analysis_incomplete.unlink()
        say(summary_lines(summary))
        return summary
    finally:
        bar.close()


def read_summary(run_dir):
    """The run's analysis/summary.json, or {} when there is none yet."""
    return _read_json(RunDir(run_dir).analysis / "summary.json")


def _beside_bars(note):
    """`note`, written while tqdm lifts its bars off the terminal, so the line never shares one with a bar."""
    def say(text):
        with tqdm.external_write_mode():
            note(text)
    return say


def is_current(run_dir, checkpoint, num_images, likelihood=(LIKELIHOOD_IMAGES, LIKELIHOOD_SAMPLES)):
    """Whether the run's analysis finished for these weights of `checkpoint`, this many images and this likelihood
    estimate (images, samples): then --metrics need not redraw it."""
    run = RunDir(run_dir)
    summary = read_summary(run_dir)
    images = min(likelihood[0], summary.get("test", {}).get("images", 0))
    return (not run.analysis_incomplete.exists() and summary.get("checkpoint") == checkpoint
            and summary.get("stamp") == run.checkpoint_stamp(checkpoint)
            and summary.get("test", {}).get("requested_images") == num_images
            and (summary.get("likelihood_images"), summary.get("likelihood_samples")) == (images, likelihood[1]))


def summary_lines(summary):
    """What analyze.py prints at the end: the test figures of `summary.json` in a few lines (nats)."""
    test = summary["test"]
    categorical_kl = sum(c["kl"] for c in summary.get("categoricals", []))
    kl = (f"KL {test['kl_loss']:.2f} = categorical {categorical_kl:.2f} + Gaussian {test['kl_loss'] - categorical_kl:.2f}"
          f"; the Gaussian KL's parts:" if "categoricals" in summary else f"KL {test['kl_loss']:.2f} =")
    return "\n".join([
        f"{summary['run']} at step {summary['checkpoint_step']}, {test['images']} test images:",
        f"  reconstruction loss {test['reconstruction_loss']:.2f}, {kl} index-code MI "
        f"{test['index_code_mi']:.2f} + total correlation {test['total_correlation']:.2f} + dimension-wise KL "
        f"{test['dimension_wise_kl']:.2f} (nats"
        + (f"; the parts on the first {test['decomposition_images']} images)"
           if test.get("decomposition_images", test["images"]) < test["images"] else ")"),
        f"  log-likelihood {summary['test_log_likelihood']:.2f} nats (K = {summary['likelihood_samples']} on "
        f"{summary['likelihood_images']} images), ELBO {summary['test_elbo']:.2f}",
        f"  {summary['active_units']} of {len(summary['kl_per_dimension'])} dimensions active; "
        + (summary["collapse"] or "no posterior collapse")]
        + [f"  categorical {c['name']} ({c['size']} categories, KL {c['kl']:.2f} nats): its category agrees with "
           + ", ".join(f"{name} {share:.1%}" for name, share in c["agreement"].items())
           + " of the images (each category read as its majority value)"
           + ("; its mutual information with " + ", ".join(f"{name} {value:.3f}" for name, value in
                                                            c["information"].items()) + " nats"
              if "information" in c else "") for c in summary.get("categoricals", [])])


def likelihood_summary(model, images, count=LIKELIHOOD_IMAGES, samples=LIKELIHOOD_SAMPLES):
    """Mean importance-sampled log p(x) (K = `samples`) and ELBO (nats) of the first `count` test images."""
    from vae_tf.likelihood import elbo, log_likelihood

    subset = images[:count]
    return {"test_log_likelihood": float(np.mean(log_likelihood(model, subset, samples))),
            "test_elbo": float(np.mean(elbo(model, subset))), "likelihood_samples": samples,
            "likelihood_images": len(subset)}


def _test_decomposition(mean, log_std, seed):
    """The KL's decomposition on the first DECOMPOSITION_IMAGES encoded test images, taken as the data set (one sample
    each)."""
    import tensorflow as tf

    from vae_tf.losses import kl_decomposition, log_importance_weights

    mean, log_std = mean[:DECOMPOSITION_IMAGES], log_std[:DECOMPOSITION_IMAGES]
    z = mean + np.exp(log_std) * np.random.default_rng(seed).standard_normal(mean.shape)
    terms = kl_decomposition(tf.constant(z), tf.constant(mean, tf.float64), tf.constant(log_std, tf.float64),
                             log_importance_weights(len(z), len(z), "batch"))
    return {name: float(value) for name, value in terms.items()}


def export(run_dir, images_dir="images"):
    """Copy a run's figures under the originals' curated names into `images_dir`; returns the files written."""
    run, _ = open_run(run_dir)
    name = run_name(run)
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


def _read_json(path):
    """A JSON file the analysis wrote, or {} when it is absent or unreadable (it is only ever optional here)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _number(value):
    """A figure for a table: two decimals, or three significant digits once it is huge (5.9e+31, not 32 digits)."""
    return f"{value:.2f}" if abs(value) < 1e6 else f"{value:.3g}"


def _warn_if_unlike(params, note):
    """One warning per setting that makes the runs' curves incomparable when overlaid."""
    for name, describe in (("reconstruction_loss", "reconstruction losses, so their losses are in different units"),
                           ("image_size", "image sizes, so their losses sum over different numbers of pixels")):
        values = {}
        for run, p in params.items():
            values.setdefault(getattr(p, name), []).append(run)
        if len(values) > 1:
            listing = "; ".join(f"{value}: {', '.join(runs)}" for value, runs in values.items())
            note(f"warning: these runs have different {describe} ({listing})")


def _training_columns(final):
    return [str(final["steps"]), _number(final["loss"]), _number(final["reconstruction_loss"]),
            _number(final["kl_loss"]), f"{final['kl_weight']:.3g}"]


def _test_columns(summary):
    """A summary's test log-likelihood and KL decomposition (nats) as table cells; "–" before analyze.py ran."""
    test = summary.get("test", {})
    values = [summary.get("test_log_likelihood")] + [test.get(name) for name in DECOMPOSITION]
    return ["–" if value is None else f"{value:.2f}" for value in values]


def runs_of(paths):
    """The run folders that `paths` name: a study folder (one holding study.json) stands for each of its runs."""
    from vae_tf.study.results import STUDY_JSON
    found = []
    for path in map(Path, paths):
        if (path / STUDY_JSON).is_file():
            found += sorted(str(p) for p in path.iterdir() if RunDir(p).params_json.is_file())
        else:
            found.append(str(path))
    return found


def compare(run_dirs, output_dir=None, note=print, udr=False):
    """One figure overlaying the runs' KL and reconstruction curves, and a Markdown table of their final figures.

    Writes `comparison.png` and `comparison.md` into `output_dir` (default: the first run's parent folder);
    returns the table. Runs of different losses or image sizes get a `note` each, and so does a run shipped without
    its log.csv (its training figures are left out; its MIG curve and test figures stay). `udr` also ranks the runs
    by UDR (`udr_scores`, written to `udr.json`) in a last column.
    """
    from vae_tf.metrics import METRICS, markdown_table

    opened = [open_run(path) for path in run_dirs]
    runs = [run for run, _ in opened]
    names = [run_name(run) for run in runs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserError(f"--compare got several runs named {', '.join(repeated)}; name each run once")
    _warn_if_unlike({name: params for name, (_, params) in zip(names, opened)}, note)
    logs, finals, summaries, metrics, protocols = {}, {}, {}, {}, {}
    for run, name in zip(runs, names):
        if run.log_csv.exists() or not run.has_checkpoint("latest"):
            logs[name], validation = _read_logs(run)
            finals[name] = final_figures(logs[name], validation)
        else:
            note(f"note: {run.path} has no log.csv (a run shipped as its checkpoint); its training curves and final "
                 f"training figures are left out")
            finals[name] = None
        summaries[name] = _read_json(run.analysis / "summary.json")
        scored = _read_json(run.analysis / "metrics.json")
        metrics[name], protocols[name] = scored.get("metrics", {}), scored.get("protocol", "–")
    found = {metric for scores in metrics.values() for metric in scores}
    metric_names = [name for name in METRICS if name in found] + sorted(found - set(METRICS))
    output = Path(output_dir) if output_dir else runs[0].path.parent
    output.mkdir(parents=True, exist_ok=True)
    ranked = udr_scores(runs, names, [params for _, params in opened], output) if udr else {}
    header = (["run", "steps", "loss", "reconstruction", "KL", "KL weight", "active units", "test log p(x)",
               "test index-code MI", "test TC", "test dim-wise KL"]
              + (["metric protocol"] + metric_names if metric_names else []) + (["UDR"] if ranked else []))
    rows = [[name] + (_training_columns(final) if final else ["–"] * 5)
            + [str(summaries[name].get("active_units", "–"))]
            + _test_columns(summaries[name]) + ([protocols[name]] if metric_names else [])
            + [f"{metrics[name][m]['score']:.3f}" if m in metrics[name] else "–" for m in metric_names]
            + ([f"{ranked[name]:.3f}"] if ranked else [])
            for name, final in finals.items()]
    table = markdown_table(header, rows)
    if logs:
        save_figure(figures.comparison(logs, "comparison"), output / "comparison.png")
    migs = {name: mig for run, name in zip(runs, names) if (mig := _read_mig(run))}
    if migs:
        save_figure(figures.mig_curves(migs, "MIG while training"), output / "comparison_mig.png")
    replace_atomically(output / "comparison.md", lambda temporary: Path(temporary).write_text(table))
    return table


def udr_scores(runs, names, params, output):
    """Each run's UDR (`metrics.udr_from_arrays`, Lasso) among `runs`, from the codes their latest checkpoints give the
    first UDR_IMAGES test images of their common data set, each dimension's KL deciding whether it is informative;
    the scores, pairwise figures and protocol go to `output/udr.json`. Returns {run name: score}."""
    from vae_tf.checkpoints import load_run
    from vae_tf.metrics import udr_from_arrays

    differing = [field for field in ("dataset", "image_size", "channels")
                 if len({getattr(each, field) for each in params}) > 1]
    if differing:
        raise UserError(f"--udr compares the runs' codes of the same images, but the runs differ in "
                        f"{', '.join(differing)}: compare runs of one data set and image size")
    untrained = [name for run, name in zip(runs, names) if not run.has_checkpoint("latest")]
    if untrained:
        raise UserError(f"--udr encodes images with each run, but {', '.join(untrained)} has no checkpoint yet: "
                        f"train it first")
    images = evaluation_images(params[0], UDR_IMAGES)[0]
    codes, kls = [], []
    for run in runs:
        encoded = Encoded(load_run(run.path), images)
        codes.append(np.column_stack([encoded.mean, *encoded.categories]))
        kls.append(np.concatenate([latent_space.kl_per_dimension(encoded.mean, encoded.log_std),
                                   [latent_space.categorical_kl(q) for q in encoded.probabilities]]))
    result = udr_from_arrays(codes, kl=kls)
    write_json(output / "udr.json", {"runs": names, "dataset": params[0].dataset, "images": len(images),
                                     "correlation": "lasso", "checkpoint": "latest", **result})
    return dict(zip(names, result["model_scores"]))


def _ground_truth(params):
    from vae_tf.datasets import load_ground_truth
    return load_ground_truth(params.dataset, params.image_size, params.data_dir, channels=params.channels)


def score_run(run_dir, checkpoint="latest", quick=False, progress=True, names=None):
    """Disentanglement metrics of a run (`names`, default metrics.DEFAULT_METRICS) into
    `<run>/analysis/metrics.json`, and their numbers as one row of `metrics.csv` (`metrics.scalar_figures`);
    returns their Markdown table.

    `names` scores only those metrics and keeps the file's other scores when they are of the same weights, protocol
    and random_state (each metric draws from its own generator, so scoring in parts gives the scores of one call).
    """
    from vae_tf import metrics
    from vae_tf.baselines import model_representation
    from vae_tf.checkpoints import load_run

    run, params = open_run(run_dir, checkpoint)
    ground_truth = _ground_truth(params)  # first: a data set without factors is a one-line error, not a model load
    model = load_run(run.path, checkpoint)
    scores = metrics.evaluate(ground_truth, model_representation(model), metrics.METRICS_SEED, names=names,
                              quick=quick, progress=progress)
    record = {"protocol": "quick" if quick else "default", "random_state": metrics.METRICS_SEED,
              "checkpoint": checkpoint,
              "checkpoint_step": int(model.optimizer.iterations.numpy()) if model.optimizer else None}
    earlier = _read_json(run.analysis / "metrics.json")
    if names is not None and all(earlier.get(key) == value for key, value in record.items()):
        merged = {**earlier["metrics"], **scores}
        scores = {name: merged[name] for name in metrics.METRICS if name in merged}
    run.analysis.mkdir(exist_ok=True)
    write_json(run.analysis / "metrics.json", {**record, "metrics": scores})
    row = {"run": params.run_name, **record, **metrics.scalar_figures(scores)}
    replace_atomically(run.analysis / "metrics.csv", lambda temporary: _write_row(temporary, row))
    return metrics.format_table({params.run_name: scores})


def _write_row(path, row):
    """A CSV file of a header and one row, from {column: value}."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(row)
        writer.writerow(row.values())


def baseline_params(dataset=None, run_dir=None):
    """The params whose data set and architecture the baselines use: `run_dir`'s, else params.py's (else the
    defaults), with `dataset` when given."""
    from vae_tf.params import load_params

    if run_dir is not None:
        params = open_run(run_dir)[1]
        return params if dataset is None else dataclasses.replace(params, dataset=dataset)
    return load_params("params.py" if Path("params.py").is_file() else None,
                       overrides={"dataset": dataset} if dataset else None)


def score_baselines(dataset=None, run_dir=None, quick=False, output_dir=None, progress=True, names=None):
    """The baseline representations' metrics (`names`, default all) on a data set, written to
    `<output_dir>/baselines_<dataset>.md|json`.

    The untrained model has the architecture of `run_dir` when given, else of params.py (else the defaults).
    """
    from vae_tf import metrics
    from vae_tf.baselines import evaluate_baselines

    params = baseline_params(dataset, run_dir)
    ground_truth = _ground_truth(params)
    rows = evaluate_baselines(ground_truth, params, metrics.METRICS_SEED, metrics=names, quick=quick,
                              progress=progress)
    table = metrics.format_table(rows)
    output = Path(output_dir or params.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    stem = f"baselines_{params.dataset}" + ("_quick" if quick else "")
    write_json(output / f"{stem}.json", {"protocol": "quick" if quick else "default",
                                         "random_state": metrics.METRICS_SEED,
                                         "dataset": params.dataset, "baselines": rows})
    replace_atomically(output / f"{stem}.md", lambda temporary: Path(temporary).write_text(table))
    return table
