"""The figures drawn from a model's codes and decodings: traversals, interpolations, reconstructions, samples, the
KL per dimension and the latent space in 2-D."""

import numpy as np

from vae_tf import figures, latent_space
from vae_tf.analysis.encoding import decode
from vae_tf.figures import save_figure

COLUMNS = 10  # points along each traversal and interpolation


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


def _sampled(model):
    """What a decoded image is, for the captions: an autoregressive decoder's images are samples, not means."""
    return ("\n(each image a sample of p(x|z) drawn pixel by pixel by the PixelCNN decoder, not its mean)"
            if model.autoregressive else "")


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
    rows = decode(model, encoded.with_categoricals(np.stack([codes, codes + sigma, codes + 2 * sigma])))
    return figures.image_rows(rows, f"traversal of z{dimension} (largest |average mean|) from its max to its min"
                                    + _sampled(model),
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
    return figures.image_rows(decode(model, encoded.with_categoricals(rows)),
                              "each dimension traversed over its data range (2nd to 98th percentile), "
                              "others at their average" + _sampled(model), [f"z{d}\nKL {kl[d]:.2f}" for d in order])


LAYER_ROWS = 4  # dimensions of each layer in layer_traversals.png


def layer_traversal_codes(sizes, mean, kl):
    """Codes [rows, COLUMNS, Σ sizes] and row labels of a layered model's traversals grouped by layer, the top layer
    first: each layer's LAYER_ROWS dimensions of largest KL over their data range, the rest at its average."""
    offsets = np.cumsum([0] + list(sizes))
    rows, labels = [], []
    for level in reversed(range(len(sizes))):
        dimensions = offsets[level] + np.argsort(-kl[offsets[level]:offsets[level + 1]], kind="stable")[:LAYER_ROWS]
        rows += [_data_range(mean, d) for d in dimensions]
        labels += [f"z_{level + 1}, dim {d - offsets[level]}\nKL {kl[d]:.2f}" for d in dimensions]
    return np.stack(rows), labels


def _layer_traversals(model, encoded, kl):
    """The code holds each layer's innovation (`Layered.innovations`), so a row of an upper layer also moves every
    layer below it, as sampling would."""
    codes, labels = layer_traversal_codes(model.sizes, encoded.mean, kl)
    return figures.image_rows(decode(model, codes),
                              f"each layer's {LAYER_ROWS} dimensions of largest KL over their data range (2nd to 98th "
                              f"percentile), top layer first; an upper layer moves the layers below it"
                              + _sampled(model), labels)


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
    return figures.image_rows(decode(model, np.stack(rows)),
                              f"each category (one row each), with z{dimension} (largest KL) traversed over its data "
                              f"range" + _sampled(model), labels)


def _interpolation(model, encoded, images, original="original"):
    """The bilinear grid between the codes of test images 0-3, framed by those four originals above and below its
    corners, then straight lines between pairs of the next six (a categorical's one-hot codes blend linearly)."""
    mean = encoded.modes()
    grid = latent_space.interpolation_grid(mean[:4], COLUMNS)
    pairs = [latent_space.interpolate(mean[i], mean[i + 1], COLUMNS) for i in range(4, 10, 2)]
    decoded = decode(model, np.concatenate([grid, np.stack(pairs)]))
    top, bottom = (np.full((COLUMNS,) + images.shape[1:], 0.5, np.float32) for _ in range(2))  # grey: no image
    top[0], top[-1], bottom[0], bottom[-1] = images[0], images[1], images[2], images[3]
    rows = np.concatenate([top[None], decoded[:COLUMNS], bottom[None], decoded[COLUMNS:]])
    labels = [f"{original}s"] + [""] * COLUMNS + [f"{original}s"] + [f"pair {p + 1}" for p in range(len(pairs))]
    return figures.image_rows(rows, "bilinear grid between four test encodings (the originals above and below its "
                                    "corners); straight lines between pairs" + _sampled(model), labels)


def _reconstruction_rows(model, images, original="original"):
    count = min(2 * COLUMNS, len(images)) // 2 * 2
    originals = images[:count]
    reconstructions = model.reconstruct(originals).numpy()
    half = count // 2
    rows = np.stack([originals[:half], reconstructions[:half], originals[half:], reconstructions[half:]])
    return figures.image_rows(rows, "test images over their reconstructions (posterior mean)" + _sampled(model),
                              [original.replace(" ", "\n"), "reconstruction"] * 2)


def _samples_source(model, params, names):
    """What samples.png draws from, for its title: the prior, a layered model's named on its top layer."""
    layered = getattr(model, "layered", False)
    learned = "" if params.prior == "normal" else (
        model.top_prior if layered else model.latent.gaussian.prior).describe().removesuffix(" as the prior")
    if layered:
        source = f"the prior p(z) of {len(model.sizes)} layers" + (f", {learned} on top" if learned else "")
    else:
        source = learned or "the prior N(0, I)"
    return source + "".join(f" × uniform {n}" for n in names)


def draw_model_figures(run, params, model, images, encoded, kl, active, categoricals):
    """The figures drawn from the model's codes and decodings; returns the dimension latent_traversal.png shows."""
    traversal, dimension = _traversal(model, encoded)
    save_figure(traversal, run.analysis / "latent_traversal.png")
    save_figure(_traversals_all(model, encoded, kl), run.analysis / "latent_traversals_all.png")
    if getattr(model, "layered", False):
        save_figure(_layer_traversals(model, encoded, kl), run.analysis / "layer_traversals.png")
    names = [part.name for part in model.latent.categoricals]
    if names:
        save_figure(_categorical_traversals(model, encoded, kl, names), run.analysis / "categorical_traversals.png")
    original = "binarised original" if params.binarize else "original"  # what the model saw, not the grey levels
    save_figure(_interpolation(model, encoded, images, original), run.analysis / "interpolation.png")
    save_figure(_reconstruction_rows(model, images, original), run.analysis / "reconstructions.png")
    save_figure(figures.image_rows(model.sample(4 * COLUMNS).numpy().reshape((4, COLUMNS) + images.shape[1:]),
                                   f"decoded samples from {_samples_source(model, params, names)}" + _sampled(model)),
                run.analysis / "samples.png")
    kls = np.concatenate([kl, [c["kl"] for c in categoricals]])
    actives = np.concatenate([active, [c["active"] for c in categoricals]])
    save_figure(figures.kl_per_dimension(kls, actives, f"{params.run_name}: {int(actives.sum())} of {len(kls)} "
                                                       f"latents active", [f"z{d}" for d in range(len(kl))] + names),
                run.analysis / "kl_per_dimension.png")
    return dimension


def draw_latent_space(run, params, encoded, labels, tsne, names):
    """The Gaussian means in 2-D, coloured by each label and by each categorical's category."""
    from vae_tf.datasets import DATASETS
    colours = {**labels, **{f"category of {name}": c for name, c in zip(names, encoded.categories)}}
    save_figure(figures.latent_space(_projections(encoded.mean, params.seed, tsne), colours,
                                     f"{params.run_name}: test posterior means in 2-D",
                                     DATASETS[params.dataset].value_labels), run.analysis / "latent_space.png")
